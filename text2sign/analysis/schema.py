"""results.json read through its schema (text2sign/results.py, schema_version 1).

A record this analysis does not understand (another schema version, a metric that is not a
number) is reported with the reason and never averaged: a silent guess would change the means.
"""

from __future__ import annotations

from typing import Any

SCHEMA_VERSION = 1
STATUSES = ("completed", "failed", "running")
SECTIONS = ("train", "model", "data", "eval", "provenance", "artifacts")
NUMERIC_SECTIONS = ("train", "model")  # every value a number or null
EVAL_TEXT = ("weights", "split")  # the eval keys that hold text; nested objects are settings


def schema_error(results: dict[str, Any]) -> str | None:
    """Why `results` is not a readable schema_version 1 record, or None when it is."""
    version = results.get("schema_version")
    if version != SCHEMA_VERSION or isinstance(version, bool):
        return (f"schema_version {version!r} is not {SCHEMA_VERSION}, the version this "
                "analysis reads")
    if results.get("status") not in STATUSES:
        return f"status {results.get('status')!r} is not one of {', '.join(STATUSES)}"
    for key, kinds in (("error", (str,)), ("factors", (dict,))):
        if results.get(key) is not None and not isinstance(results[key], kinds):
            return _wrong(key, results[key], f"{kinds[0].__name__} or null")
    for section in SECTIONS:
        if not isinstance(results.get(section, {}), dict):
            return _wrong(section, results[section], "an object")
    for section in NUMERIC_SECTIONS:
        for key, value in results.get(section, {}).items():
            if not _number_or_null(value):
                return _wrong(f"{section}.{key}", value, "a number or null")
    return _eval_error(results.get("eval", {}))


def _eval_error(evaluation: dict[str, Any]) -> str | None:
    for key, value in evaluation.items():
        if key in EVAL_TEXT:
            ok = value is None or isinstance(value, str)
        else:
            ok = isinstance(value, (dict, list)) or _number_or_null(value)
        if not ok:
            return _wrong(f"eval.{key}", value, "text" if key in EVAL_TEXT
                          else "a number, null or an object of settings")
    return None


def _number_or_null(value: Any) -> bool:
    return value is None or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _wrong(key: str, value: Any, expected: str) -> str:
    return f"{key} is {value!r:.60} ({type(value).__name__}), expected {expected}"
