"""Checks of a composed config that need neither the model nor the data: the checkpoint to
read, the data settings and paths, and where the outputs go.

Hydra runs them before it makes the run directory (the `Preflight` callback of
conf/hydra/default.yaml and conf/generate.yaml), so a mistake stops the command with one line
that names the key and the fix, and leaves nothing behind. A multirun composes every job of
the sweep first, as Hydra's basic sweeper will (`sweep_jobs`), and checks each: a bad value in
any job stops the sweep before the first one starts, naming the job's overrides. Every job
runs the checks again (train.py), for a single run as for a sweep's job under another sweeper.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_loader import ConfigLoader
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from hydra.utils import get_class
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from text2sign.config import conforms, describe_hint, unchecked_values
from text2sign.data.clips import DataError
from text2sign.data.indexers import INPUTS, input_path
from text2sign.files import unwritable
from text2sign.models.unet3d import size_divisor
from text2sign.run.checkpointing import read_checkpoint


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key and the fix."""


class PreflightFailed(SystemExit):
    """Ends the command with exit status 1 and its message on stderr, without a traceback
    (Hydra turns any Exception a callback raises into a warning and goes on)."""


class Preflight(Callback):
    """A Hydra callback: `check_config` and the output folder, before any directory is made."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _report(config, "hydra.run.dir", set())

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _report(config, "hydra.sweep.dir", _swept(config))  # what every job shares: once
        loader = GlobalHydra.instance().config_loader()
        jobs = sweep_jobs(config, loader) or []  # another sweeper's: known as it runs them
        failed = job_problems(config, jobs, loader)
        if failed:
            raise PreflightFailed(f"{len(failed)} of {len(jobs)} jobs of the sweep cannot run; "
                                  "none was started:\n" + "\n".join(failed))


EVERY_KEY = ""  # in `swept`: every key (a swept config group varies them all)
# Errors of composing a job (Hydra, OmegaConf) and of check_config (ConfigError, DataError,
# CheckpointError: ValueErrors)
JOB_ERRORS = (HydraException, OmegaConfBaseException, ValueError)


def multirun_config(overrides: list[str], config_name: str = "train") -> DictConfig:
    """The config `python train.py -m OVERRIDES` starts from, before its sweep is expanded
    (call it where Hydra is initialised: hydra.initialize_config_dir)."""
    loader = GlobalHydra.instance().config_loader()
    return loader.load_configuration(config_name, overrides, RunMode.MULTIRUN)


def sweep_jobs(config: DictConfig, loader: ConfigLoader) -> list[list[str]] | None:
    """The overrides of each job of the multirun `config`, in the order Hydra's basic
    sweeper launches them (its `hydra.sweeper.params`, then the command line's); None under
    another sweeper."""
    if config.hydra.sweeper._target_ != f"{BasicSweeper.__module__}.{BasicSweeper.__name__}":
        return None
    params = [f"{key}={value}" for key, value in (config.hydra.sweeper.params or {}).items()]
    parser = OverridesParser.create(config_loader=loader)
    overrides = parser.parse_overrides([*params, *config.hydra.overrides.task])
    return [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]


def job_problems(config: DictConfig, jobs: list[list[str]], loader: ConfigLoader) -> list[str]:
    """`job N of M (its overrides): the error` for each job that cannot be composed, as the
    sweeper will compose it, or fails check_config."""
    problems = []
    for number, overrides in enumerate(jobs, 1):
        try:
            check_config(loader.load_sweep_config(config, list(overrides)))
        except JOB_ERRORS as err:
            problems.append(f"job {number} of {len(jobs)} ({' '.join(overrides)}): "
                            + reason(err))
    return problems


def reason(error: BaseException) -> str:
    """The error and its cause (Hydra's composition errors hold OmegaConf's in it), the
    lines after the first indented."""
    lines = [f"{type(error).__name__}: {error}"]
    if error.__cause__ is not None and str(error.__cause__) not in str(error):
        lines.append(str(error.__cause__))
    return "\n    ".join(line for text in lines for line in text.strip().splitlines())


def check_config(cfg: DictConfig, swept: Collection[str] = ()) -> None:
    """Raise ConfigError, DataError or CheckpointError for the first value that cannot work.
    Checks that involve a key in `swept` (a sweep varies it) are left to the jobs."""
    for key, value, hint in unchecked_values(cfg):
        if _free((key,), swept) and not conforms(value, hint):
            raise ConfigError(f"{key}={value!r} is not a value it takes "
                              f"({describe_hint(hint)}): set {key} to one of them")
    if _free(("ckpt_path", "train"), swept):
        checkpoint_of(cfg)
    if "data" in cfg and _free(("data", "model.denoiser.channel_mults"), swept):
        check_data(cfg)


def checkpoint_of(cfg: DictConfig) -> dict[str, Any] | None:
    """The checkpoint `ckpt_path` names (memory-mapped: the header is read now, the tensors
    when used), or None without one; a ConfigError or CheckpointError says what is wrong."""
    if OmegaConf.is_missing(cfg, "ckpt_path"):
        raise ConfigError("ckpt_path is not set: add ckpt_path=PATH (a checkpoint written by "
                          "train.py)")
    if not cfg.get("train", True) and cfg.ckpt_path is None:
        raise ConfigError("train=false evaluates a checkpoint: set ckpt_path=PATH")
    return None if cfg.ckpt_path is None else read_checkpoint(cfg.ckpt_path, mmap=True)


def check_data(cfg: DictConfig) -> None:
    """data.batch_size, num_frames and image_size, and the input paths of a file-based option."""
    data = cfg.data
    option = getattr(get_class(data._target_), "name", "synthetic")
    for key, (_, what) in INPUTS.get(option, {}).items():
        if OmegaConf.is_missing(data, key):
            raise DataError(f"data={option} needs data.{key}, which is not set: add "
                            f"data.{key}=PATH ({what})")
        if data[key] is not None:
            input_path(option, key, data[key])
    for key in ("batch_size", "num_frames"):
        if data[key] < 1:
            raise DataError(f"data.{key}={data[key]} must be at least 1: set data.{key} to a "
                            "positive number")
    mults = list(cfg.model.denoiser.channel_mults)
    divisor = size_divisor(mults)
    size = data.image_size
    if size < divisor or size % divisor:
        lower, upper = max(divisor, size // divisor * divisor), (size // divisor + 1) * divisor
        raise DataError(
            f"data.image_size={size} must be a positive multiple of {divisor}: the denoiser "
            f"halves the frame size {len(mults) - 1} time(s) (model.denoiser.channel_mults="
            f"{mults}). Set data.image_size={lower}" + (f" or {upper}" if upper != lower else ""))
    if "cache_dir" in data:  # an existing one may be read-only: a filled, shared cache
        problem = unwritable(data.cache_dir, create_only=True)
        if problem:
            raise DataError(f"data.cache_dir={data.cache_dir} cannot be created ({problem}): "
                            "set data.cache_dir to a writable folder")


def _report(config: DictConfig, out_key: str, swept: set[str]) -> None:
    """Raise PreflightFailed with the first problem of `config`, or of its output folder."""
    try:
        out = OmegaConf.select(config, out_key)
        problem = unwritable(out)
        if problem:
            raise ConfigError(f"cannot write the output folder {out} ({problem}): set "
                              f"{out_key} to a writable folder")
        check_config(config, swept)
    except ValueError as err:  # ConfigError, DataError, CheckpointError
        raise PreflightFailed(f"{type(err).__name__}: {err}") from None


def _swept(config: DictConfig) -> set[str]:
    """The keys a multirun varies; a swept config group (data=..., scale=...) varies them all."""
    overrides = OverridesParser.create().parse_overrides(list(config.hydra.overrides.task))
    swept = {o.key_or_group for o in overrides if o.is_sweep_override()}
    groups = set(config.hydra.runtime.choices)
    return {EVERY_KEY} if swept & groups else swept


def _free(keys: Collection[str], swept: Collection[str]) -> bool:
    """No key of `keys` is, holds or lies under a swept key ('' stands for every key)."""
    return not any(s == EVERY_KEY or k == s or k.startswith(s + ".") or s.startswith(k + ".")
                   for k in keys for s in swept)
