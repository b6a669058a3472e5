"""A run's factors (results.json `factors`): the settings analyze.py groups runs by.

Hydra's runtime (group choices, overrides, output directory) is read once, at the entry point
(`HydraRuntime.capture()`, or `HydraRuntime.of()` on a config composed with Hydra's node),
and passed in; analyze.py reads the copy Hydra saved in a run's .hydra/ for records that lack
factors (`saved_factors`). Both compute them with `run_factors`. A named ablation
(conf/ablation/) is a group choice; the keys its option file sets are factors too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from text2sign.rundir.identity import flatten

# Overrides that say how to run, not what is compared: never a factor.
NOT_FACTORS = {"retry_failed"}
ALWAYS = ("ema", "seed")  # factors of every run, overridden or not
ABLATIONS = Path(__file__).resolve().parents[2] / "conf" / "ablation"  # the `ablation` group
_ABSENT = object()


@dataclass(frozen=True)
class HydraRuntime:
    """What Hydra decided for one job. The default: no Hydra (a run started from Python)."""

    output_dir: str | None = None
    choices: Mapping[str, str | None] = field(default_factory=dict)  # group -> option
    overrides: tuple[str, ...] = ()  # the job's overrides, as given
    multirun: bool = False
    jobs_at_once: int = 1  # jobs the launcher runs side by side
    ablation_keys: tuple[str, ...] = ()  # the keys the chosen ablation sets (ablation_keys)

    def parsed_overrides(self) -> list:
        """The overrides as Hydra's parser reads them (key or group, value, sweep or not)."""
        return OverridesParser.create().parse_overrides(list(self.overrides))

    @classmethod
    def capture(cls) -> HydraRuntime:
        """The runtime of the job Hydra is running (call it in the task function)."""
        return cls.of(HydraConfig.get())

    @classmethod
    def of(cls, hydra: DictConfig, output_dir: str | Path | None = None) -> HydraRuntime:
        """From the `hydra` node of a composed config; `output_dir` where Hydra set none
        (the compose API)."""
        if output_dir is None:
            output_dir = hydra.runtime.output_dir
        choices = OmegaConf.to_container(hydra.runtime.choices)
        return cls(
            output_dir=str(output_dir),
            choices=choices,
            overrides=tuple(hydra.overrides.task),
            multirun=hydra.mode == RunMode.MULTIRUN,
            jobs_at_once=(hydra.launcher or {}).get("n_jobs") or 1,
            ablation_keys=ablation_keys(choices.get("ablation")),
        )

    @classmethod
    def saved(cls, run_dir: Path) -> HydraRuntime:
        """What Hydra saved in `run_dir`/.hydra (nothing, where files are missing)."""
        hydra = (_load(run_dir / ".hydra" / "hydra.yaml").get("hydra") or {})
        overrides = _load(run_dir / ".hydra" / "overrides.yaml", default=[])
        choices = (hydra.get("runtime") or {}).get("choices") or {}
        return cls(output_dir=str(run_dir), choices=choices,
                   overrides=tuple(str(item) for item in overrides),
                   ablation_keys=ablation_keys(choices.get("ablation")))

    def place(self, cfg: DictConfig) -> DictConfig:
        """`cfg` with `paths.output_dir` set to this job's directory (it reads Hydra's global
        state otherwise: `${hydra:runtime.output_dir}`)."""
        cfg.paths.output_dir = self.output_dir
        return cfg


def run_factors(runtime: HydraRuntime, config: Mapping[str, Any]) -> dict[str, Any]:
    """Every group choice (Hydra's own aside), every overridden key with its value in the
    config (as given on the command line where the config lacks it or holds it unresolved),
    the keys the chosen ablation sets, then `ema` and `seed`. `config`: plain data, resolved
    or as Hydra saved it."""
    factors = {group: choice for group, choice in runtime.choices.items()
               if group.split("/")[0] != "hydra" and choice is not None}
    for override in runtime.parsed_overrides():
        key = override.key_or_group
        if key not in factors and key not in NOT_FACTORS and not override.is_delete():
            factors[key] = _select(config, key, default=override.value())
    for key in runtime.ablation_keys:
        if key not in factors:
            factors[key] = _select(config, key, default=None)
    for key in ALWAYS:
        value = _select(config, key, default=_ABSENT)
        if value is not _ABSENT:
            factors[key] = value
    return factors


def saved_factors(run_dir: Path) -> dict[str, Any]:
    """The factors of a run from what Hydra saved in its .hydra/ (config as composed)."""
    return run_factors(HydraRuntime.saved(run_dir), _load(run_dir / ".hydra" / "config.yaml"))


def ablation_keys(option: str | None) -> tuple[str, ...]:
    """The keys conf/ablation/<option>.yaml sets (a `_global_` package): the groups its
    defaults list overrides, then its own keys, dotted; none for no ablation."""
    node = _load(ABLATIONS / f"{option}.yaml") if option else {}
    groups = [name.removeprefix("override /") for entry in node.pop("defaults", [])
              if isinstance(entry, dict) for name in entry if name.startswith("override /")]
    return (*groups, *flatten(node))


def _select(config: Mapping[str, Any], dotted: str, default: Any) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return default
        node = node[part]
    return default if isinstance(node, str) and "${" in node else node  # unresolved


def _load(path: Path, default: Any = None) -> Any:
    """A YAML file, or `default` ({} unless given) when missing or unreadable."""
    default = {} if default is None else default
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return default
    return default if data is None or type(data) is not type(default) else data


def parse_value(text: str) -> Any:
    """A command-line value as Hydra reads it; `1e-4` is a number (YAML 1.1 says string)."""
    try:
        value = yaml.safe_load(text)
    except yaml.YAMLError:
        return text
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value
