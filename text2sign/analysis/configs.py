"""The configuration a run resolved, as metadata.json records it, flattened to dotted keys and
without the keys that only say where and how this run ran.

Two runs with the same such configuration and seed are the same run; a key whose value
differs between runs is a factor, however it was set (override, group option, preset).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from text2sign.rundir.identity import run_config


def read_config(run_dir: Path) -> dict[str, Any] | None:
    """The run's configuration (run_identity.run_config), or None without a readable
    metadata.json."""
    try:
        config = json.loads((run_dir / "metadata.json").read_text())["config"]
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError):
        return None
    return run_config(config) if isinstance(config, dict) else None
