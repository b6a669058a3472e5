"""What a run does when its directory holds an earlier attempt: a sweep started again with
the same `hydra.sweep.dir`, a run killed and restarted, or a SLURM job requeued.

    earlier results.json     action
    none                     start (from ckpt_path, if one is given)
    "completed"              skip
    "running" (killed)       resume
    "failed", interrupted    resume (Ctrl+C, SIGTERM, SLURM preemption or time limit)
    "failed"                 skip; with retry_failed=true, resume (or start over)

A run resumes from its intact checkpoint with the highest step (final.ckpt once training has
ended, else last.ckpt or a step checkpoint); a damaged one is passed over, and with none left
the run starts over. A run started in a used directory with a different config is not the
same job: it starts (from ckpt_path if given, e.g. to continue training with a larger
trainer.max_steps). Configs are compared without their run-local keys (run_identity), so a run
directory reached through a symlink or copied elsewhere holds the same run. One process at a
time holds a run directory (rundir/lock.py).
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from text2sign.run.checkpointing import resume_point
from text2sign.rundir.identity import run_config
from text2sign.rundir.schema import ARTIFACTS, Attempt, UnreadableResults, empty, read_results

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
    earlier: list[dict[str, Any]] = field(default_factory=list)  # provenance.attempts so far
    notes: list[str] = field(default_factory=list)  # checkpoints passed over, and why


# Says how to start a run, not what it computes (run-local or not: see run_identity).
_HOW_TO_RUN = "ckpt_path"


def plan_attempt(run_dir: str | Path, retry_failed: bool, config: dict[str, Any]) -> Plan:
    """What to do in `run_dir` with the resolved `config` of this attempt."""
    run_dir = Path(run_dir)
    previous = _read_results(run_dir)
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
    earlier = earlier_attempts(run_dir, previous)
    point = resume_point(run_dir, lambda saved: _what(saved) == _what(config))
    if point.path is None:
        why = "; ".join(point.passed_over) or "no checkpoint"
        return Plan("start", f"attempt {number}: the earlier attempt ({status}) left no usable "
                    f"checkpoint ({why}): starting over", number, previous, None, earlier,
                    point.passed_over)
    rel = point.path.relative_to(run_dir)
    return Plan("resume", f"attempt {number}: resuming from {rel} (step {point.step})", number,
                previous, point.path, earlier, point.passed_over)


def earlier_attempts(run_dir: Path, previous: dict[str, Any]) -> list[dict[str, Any]]:
    """`provenance.attempts` of the earlier results.json. An attempt whose process was killed
    (status still "running") is marked "killed", with the training time it logged before."""
    provenance = previous.get("provenance", {})
    attempts = [_attempt(a) for a in provenance.get("attempts", [])]
    if not attempts:  # written before attempts were listed: one entry for them all
        attempts = [_attempt({"attempt": provenance.get("attempt", 1),
                              "status": previous.get("status"),
                              "train_time_s": previous.get("train", {}).get("time_s")})]
    last = attempts[-1]
    if previous.get("status") == "running":
        before = sum(a.get("train_time_s") or 0.0 for a in attempts[:-1])
        last.update(status="killed", finished_at=None,
                    train_time_s=round(max(0.0, _logged_train_time(run_dir) - before), 3))
    return attempts


def _attempt(entry: dict[str, Any]) -> dict[str, Any]:
    """An entry of provenance.attempts with the schema's keys (older code wrote fewer)."""
    declared = empty(Attempt)
    return {**declared, "notes": [], **{k: v for k, v in entry.items() if k in declared}}


def _logged_train_time(run_dir: Path) -> float:
    """The run's training time at the last step its training log holds (0 without one)."""
    try:
        with open(run_dir / ARTIFACTS["training_metrics"], newline="") as f:
            last = None
            for last in csv.DictReader(f):
                pass
    except FileNotFoundError:
        return 0.0
    return float(last["elapsed_s"]) if last and last.get("elapsed_s") else 0.0


def _what(config: dict[str, Any] | None) -> dict[str, Any] | None:
    """What a run computes, wherever its directory is."""
    if not isinstance(config, dict):
        return None
    return {k: v for k, v in run_config(config).items() if k != _HOW_TO_RUN}


def _read_results(run_dir: Path) -> dict[str, Any] | None:
    try:
        return read_results(run_dir / "results.json")
    except FileNotFoundError:
        return None
    except UnreadableResults as err:  # written atomically, by this schema: this is foreign
        log.warning("cannot read %s (%s): treating the run as new", run_dir / "results.json", err)
        return None


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as err:  # these are written atomically: this is foreign
        log.warning("cannot read %s (%s): treating the run as new", path, err)
        return None
