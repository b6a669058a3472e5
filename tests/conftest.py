"""Shared fixtures: compose the real conf/ with tiny overrides, as a user's command would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import open_dict

from text2sign.config import register_configs

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"

# A model and data small enough that a whole run takes a few seconds on a CPU.
TINY = ["scale=tiny"]

register_configs()


def compose_config(overrides: list[str], output_dir: Path | None = None):
    """The config train.py would get, with Hydra's runtime set up as for a real run."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=overrides, return_hydra_config=True)
    if output_dir is not None:
        with open_dict(cfg):
            cfg.hydra.runtime.output_dir = str(output_dir)
            cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    with open_dict(cfg):
        del cfg["hydra"]
    return cfg


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
