"""Checks of a composed config before its run: the checkpoint to read (and, continued, that it
fits), the data settings and paths, where the outputs go, and every value the run's
constructors check, by building what the run builds without weights or data (dry_build.py).

Hydra runs them before it makes the run directory (the `Preflight` callback of
conf/hydra/default.yaml and conf/generate.yaml), so a mistake stops the command with one line
that names the key and the fix, and leaves nothing behind. A multirun composes every job of
the sweep first, as Hydra's basic sweeper will (`sweep_jobs`), and checks each: a bad value in
any job stops the sweep before the first one starts, naming the job's overrides. Every job
runs the checks again (train.py), for a single run as for a sweep's job under another sweeper.
"""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path
from typing import Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_loader import ConfigLoader
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from hydra.utils import get_class
from lightning_fabric.utilities.seed import max_seed_value, min_seed_value
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from text2sign.config import conforms, describe_hint, unchecked_values
from text2sign.data.clips import DataError
from text2sign.data.indexers import INPUTS, input_path
from text2sign.models.unet3d import size_divisor
from text2sign.run.checkpointing import read_checkpoint
from text2sign.run.dry_build import (
    ConfigError,
    check_continuation,
    check_generate,
    check_settings,
)
from text2sign.rundir.files import unwritable
from text2sign.rundir.lock import RunDirectoryInUse, held_by, in_use
from text2sign.rundir.record import one_line
from text2sign.rundir.schema import SchemaError


class PreflightFailed(SystemExit):
    """Ends the command with exit status 1 and its message on stderr, without a traceback
    (Hydra turns any Exception a callback raises into a warning and goes on)."""


class Preflight(Callback):
    """A Hydra callback: `check_config` and the output folder, before any directory is made."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        params = OmegaConf.select(config, "hydra.sweeper.params") or {}
        if params:  # a preset's sweep, which a single run would drop without a word
            jobs = sweep_jobs(config, GlobalHydra.instance().config_loader()) or []
            preset = config.hydra.runtime.choices.get("experiment")
            raise PreflightFailed(
                f"{f'experiment={preset}' if preset else 'hydra.sweeper.params'} is a sweep of "
                f"{len(jobs)} jobs ({' '.join(f'{k}={v}' for k, v in params.items())}): run it "
                f"with -m: python train.py -m {' '.join(config.hydra.overrides.task)}")
        _not_in_use(Path(config.hydra.run.dir))
        _report(config, "hydra.run.dir", set())

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _report(config, "hydra.sweep.dir", _swept(config))  # what every job shares: once
        loader = GlobalHydra.instance().config_loader()
        jobs = sweep_jobs(config, loader) or []  # another sweeper's: known as it runs them
        failed = job_problems(config, jobs, loader)
        if failed:
            raise PreflightFailed(f"{len(failed)} of {len(jobs)} jobs of the sweep cannot run; "
                                  "none was started:\n" + "\n".join(failed))


def _not_in_use(run_dir: Path) -> None:
    """Stop if another process holds `run_dir`, before Hydra writes its .hydra/ and log there
    (only asked: the run takes the lock, and says when it takes over a dead process's)."""
    holder = held_by(run_dir)
    if holder:
        raise PreflightFailed(one_line(in_use(run_dir, holder)))


EVERY_KEY = ""  # in `swept`: every key (a swept config group varies them all)
# Errors of composing a job (Hydra, OmegaConf) and of check_config (ConfigError, DataError,
# CheckpointError: ValueErrors)
JOB_ERRORS = (HydraException, OmegaConfBaseException, ValueError)
# ... and of a run, from what the user gave: a path or a file (OSError), the run directory in
# use, a loss that diverged (NonFiniteLossError). Said in one line; anything else is a bug and
# keeps its traceback.
USER_ERRORS = (*JOB_ERRORS, OSError, RunDirectoryInUse, FloatingPointError)


def user_error(error: BaseException) -> bool:
    return isinstance(error, USER_ERRORS) and not isinstance(error, SchemaError)  # a bug


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
    checkpoint = checkpoint_of(cfg) if _free(("ckpt_path", "train"), swept) else None
    if "prompts" in cfg:  # python -m text2sign.cli.generate
        check_generate(cfg, checkpoint)
    if "data" in cfg and _free(("data", "model.denoiser.channel_mults"), swept):
        check_data(cfg)
    if "model" in cfg:
        if _free(("seed",), swept) and not min_seed_value <= cfg.seed <= max_seed_value:
            raise ConfigError(f"seed={cfg.seed} must be between {min_seed_value} and "
                              f"{max_seed_value}: the seed of numpy's generator too")
        if _free(("trainer",), swept):
            check_trainer(cfg)
        module = check_settings(cfg, lambda keys: _free(keys, swept))
        if checkpoint is not None and cfg.train and not _own(cfg):
            check_continuation(cfg, checkpoint, module)


def check_trainer(cfg: DictConfig) -> None:
    """Values Lightning takes and the run then fails on (a division by zero) or silently
    misreads (a negative clipping norm flips the gradients)."""
    interval, clip = cfg.trainer.get("val_check_interval"), cfg.trainer.get("gradient_clip_val")
    if interval is not None and interval <= 0:
        raise ConfigError(f"trainer.val_check_interval={interval} must be above 0: training "
                          "batches between validations (or a fraction of an epoch)")
    if clip is not None and clip < 0:
        raise ConfigError(f"trainer.gradient_clip_val={clip} must be at least 0 (null or 0: no "
                          "clipping)")


def _own(cfg: DictConfig) -> bool:
    """Whether ckpt_path lies in the run's own directory: the run resumes itself."""
    own = OmegaConf.select(cfg, "paths.output_dir", throw_on_resolution_failure=False)
    return bool(own) and Path(cfg.ckpt_path).expanduser().resolve().is_relative_to(
        Path(own).expanduser().resolve())


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
    for key, least in (("batch_size", 1), ("num_frames", 1), ("num_workers", 0)):
        if data[key] < least:
            raise DataError(f"data.{key}={data[key]} must be at least {least}: set data.{key} "
                            f"to {'a positive number' if least else '0 or more'}")
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
