"""Shared fixtures: compose the real conf/ with tiny overrides, as a user's command would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from omegaconf import DictConfig, open_dict

from text2sign.config import register_configs
from text2sign.rundir.factors import HydraRuntime

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

# A model and data small enough that a whole run takes a few seconds on a CPU.
TINY = ["scale=tiny"]

register_configs()


def compose_hydra(overrides: list[str]) -> DictConfig:
    """The config as Hydra composes it for train.py, its `hydra` node included."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=overrides, return_hydra_config=True)


def compose_run(overrides: list[str], output_dir: Path) -> tuple[DictConfig, HydraRuntime]:
    """What train.py passes on for a job with these overrides in `output_dir`: the config and
    Hydra's runtime (its factors)."""
    cfg = compose_hydra(overrides)
    runtime = HydraRuntime.of(cfg.hydra, output_dir)
    with open_dict(cfg):
        del cfg["hydra"]
    return runtime.place(cfg), runtime


def compose_config(overrides: list[str], output_dir: Path):
    """The config train.py would run in `output_dir`."""
    return compose_run(overrides, output_dir)[0]


@pytest.fixture
def tiny_config(tmp_path):
    def make(*overrides: str):
        return compose_config([*TINY, *overrides], tmp_path)

    yield make
    GlobalHydra.instance().clear()


def run_train(*args: str, cwd: Path = ROOT, timeout: int = 240) -> subprocess.CompletedProcess:
    """`python train.py ARGS` as a user runs it."""
    return subprocess.run([sys.executable, str(ROOT / "train.py"), *args], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)
