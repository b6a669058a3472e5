"""The configuration a run resolved, as metadata.json records it, flattened to dotted keys and
without the keys that only say where and how this run ran.

Two runs with the same such configuration and seed are the same run; a key whose value
differs between runs is a factor, however it was set (override, group option, preset).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

# Top-level keys that say where and how to run: never part of what a run computes.
RUN_LOCAL = ("hydra", "paths", "retry_failed")


def read_config(run_dir: Path) -> dict[str, Any] | None:
    """The run's configuration (see run_config), or None without a readable metadata.json."""
    try:
        config = json.loads((run_dir / "metadata.json").read_text())["config"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return None
    return run_config(config) if isinstance(config, dict) else None


def run_config(config: dict[str, Any]) -> dict[str, Any]:
    """{dotted key: value} without the run-local keys: RUN_LOCAL, every `cache_dir`, and every
    value that is a path inside the run's own directory (checkpoint and log folders, the
    checkpoint an interrupted run resumed from)."""
    own = str((config.get("paths") or {}).get("output_dir") or "").rstrip("/")
    return {key: value for key, value in flatten(config).items()
            if key.split(".")[0] not in RUN_LOCAL and key.rsplit(".", 1)[-1] != "cache_dir"
            and not (own and isinstance(value, str)
                     and (value == own or value.startswith(own + "/")))}


def flatten(node: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested objects as dotted keys (an empty one holds no setting); lists stay values."""
    flat = {}
    for key, value in node.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
