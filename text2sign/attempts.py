"""What a run does when its directory holds an earlier attempt: a sweep started again with
the same `hydra.sweep.dir`, a run killed and restarted, or a SLURM job requeued.

    earlier results.json     action
    none                     start (from ckpt_path, if one is given)
    "completed"              skip
    "running" (killed)       resume from checkpoints/last.ckpt
    "failed", interrupted    resume (Ctrl+C, SIGTERM, SLURM preemption or time limit)
    "failed"                 skip; with retry_failed=true, resume (or start over)

A run started in a used directory with a different config is not the same job: it starts
(from ckpt_path if given, e.g. to continue training with a larger trainer.max_steps).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from text2sign.checkpointing import last_checkpoint

log = logging.getLogger(__name__)

# Exceptions that stop a run from outside; such a run is resumed, never counted as failed.
INTERRUPTIONS = (KeyboardInterrupt, SystemExit)


@dataclass
class Plan:
    action: str  # "start" | "resume" | "skip"
    reason: str
    attempt: int = 1  # the number of this attempt at the run
    previous: dict[str, Any] | None = None  # the earlier results.json
    ckpt_path: Path | None = None  # where a resumed run continues from


# Keys that say how to start a run, not what it computes.
_HOW_TO_RUN = ("ckpt_path", "retry_failed")


def plan_attempt(run_dir: str | Path, retry_failed: bool, config: dict[str, Any]) -> Plan:
    """What to do in `run_dir` with the resolved `config` of this attempt."""
    run_dir = Path(run_dir)
    previous = _read_json(run_dir / "results.json")
    if previous is None:
        return Plan("start", "new run")
    number = previous.get("provenance", {}).get("attempt", 1) + 1
    status, error = previous.get("status"), previous.get("error")
    if _what(config) != _what((_read_json(run_dir / "metadata.json") or {}).get("config")):
        return Plan("start", "the directory held a run of another config: starting", number)
    if status == "completed":
        return Plan("skip", "completed earlier: skipped", number, previous)
    if status == "failed" and not previous.get("interrupted") and not retry_failed:
        return Plan("skip", f"failed earlier ({error}): skipped; retry_failed=true runs it again",
                    number, previous)
    ckpt = last_checkpoint(run_dir)
    if ckpt is None:
        return Plan("start", f"earlier attempt ({status}) left no checkpoint: starting over",
                    number, previous)
    return Plan("resume", f"attempt {number}: resuming from {ckpt}", number, previous, ckpt)


def _what(config: dict[str, Any] | None) -> dict[str, Any] | None:
    return None if config is None else {k: v for k, v in config.items() if k not in _HOW_TO_RUN}


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:  # these are written atomically: this is foreign
        log.warning("cannot read %s (%s): treating the run as new", path, err)
        return None
