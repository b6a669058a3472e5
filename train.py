"""Train one configuration, or a sweep of them with -m.

    python train.py                                   # one run, scale=small on the synthetic data
    python train.py -m text_encoder=frozen,finetuned ema=true,false
    python train.py optimizer.lr=1e-4 seed=3          # any key can be overridden
"""

import hydra

from text2sign.config import register_configs
from text2sign.distributed import is_ddp_worker, run_worker
from text2sign.factors import HydraRuntime
from text2sign.train import attempt
from text2sign.train import main as run_job

register_configs()


@hydra.main(version_base="1.3", config_path="conf", config_name="train")
def main(cfg) -> None:
    runtime = HydraRuntime.capture()  # Hydra's runtime, read here once and passed on
    run_job(runtime.place(cfg), runtime)


if __name__ == "__main__":
    if is_ddp_worker():  # started by Lightning for DDP: train the config rank 0 saved
        run_worker(attempt)
    else:
        main()
