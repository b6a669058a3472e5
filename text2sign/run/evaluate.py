"""train=false: evaluate a checkpoint with the config of the run that wrote it.

The model, the data, `ema`, `seed` and the evaluation settings come from the config stored in
the checkpoint (`python -m text2sign.cli.generate` rebuilds its model from it too), so
`python train.py train=false ckpt_path=PATH` evaluates a checkpoint of any scale. The command
line decides only what is not the run's own:

- what this command does, where it runs and where it writes (FROM_COMMAND, and the run-local
  keys of run_identity: paths, cache folders, the new run directory's folders): `ckpt_path`,
  `train`, `tags`, `eval.enabled` (a run trained with the evaluation off is evaluated now)
  and the devices;
- the evaluation keys it overrides (EVALUATION: `eval.*`, `callbacks.samples.*`).

Any other override is ignored, and the log says so.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from text2sign.run.checkpointing import FOLDER
from text2sign.run.preflight import checkpoint_of
from text2sign.rundir.factors import HydraRuntime, run_factors
from text2sign.rundir.identity import flatten, own_dir, run_local
from text2sign.rundir.record import plain
from text2sign.rundir.schema import read_results

log = logging.getLogger(__name__)

EVALUATION = ("eval", "callbacks.samples")
FROM_COMMAND = ("ckpt_path", "train", "tags", "eval.enabled", "trainer.accelerator",
                "trainer.devices", "trainer.num_nodes", "trainer.strategy")


def evaluation_config(cfg: DictConfig, runtime: HydraRuntime) -> DictConfig:
    """The config a train=false run evaluates `cfg.ckpt_path` with (see the module doc);
    `runtime` says which keys the command line overrides."""
    stored = checkpoint_of(cfg)["text2sign_config"]
    config = OmegaConf.create(stored)
    command, overridden = plain(cfg), _overridden(runtime)
    for key in FROM_COMMAND:
        OmegaConf.update(config, key, _value(cfg, key), merge=False)
    here, before = own_dir(command), flatten(stored)
    for key, value in flatten(command).items():
        if (key in before and run_local(key, value, here)
                or _under(key, EVALUATION) and (_under(key, overridden) or key not in before)):
            OmegaConf.update(config, key, value, merge=False)
    applied = [key for key in overridden if _under(key, EVALUATION)]
    ignored = [key for key in overridden if not (_under(key, (*EVALUATION, *FROM_COMMAND))
                                                 or run_local(key, None, ""))]
    log.info("train=false: evaluating %s with the config stored in it (model, data, ema=%s, "
             "seed=%s, eval.*); from the command line: %s", cfg.ckpt_path, config.ema,
             config.seed, ", ".join(f"{k}={_value(config, k)}" for k in applied) or "no "
             "evaluation overrides")
    if ignored:
        log.warning("train=false: ignored, the checkpoint's config decides: %s; only eval.* and "
                    "callbacks.samples.* can be overridden", ", ".join(ignored))
    return config


def evaluation_factors(cfg: DictConfig, runtime: HydraRuntime) -> dict[str, Any]:
    """results.json's factors of a train=false run: those of the run that wrote the checkpoint
    (from its results.json, while the checkpoint is in its run directory), with the evaluation
    overrides, ckpt_path, train, ema and seed."""
    source = Path(cfg.ckpt_path).expanduser()
    factors = {}
    if source.parent.name == str(FOLDER):
        try:
            factors = read_results(source.parent.parent / "results.json").get("factors") or {}
        except (OSError, ValueError):  # none, or unreadable (schema.UnreadableResults)
            factors = {}
    command = run_factors(runtime, plain(cfg))
    factors.update({k: v for k, v in command.items() if _under(k, (*EVALUATION, *FROM_COMMAND))})
    factors.update(ema=cfg.ema, seed=cfg.seed)
    return factors


def _overridden(runtime: HydraRuntime) -> list[str]:
    """The keys (or groups) the command line overrides."""
    return [o.key_or_group for o in runtime.parsed_overrides()]


def _under(key: str, prefixes) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


def _value(config: DictConfig, key: str) -> Any:
    return plain(OmegaConf.select(config, key))
