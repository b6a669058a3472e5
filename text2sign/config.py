"""The typed schema of conf/: each YAML node with a `_target_` is typed by its target's signature.

A setting is declared twice: typed, as a parameter of the class or function that takes it (the
node's `_target_`), and with its value, in conf/. Nothing here restates a key.
`register_configs` turns every option file that lists `<option>_schema` in its defaults into a
structured config: the keys the file sets (with the files it includes), each typed by the
target's parameter of that name. Hydra then rejects a value of the wrong type
(`optimizer.lr=abc`), a choice outside an enum, or a key that does not exist, naming the key,
before any work starts; a key in conf/ that its target does not take fails at registration.

Why not hydra-zen's `builds(target, populate_full_signature=True)`: it makes every parameter
a key (all of pl.Trainer's, AdamW's and ModelCheckpoint's), which would change every run's
recorded config, and with it the resuming and comparing of runs made before. Here the keys
stay the YAML's and only the types come from the signatures: a small function, no dependency.
"""

from __future__ import annotations

import collections.abc
import dataclasses
import hashlib
import inspect
import os
import re
import secrets
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, List, Optional, Union

import torch
from hydra.core.config_store import ConfigStore
from hydra.utils import get_object
from omegaconf import MISSING, OmegaConf

from text2sign.perf import FastPath

CONF = Path(__file__).resolve().parents[1] / "conf"

# Hydra's own keys of an instantiable node, and their types
HYDRA_KEYS = {"_target_": str, "_partial_": bool, "_convert_": str, "_recursive_": bool,
              "_args_": List[Any]}
SCALARS = (int, float, bool, str, bytes, Path)  # what OmegaConf can check
SEQUENCES = (list, tuple, collections.abc.Sequence, collections.abc.MutableSequence)


@dataclass
class PathsConfig:
    output_dir: str = MISSING


@dataclass
class TrainConfig:
    """The keys of conf/train.yaml itself; each group is typed by its option's schema."""

    seed: int = MISSING
    ema: bool = MISSING
    ckpt_path: Optional[str] = None
    retry_failed: bool = False
    train: bool = MISSING
    tags: List[str] = field(default_factory=list)
    paths: PathsConfig = MISSING
    data: Any = MISSING
    text_encoder: Any = MISSING
    model: Any = MISSING
    optimizer: Any = MISSING
    lr_scheduler: Any = MISSING
    trainer: Any = MISSING
    callbacks: Any = MISSING
    logger: Any = MISSING
    eval: Any = MISSING
    perf: FastPath = MISSING


@dataclass
class GenerateConfig:
    ckpt_path: str = MISSING
    prompts: List[str] = MISSING
    steps: int = MISSING
    guidance_scale: float = MISSING
    seed: int = MISSING
    weights: str = MISSING
    fps: int = MISSING
    device: str = MISSING


@dataclass
class BenchConfig:
    """`python -m text2sign.cli.bench` settings (conf/bench.yaml); the rest is the train config."""

    out: Optional[str] = None
    warmup_steps: int = MISSING
    steps: int = MISSING
    rounds: int = MISSING
    sample_steps: int = MISSING
    sample_guidance_scale: float = MISSING
    sample_repeats: int = MISSING
    host_read_steps: int = MISSING
    encoder_repeats: int = MISSING
    largest_batch_limit: int = MISSING
    profile_steps: int = MISSING


# ------------------------------------------------------------------------- schemas of conf/
def register_configs(conf: Path = CONF) -> None:
    """Register the schemas and the resolvers; call before Hydra composes."""
    store = ConfigStore.instance()
    store.store(name="train_schema", node=TrainConfig)
    store.store(name="generate_schema", node=GenerateConfig)
    for path in sorted(conf.glob("*/**/*.yaml")):
        group = path.parent.relative_to(conf).as_posix()
        if group.split("/")[0] == "hydra" or f"{path.stem}_schema" not in _defaults(path):
            continue
        try:
            node = schema(option_node(path), group.replace("/", "."))
        except ValueError as err:
            raise ValueError(f"{path}: {err}") from None
        store.store(group=group, name=f"{path.stem}_schema", node=node)
    if not OmegaConf.has_resolver("unique_id"):
        # cached: every use in one process (the sweep dir and each job's dir) gets one value
        OmegaConf.register_new_resolver("unique_id", _unique_id, use_cache=True)
        OmegaConf.register_new_resolver("job_dirname", job_dirname)
        OmegaConf.register_new_resolver("gpu_count_or", _gpu_count_or)


def _defaults(path: Path) -> list[Any]:
    return list(OmegaConf.load(path).get("defaults", []))


def option_node(path: Path) -> dict[str, Any]:
    """The keys an option file sets: its own, over those of the files its defaults list
    includes at its own place (`other_option` or `dir/file@_here_`, as in conf/data/)."""
    node: dict[str, Any] = {}
    for entry in _defaults(path):
        name, _, package = str(entry).partition("@")
        if entry == "_self_" or name.endswith("_schema"):
            continue
        if not isinstance(entry, str) or package not in ("", "_here_") or (
                "/" in name and package != "_here_"):
            raise ValueError(f"defaults entry {entry!r}: register_configs follows only "
                             "`option` and `dir/file@_here_` entries")
        node = _merged(node, option_node(path.parent / f"{name}.yaml"))
    own = OmegaConf.load(path)
    own.pop("defaults", None)
    return _merged(node, own)


def _merged(base: Any, over: Any) -> dict[str, Any]:
    return OmegaConf.to_container(OmegaConf.merge(base, over), resolve=False)


def schema(node: dict[str, Any], where: str, record: Any = None) -> Any:
    """A dataclass with `node`'s keys (`where` names the node), typed by the parameters of its
    `_target_`, or by the fields of `record` (a TypedDict or dataclass); nested nodes get their
    own. Any where Python cannot read the target's signature."""
    target = node.get("_target_")
    if target is not None:
        found = parameters(get_object(target))
        if found is None:  # a builtin such as datetime.timedelta: left unchecked
            return Any
        params, takes_more = found
    elif record is not None:
        params, takes_more = typing.get_type_hints(record), False
    else:  # a group of nodes (callbacks, logger)
        params, takes_more = {}, True
    fields = []
    for key, value in node.items():
        if key not in HYDRA_KEYS and key not in params and not takes_more:
            raise ValueError(f"{where}.{key} is not a parameter of {target or record.__name__} "
                             f"(it takes {', '.join(params)}): remove the key, or add the "
                             "parameter")
        hint = HYDRA_KEYS.get(key) or params.get(key, Any)
        if isinstance(value, dict) and ("_target_" in value or _record(hint)):
            kind = schema(value, f"{where}.{key}", _record(hint))
        else:
            kind = config_type(hint)
        fields.append((key, kind, field(default=MISSING)))
    name = (target or "").rsplit(".", 1)[-1] or getattr(record, "__name__", where.split(".")[-1])
    return dataclasses.make_dataclass(name, fields)

def parameters(target: Any) -> tuple[dict[str, Any], bool] | None:
    """The keyword parameters `target` takes with their annotations, and whether it takes any
    other keyword; a class's `**kwargs` passed on to its parents' __init__ are followed.
    None when Python cannot read its signature (a builtin)."""
    if inspect.isclass(target):
        inits = [c.__dict__["__init__"] for c in target.__mro__[:-1] if "__init__" in c.__dict__]
        if not inits:
            return ({}, False) if target.__new__ is object.__new__ else None
    else:
        inits = [target]
    params: dict[str, Any] = {}
    for function in inits:
        try:
            signature = inspect.signature(function)
        except (TypeError, ValueError):
            return None
        try:
            hints = typing.get_type_hints(function)
        except (NameError, TypeError):  # an annotation only a type checker can resolve
            hints = {}
        for name, param in signature.parameters.items():
            if param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY) and name != "self":
                params.setdefault(name, hints.get(name, Any))
        if all(p.kind != p.VAR_KEYWORD for p in signature.parameters.values()):
            return params, False
    return params, True


def config_type(hint: Any) -> Any:
    """The type OmegaConf checks for a parameter annotated `hint`; Any where it cannot check it.

    Optional and lists are kept; a Union loses torch.Tensor (torch.optim takes a tensor `lr`, a
    YAML value never is one), and any other Union or a Literal is unchecked (Any)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (Union, types.UnionType):
        members = [a for a in args if a not in (type(None), torch.Tensor)]
        inner = config_type(members[0]) if len(members) == 1 else Any
        return Optional[inner] if type(None) in args and inner is not Any else inner
    if origin in SEQUENCES or hint in SEQUENCES:
        items = {config_type(a) for a in args if a is not Ellipsis}
        return List[items.pop() if len(items) == 1 else Any]
    if isinstance(hint, type) and (issubclass(hint, Enum) or hint in SCALARS):
        return hint
    return Any


def unchecked_values(cfg: Any, where: str = "") -> Iterator[tuple[str, Any, Any]]:
    """(key, value, annotation) of every value in `cfg` that OmegaConf cannot check: those of
    a parameter annotated with a Union or a Literal (trainer.precision, trainer.devices)."""
    target = cfg.get("_target_") if OmegaConf.is_dict(cfg) else None
    found = parameters(get_object(target)) if target else None
    params = found[0] if found else {}
    for key in cfg.keys() if OmegaConf.is_dict(cfg) else ():
        path = f"{where}{key}"
        if path == "hydra" or OmegaConf.is_missing(cfg, key) or OmegaConf.is_interpolation(cfg, key):
            continue  # Hydra checks its own node; an interpolation is checked where it points
        value = cfg[key]
        hint = params.get(key, Any)
        if OmegaConf.is_dict(value):
            yield from unchecked_values(value, path + ".")
        elif hint is not Any and config_type(hint) is Any:
            yield path, OmegaConf.to_container(value) if OmegaConf.is_config(value) else value, hint


def conforms(value: Any, hint: Any) -> bool:
    """Whether a YAML value fits `hint` (a node with a `_target_` fits any: Hydra builds it)."""
    if isinstance(value, dict) and "_target_" in value:
        return True
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return any(value == a and type(value) is type(a) for a in args)
    if origin in (Union, types.UnionType):
        return any(conforms(value, a) for a in args)
    if hint is type(None):
        return value is None
    if origin in SEQUENCES or hint in SEQUENCES:
        return isinstance(value, list) and all(conforms(v, a) for v in value for a in args[:1])
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(hint, type):
        return isinstance(value, hint)
    return True  # Any, a TypeVar or a Callable: nothing to check


def describe_hint(hint: Any) -> str:
    """`hint` as a reader would write it: 16, '16-mixed', str, list of int or None."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return ", ".join(repr(a) for a in args)
    if origin in (Union, types.UnionType):
        return ", ".join(describe_hint(a) for a in args)
    if origin in SEQUENCES:
        return f"a list of {describe_hint(args[0])}" if args else "a list"
    if hint is type(None):
        return "null"
    return getattr(hint, "__name__", str(hint))


def _record(hint: Any) -> Any:
    """The TypedDict or dataclass of an annotation (Optional or not), which types a nested
    node's keys; None for any other annotation."""
    members = [a for a in typing.get_args(hint) if a is not type(None)]
    if typing.get_origin(hint) in (Union, types.UnionType) and len(members) == 1:
        hint = members[0]
    return hint if typing.is_typeddict(hint) or dataclasses.is_dataclass(hint) else None


# ------------------------------------------------------------------------------- resolvers
def _unique_id() -> str:
    """A per-process id that keeps two sweeps started in the same second apart."""
    return f"{os.getpid()}-{secrets.token_hex(2)}"


# not taken unquoted in a path by Hydra's override parser or a shell
_NOT_PASTEABLE = re.compile(r"[^A-Za-z0-9_.+@%-]")


def job_dirname(override_dirname: str, job_num: int, sweep_dir: str = "") -> str:
    """A sweep job's directory, named by its overrides so that its path can be pasted into a
    command unquoted (`ckpt_path=.../checkpoints/final.ckpt`): `key-value` items joined by `+`,
    `ema-True+text_encoder-frozen` (no key holds `-` or `+`). Any other character becomes `_`
    and a hash of the overrides is added, which keeps such jobs apart; overrides too long for a
    file name give `job<N>_<hash>`. A job that a sweep made before this naming
    (`ema=True,text_encoder=frozen`) keeps its directory, so the sweep still resumes."""
    if not override_dirname:
        return f"job{job_num}"
    earlier = override_dirname.replace("/", "_")
    if len(earlier.encode()) > 200:
        return f"job{job_num}_{hashlib.sha1(earlier.encode()).hexdigest()[:8]}"
    if sweep_dir and (Path(sweep_dir) / earlier).is_dir():
        return earlier
    name = override_dirname.replace("=", "-").replace(",", "+")
    pasteable = _NOT_PASTEABLE.sub("_", name)
    if pasteable == name and "+" not in override_dirname:
        return name
    return f"{pasteable}_{hashlib.sha1(override_dirname.encode()).hexdigest()[:8]}"


def _gpu_count_or(default: int) -> int:
    """The number of visible GPUs, or `default` on a machine without one."""
    return torch.cuda.device_count() or default
