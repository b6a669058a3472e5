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

import functools
import json
import logging
import warnings
from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import torch
from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.config_loader import ConfigLoader
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import HydraException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from hydra.utils import get_class, instantiate
from lightning_fabric.utilities.seed import max_seed_value, min_seed_value
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from transformers.utils import logging as hf_logging

from text2sign.callbacks.samples import check_prompts, check_sampling
from text2sign.config import CONF, conforms, describe_hint, unchecked_values
from text2sign.data.clips import DataError
from text2sign.data.datamodule import ClipDataModule
from text2sign.data.indexers import INPUTS, input_path
from text2sign.files import unwritable
from text2sign.models.unet3d import size_divisor
from text2sign.run.checkpointing import WEIGHTS, ema_shadow, read_checkpoint
from text2sign.run.lock import LOCK, RunDirectoryInUse, hold_run_directory
from text2sign.run.record import one_line
from text2sign.schema import SchemaError


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key and the fix."""


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
    """Stop if another process holds `run_dir`, before Hydra writes its .hydra/ and log there."""
    if (run_dir / LOCK).exists():
        try:
            with hold_run_directory(run_dir):
                pass
        except RunDirectoryInUse as err:
            raise PreflightFailed(one_line(err)) from None


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
        module = check_settings(cfg, swept)
        if checkpoint is not None and cfg.train and not _own(cfg):
            check_continuation(cfg, checkpoint, module)


# What a run builds from its settings, and the config nodes each is built from: a value its
# constructor refuses stops the pre-flight (without weights or data: see check_settings).
BUILT = {"eval": ("eval",), "callbacks": ("callbacks", "eval"), "trainer": ("trainer",),
         "data": ("data",), "text_encoder": ("text_encoder",), "optimizer": ("optimizer",),
         "lr_scheduler": ("lr_scheduler", "optimizer", "trainer"),
         "model": ("model", "text_encoder", "perf", "trainer", "data")}


def check_settings(cfg: DictConfig, swept: Collection[str] = ()) -> torch.nn.Module | None:
    """Build what the run builds from its settings, so that every constructor checks its
    values now, before a directory or the data exist: the evaluation and the callbacks, the
    Trainer, the synthetic data (nothing rendered), the text encoder (once per process and
    settings: its width), the optimizer and its schedule on a stand-in parameter, the module on
    the meta device (no memory), which is returned. ConfigError names the node. Nodes a sweep
    varies are left to its jobs."""
    cfg = OmegaConf.masked_copy(cfg, [key for key in cfg if key != "hydra"])  # Hydra's aside
    OmegaConf.update(cfg, "paths.output_dir", "run-directory", merge=False)  # nothing is made
    stand_in = [torch.nn.Parameter(torch.zeros(1))]
    builders = {
        "eval": lambda: instantiate(cfg.eval),
        "callbacks": lambda: [instantiate(node) for node in cfg.callbacks.values()],
        "trainer": lambda: _trainer(cfg),
        "data": lambda: _synthetic_data(cfg),
        "text_encoder": lambda: _text_encoder_width(_json(cfg.text_encoder)),
        "optimizer": lambda: instantiate(cfg.optimizer)(stand_in),
        "lr_scheduler": lambda: instantiate(cfg.lr_scheduler)(instantiate(cfg.optimizer)(stand_in)),
        "model": lambda: _module(cfg)}
    built = {name: _build(name, BUILT[name], build) for name, build in builders.items()
             if _free(BUILT[name], swept)}
    return built.get("model")


def _build(name: str, keys: Collection[str], build: Callable[[], Any]) -> Any:
    """What `build` returns; what it refuses, as a ConfigError that names the node."""
    try:
        return build()
    except ConfigError:
        raise
    except Exception as err:  # noqa: BLE001 - whatever a constructor refuses, said at once
        text = one_line(err)
        named = any(f"{key}." in text or f"{key}=" in text for key in keys)
        raise ConfigError(text.split(": ", 1)[-1] if named
                          else f"{name}: {text} (a value of {name}.*)") from None


def _module(cfg: DictConfig) -> torch.nn.Module:
    from text2sign.run.job import build_module  # job.py checks its config with this module

    with torch.device("meta"):
        module = build_module(cfg, _Width(_text_encoder_width(_json(cfg.text_encoder))))
    heads = cfg.model.denoiser.num_heads  # the forward pass splits each width into heads
    widths = sorted({width for _, blocks, width in module.denoiser.attention_blocks if blocks})
    if heads < 1 or any(width % heads for width in widths):
        fits = [h for h in range(1, widths[0] + 1) if not any(width % h for width in widths)]
        raise ConfigError(f"model.denoiser.num_heads={heads} must divide the width of every "
                          f"attention block ({', '.join(map(str, widths))}): set it to one of "
                          f"{', '.join(map(str, fits))}")
    return module


def check_continuation(cfg: DictConfig, checkpoint: dict[str, Any],
                       module: torch.nn.Module | None) -> None:
    """A run continued from `ckpt_path` trains more steps of the same model: ConfigError
    names the step, or the text encoder, or the first weights that differ and the scale whose
    model the checkpoint holds."""
    path, step, max_steps = cfg.ckpt_path, checkpoint["global_step"], cfg.trainer.max_steps
    if 0 <= max_steps <= step:
        raise ConfigError(f"ckpt_path={path} is at step {step}, so trainer.max_steps={max_steps} "
                          f"trains nothing: set trainer.max_steps above {step} to continue it "
                          f"(e.g. {2 * step}), or train=false to evaluate it")
    saved = (checkpoint.get("text_encoder") or {}).get("name")
    if saved is not None and saved != cfg.text_encoder.name:
        raise ConfigError(f"ckpt_path={path} was trained with text_encoder.name={saved}, this "
                          f"run builds {cfg.text_encoder.name}: set text_encoder.name={saved}")
    if module is None:  # a sweep varies the model: each job checks it
        return
    here = {k: tuple(v.shape) for k, v in module.state_dict().items()
            if not k.startswith("text_encoder.")}
    there = {k: tuple(v.shape) for k, v in checkpoint["state_dict"].items()
             if not k.startswith("text_encoder.")}
    differ = [key for key in sorted(here.keys() | there.keys()) if here.get(key) != there.get(key)]
    if differ:
        shown = "; ".join(f"{key} is {_shape(there.get(key))} there, {_shape(here.get(key))} here"
                          for key in differ[:3])
        raise ConfigError(f"ckpt_path={path} holds a model of another shape ({len(differ)} "
                          f"weights differ: {shown}): {_fitting(cfg, checkpoint)}")


def _shape(shape: tuple[int, ...] | None) -> str:
    return "absent" if shape is None else str(list(shape))


def _fitting(cfg: DictConfig, checkpoint: dict[str, Any]) -> str:
    """The denoiser keys the checkpoint's run set otherwise, and the scale whose they are."""
    stored = ((checkpoint.get("text2sign_config") or {}).get("model") or {}).get("denoiser") or {}
    ours = OmegaConf.to_container(cfg.model.denoiser, resolve=True, enum_to_str=True)
    keys = [f"model.denoiser.{key}={value} (here {ours.get(key)})"
            for key, value in stored.items() if ours.get(key) != value and key != "_target_"]
    text = ("the checkpoint's run had " + ", ".join(keys)) if keys else (
        "its config does not say how (written by other code)")
    for path in sorted((CONF / "scale").glob("*.yaml")):
        sets = (OmegaConf.to_container(OmegaConf.load(path)).get("model") or {}).get("denoiser")
        if keys and sets and all(stored.get(key) == value for key, value in sets.items()) and (
                any(ours.get(key) != value for key, value in sets.items())):
            return f"{text}: scale={path.stem}'s denoiser (add scale={path.stem}, or set those keys)"
    return f"{text}: set those keys" if keys else text


def _own(cfg: DictConfig) -> bool:
    """Whether ckpt_path lies in the run's own directory: the run resumes itself."""
    own = OmegaConf.select(cfg, "paths.output_dir", throw_on_resolution_failure=False)
    return bool(own) and Path(cfg.ckpt_path).expanduser().resolve().is_relative_to(
        Path(own).expanduser().resolve())


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


def _json(node: DictConfig) -> str:
    return json.dumps(OmegaConf.to_container(node, resolve=True), sort_keys=True)


class _Width(torch.nn.Module):
    """The text encoder's place in a module built to check its settings: its width only."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.hidden_size = hidden_size


@functools.lru_cache(maxsize=8)
def _text_encoder_width(settings: str) -> int:
    """The width of the text encoder these settings (JSON) build; building it checks them
    (quietly: the run loads it again, with its progress bar)."""
    hf_logging.disable_progress_bar()
    try:
        return instantiate(OmegaConf.create(json.loads(settings))).hidden_size
    finally:
        hf_logging.enable_progress_bar()


def _trainer(cfg: DictConfig) -> None:
    """Lightning's Trainer of the run, without loggers or callbacks (and without its lines
    and warnings about the devices and the cluster: the run gives them)."""
    lightning = logging.getLogger("pytorch_lightning")
    level = lightning.level
    lightning.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            instantiate(cfg.trainer, logger=False, callbacks=[])
    finally:
        lightning.setLevel(level)


def _synthetic_data(cfg: DictConfig) -> None:
    """The synthetic datamodule (rendered on use); file-based ones make their cache when built,
    so their values are left to check_data and the run."""
    if not issubclass(get_class(cfg.data._target_), ClipDataModule):
        instantiate(cfg.data)


def check_generate(cfg: DictConfig, checkpoint: dict[str, Any] | None) -> None:
    """generate's own values, and the weights it is asked for."""
    check_prompts(cfg.prompts, "prompts")
    check_sampling(cfg.steps, cfg.guidance_scale, cfg.fps, "")
    if cfg.weights not in WEIGHTS:
        raise ConfigError(f"weights={cfg.weights}: use {', '.join(WEIGHTS)}")
    if checkpoint is None:
        return
    if cfg.weights == "ema" and ema_shadow(checkpoint) is None:
        raise ConfigError(f"{cfg.ckpt_path} has no EMA weights (trained with ema=false): use "
                          "weights=raw or weights=auto")
    stored = OmegaConf.create(checkpoint["text2sign_config"])  # the model generate rebuilds
    _build("text_encoder", ("text_encoder",), lambda: _text_encoder_width(_json(stored.text_encoder)))


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
