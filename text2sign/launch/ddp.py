"""One run on several processes (Lightning DDP) under Hydra.

Lightning starts DDP workers by running the command line again. Under Hydra that would make
new output directories, and in a multirun start the whole sweep again in every worker.
Here rank 0 saves the job's resolved config in its run directory and the workers, seeing
`WORKER_CONFIG` in their environment, train that config directly, without Hydra. Only rank 0
writes results, logs, samples and evaluations.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytorch_lightning as pl
import torch
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.utilities import rank_zero_only

from text2sign.module import NonFiniteLossError

log = logging.getLogger(__name__)

WORKER_CONFIG = "TEXT2SIGN_DDP_CONFIG"  # environment: the config file a DDP worker trains
# what Lightning's launcher sets in the parent process; restored after each job of a sweep
_LAUNCH_ENV = ("MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "LOCAL_RANK", "WORLD_SIZE",
               WORKER_CONFIG)


def is_rank_zero() -> bool:
    """True in the process that writes the run's files (always, without DDP)."""
    return rank_zero_only.rank == 0


def is_ddp_worker() -> bool:
    """True in a DDP worker process that Lightning started for a job of train.py."""
    return WORKER_CONFIG in os.environ and os.environ.get("LOCAL_RANK", "0") != "0"


def launches_workers(trainer: pl.Trainer) -> bool:
    """Whether `trainer.fit` will start worker processes itself (not torchrun or SLURM)."""
    environment = getattr(trainer.strategy, "cluster_environment", None)
    return (trainer.world_size > 1 and environment is not None
            and not environment.creates_processes_externally)


@contextmanager
def worker_launch(cfg: DictConfig, run_dir: Path) -> Iterator[None]:
    """Within it, Lightning's DDP workers train `cfg`; afterwards the process is ready for the
    sweep's next job (process group destroyed, launcher environment restored)."""
    saved = {key: os.environ.get(key) for key in _LAUNCH_ENV}
    path = run_dir / ".ddp_config.yaml"
    OmegaConf.save(cfg, path, resolve=True)
    os.environ[WORKER_CONFIG] = str(path)
    try:
        yield
    finally:
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def run_worker(attempt: Callable[[DictConfig], object]) -> None:
    """The body of a DDP worker process: train the config rank 0 saved, then exit.

    A non-finite loss stops every rank at the same step and rank 0 records it, so the worker
    exits cleanly; any other error exits non-zero, and Lightning then stops the whole job.
    """
    cfg = OmegaConf.load(os.environ[WORKER_CONFIG])
    try:
        attempt(cfg)
    except NonFiniteLossError:
        log.info("rank %s stopped with the non-finite loss that rank 0 records", rank_zero_only.rank)
    sys.exit(0)
