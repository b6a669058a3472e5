"""Factors of a run read from Hydra's .hydra/ files, for runs whose results.json lacks them.

Mirrors text2sign.results.run_factors: every group choice, every overridden key (its value
from the composed config when there is one) and `ema`, `seed`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from text2sign.analysis.levels import parse_value

ALWAYS = ("ema", "seed")  # run_factors records these even when not overridden


def hydra_factors(run_dir: Path) -> dict[str, Any]:
    hydra_dir = run_dir / ".hydra"
    config = _load(hydra_dir / "config.yaml")
    choices = (_load(hydra_dir / "hydra.yaml").get("hydra") or {}).get("runtime", {})
    factors = {group: choice for group, choice in (choices.get("choices") or {}).items()
               if group.split("/")[0] != "hydra" and choice is not None}
    overrides = _load(hydra_dir / "overrides.yaml", default=[])
    for item in overrides if isinstance(overrides, list) else []:
        key, sep, text = str(item).partition("=")
        key = key.lstrip("+")
        if sep and not key.startswith("~") and key not in factors:
            factors[key] = _select(config, key, default=parse_value(text))
    for key in ALWAYS:
        if key in config and key not in factors:
            factors[key] = config[key]
    return factors


def _load(path: Path, default: Any = None) -> Any:
    """A YAML file, or `default` ({} unless given) when missing or unreadable."""
    default = {} if default is None else default
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return default
    return default if data is None or type(data) is not type(default) else data


def _select(config: dict, dotted: str, default: Any) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return default
        node = node[part]
    return default if isinstance(node, str) and "${" in node else node  # unresolved
