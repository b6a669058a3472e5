"""Fill the decode-once cache ahead of training, with the same overrides as train.py.

    python -m text2sign.data.prepare data=gif_folder data.root=DIR scale=full

Decodes every clip of the chosen data option at the composed settings into data.cache_dir,
then prints the split and every skipped file. Jobs of a later sweep read from the cache.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from text2sign.config import register_configs

CONF = Path(__file__).resolve().parents[2] / "conf"


def prepare(overrides: list[str]) -> dict:
    """The data report of the datamodule that `train.py OVERRIDES` would build."""
    register_configs()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("train", overrides=overrides)
    return instantiate(cfg.data).report()


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    prepare(sys.argv[1:])
