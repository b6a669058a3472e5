"""What a run is: its resolved configuration without the keys that only say where and how
it ran. Shared by the resume logic (attempts.py: is this directory's run the same job?), the
evaluation of a checkpoint (train=false takes these keys from the command line) and
analyze.py (which runs are the same run?).

A run directory reached through a symlink or copied elsewhere is still the same run: its
absolute paths (the run directory, its checkpoint and log folders) and cache folders differ,
nothing it computes does.
"""

from __future__ import annotations

from typing import Any

# Top-level keys that say where and how to run: never part of what a run computes.
RUN_LOCAL = ("hydra", "paths", "retry_failed")
# Classes that moved (old path -> new): a config written before names the old path, and is
# still the same run; checkpointing.py instantiates the new one.
MOVED = {"text2sign.callbacks.evaluation.Evaluation": "text2sign.evaluation.held_out.Evaluation",
         "text2sign.callbacks.samples.Samples": "text2sign.evaluation.samples.Samples"}


def run_config(config: dict[str, Any]) -> dict[str, Any]:
    """{dotted key: value} without the run-local keys (see run_local)."""
    own = own_dir(config)
    return {key: MOVED.get(value, value) if key.endswith("_target_") else value
            for key, value in flatten(config).items() if not run_local(key, value, own)}


def run_local(key: str, value: Any, own: str) -> bool:
    """Whether a dotted key of a config whose run directory is `own` is run-local: under
    RUN_LOCAL, a `cache_dir`, or a path inside the run's own directory (checkpoint and log
    folders, the checkpoint an interrupted run resumed from)."""
    return (key.split(".")[0] in RUN_LOCAL or key.rsplit(".", 1)[-1] == "cache_dir"
            or bool(own) and isinstance(value, str)
            and (value == own or value.startswith(own + "/")))


def own_dir(config: dict[str, Any]) -> str:
    """The run directory a config was resolved for ('' if it names none)."""
    return str((config.get("paths") or {}).get("output_dir") or "").rstrip("/")


def moved_targets(node: Any) -> Any:
    """A config (plain data) with every `_target_` of a moved class at its new path."""
    if isinstance(node, dict):
        return {key: MOVED.get(value, value) if key == "_target_" else moved_targets(value)
                for key, value in node.items()}
    return [moved_targets(value) for value in node] if isinstance(node, list) else node


def flatten(node: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested objects as dotted keys (an empty one holds no setting); lists stay values."""
    flat = {}
    for key, value in node.items():
        if isinstance(value, dict):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat
