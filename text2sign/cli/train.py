"""Train one configuration, or a sweep of them with -m: `python train.py [overrides]`.

    python train.py                                   # one run, scale=small on the synthetic data
    python train.py -m text_encoder=frozen,finetuned ema=true,false
    python train.py optimizer.lr=1e-4 seed=3          # any key can be overridden
"""

import hydra

from text2sign.config import CONF, register_configs
from text2sign.factors import HydraRuntime
from text2sign.launch.ddp import is_ddp_worker, run_worker
from text2sign.launch.scheduler import command_for_jobs
from text2sign.run.job import attempt
from text2sign.run.job import main as run_job


@hydra.main(version_base="1.3", config_path=str(CONF), config_name="train")
def train_job(cfg) -> None:
    runtime = HydraRuntime.capture()  # Hydra's runtime, read here once and passed on
    run_job(runtime.place(cfg), runtime)


def main() -> None:
    if is_ddp_worker():  # started by Lightning for DDP: train the config rank 0 saved
        run_worker(attempt)
    else:
        register_configs()  # conf/'s schema, before Hydra composes
        with command_for_jobs():
            train_job()


if __name__ == "__main__":
    main()
