"""Train one configuration, or a sweep of them with -m: `python train.py [overrides]`.

    python train.py                                   # one run, scale=small on the synthetic data
    python train.py -m text_encoder=frozen,finetuned ema=true,false
    python train.py optimizer.lr=1e-4 seed=3          # any key can be overridden
"""

import sys

import hydra
from omegaconf import OmegaConf

from text2sign.config import CONF, register_configs
from text2sign.launch.ddp import is_ddp_worker, run_worker
from text2sign.run.job import attempt
from text2sign.run.job import main as run_job
from text2sign.rundir.factors import HydraRuntime
from text2sign.rundir.scheduler import command_for_jobs


@hydra.main(version_base="1.3", config_path=str(CONF), config_name="train")
def train_job(cfg) -> None:
    runtime = HydraRuntime.capture()  # Hydra's runtime, read here once and passed on
    run_job(runtime.place(cfg), runtime)


def main() -> None:
    if is_ddp_worker():  # started by Lightning for DDP: train the config rank 0 saved
        run_worker(attempt)
        return
    register_configs()  # conf/'s schema, before Hydra composes
    if {"--cfg", "-c"} & {arg.split("=")[0] for arg in sys.argv[1:]}:
        print(preset_sweeps(sys.argv[1:]), end="")
    try:
        with command_for_jobs():
            train_job()
    except ValueError as err:  # Hydra's refusal of the command line (e.g. -m with --cfg)
        hint = "; --cfg prints the config of one job: drop -m" if "--cfg" in str(err) else ""
        sys.exit(f"train.py: error: {err}{hint}")


def preset_sweeps(args: list[str]) -> str:
    """YAML comments that list the sweep of each preset chosen on the command line
    (`experiment=NAME`), which the job config `--cfg job` prints does not show."""
    lines = []
    for arg in args:
        group, _, option = arg.lstrip("+").partition("=")
        path = CONF / "experiment" / f"{option}.yaml"
        if group != "experiment" or not path.is_file():
            continue
        params = OmegaConf.select(OmegaConf.load(path), "hydra.sweeper.params") or {}
        if params:
            lines += [f"# experiment={option} is a sweep: its jobs are this config with each "
                      f"combination of these values (python train.py -m experiment={option} "
                      "runs them)",
                      *(f"#   {key}: {value}" for key, value in params.items())]
    return "".join(f"{line}\n" for line in lines)


if __name__ == "__main__":
    main()
