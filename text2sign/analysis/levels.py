"""Factor values in one canonical form that sorts and prints the same way in every run.

results.json stores `ema: true`, Hydra's overrides `ema=True`, a user types `ema=true`: all
three must land in the same group, print as `true` and sort after `false`.
"""

from __future__ import annotations

import json
import math
from typing import Any

from text2sign.analysis import AnalysisError
from text2sign.rundir.factors import parse_value

# (type rank, value to sort on within the rank, printed text); ranks keep True apart from 1.
Level = tuple[int, Any, str]
DEFAULT: Level = (-1, 0, "default")  # the factor is not set in this run: the config's default
ABSENT: Level = (-1, 1, "absent")  # the key is not in this run's configuration (other code)


def level(value: Any) -> Level:
    if value is None:
        return (0, 0, "null")
    if isinstance(value, bool):
        return (1, value, "true" if value else "false")
    if isinstance(value, (int, float)):
        return (2, value, number_text(value))
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    return (3, text, text)


def number_text(value: float) -> str:
    """`1e-05` and `3`, but never `3.0`: 3 and 3.0 are the same setting."""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    return repr(value)


def parse_assignments(items: list[str], option: str) -> dict[str, Level]:
    """`["ema=true", "optimizer.lr=1e-4"]` -> {"ema": level(True), ...}."""
    parsed = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise AnalysisError(f"{option} expects key=value pairs, got {item!r}")
        parsed[key.lstrip("+")] = level(parse_value(text))
    return parsed
