"""What a run builds from its settings, built without weights or data before the run starts,
so that every constructor checks its values before any directory is made (the pre-flight,
text2sign/run/preflight.py): the evaluation and the callbacks, Lightning's Trainer, the
synthetic data (nothing rendered), the text encoder (its weights read once per process and
settings, for its width), the optimizer and its schedule on a stand-in parameter, and the module
on PyTorch's meta device, which allocates nothing. The module built so is what a checkpoint to
continue from must fit; generate's checkpoint is checked for the weights it is asked for.
"""

from __future__ import annotations

import functools
import json
import logging
import warnings
from collections.abc import Callable, Collection
from typing import Any

import torch
from hydra.utils import get_class, instantiate
from omegaconf import DictConfig, OmegaConf
from transformers.utils import logging as hf_logging

from text2sign.config import CONF
from text2sign.data.datamodule import ClipDataModule
from text2sign.evaluation.samples import check_prompts, check_sampling
from text2sign.run.checkpointing import WEIGHTS, chosen_weights
from text2sign.rundir.record import one_line


class ConfigError(ValueError):
    """A config value that cannot work; the message names the key and the fix."""


# What a run builds from its settings, and the config nodes each is built from: a value its
# constructor refuses stops the pre-flight (without weights or data: see check_settings).
BUILT = {"eval": ("eval",), "callbacks": ("callbacks", "eval"), "trainer": ("trainer",),
         "data": ("data",), "text_encoder": ("text_encoder",), "optimizer": ("optimizer",),
         "lr_scheduler": ("lr_scheduler", "optimizer", "trainer"),
         "model": ("model", "text_encoder", "perf", "trainer", "data")}


def check_settings(cfg: DictConfig,
                   free: Callable[[Collection[str]], bool] = lambda keys: True) -> torch.nn.Module | None:
    """Build what the run builds from its settings, so that every constructor checks its
    values now, before a directory or the data exist: the evaluation and the callbacks, the
    Trainer, the synthetic data (nothing rendered), the text encoder (once per process and
    settings: its width), the optimizer and its schedule on a stand-in parameter, the module on
    the meta device (no memory), which is returned. ConfigError names the node. A node whose
    keys are not `free` (a sweep varies them) is left to the jobs."""
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
             if free(BUILT[name])}
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
    if checkpoint is None:
        if cfg.weights not in WEIGHTS:  # checked with the checkpoint otherwise
            raise ConfigError(f"weights={cfg.weights}: use {', '.join(WEIGHTS)}")
        return
    try:
        chosen_weights(checkpoint, cfg.weights, cfg.ckpt_path)
    except ValueError as err:
        raise ConfigError(str(err)) from None
    stored = OmegaConf.create(checkpoint["text2sign_config"])  # the model generate rebuilds
    _build("text_encoder", ("text_encoder",), lambda: _text_encoder_width(_json(stored.text_encoder)))
