"""The end of a multirun: what became of every job, and an exit status that says it.

Configured as a Hydra callback (conf/hydra/default.yaml). Jobs may run in this process, in
worker processes or on other machines, so the summary is read from the job directories of
the sweep: each one's results.json, and its lock for a job another process still runs.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from text2sign.run.lock import held_by
from text2sign.run.record import now_iso
from text2sign.schema import read_results

log = logging.getLogger(__name__)


class SweepSummary(Callback):
    """Lists the sweep's jobs as completed, failed or skipped, each with its directory and
    reason, and exits with status 1 unless every job has completed."""

    def __init__(self) -> None:
        self.started = now_iso()

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.started = now_iso()

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        outcomes = [job_outcome(hydra_dir.parent, self.started)
                    for hydra_dir in sorted(sweep_dir.rglob(".hydra"))]
        lines = [f"sweep {sweep_dir}: " + ", ".join(
            f"{sum(o[0] == kind for o in outcomes)} {kind}"
            for kind in ("completed", "failed", "skipped"))]
        lines += [f"  {kind:9} {run_dir.relative_to(sweep_dir)}: {reason}"
                  for kind, run_dir, reason, _ in outcomes]
        unfinished = sum(not done for *_, done in outcomes)
        if unfinished:
            log.error("%s\n%d of %d jobs have not completed", "\n".join(lines), unfinished,
                      len(outcomes))
            raise SystemExit(1)  # Hydra itself exits 0 whatever became of the jobs
        log.info("%s", "\n".join(lines))


def job_outcome(run_dir: Path, sweep_started: str) -> tuple[str, Path, str, bool]:
    """(completed | failed | skipped, run_dir, reason, whether the run is complete)."""
    holder = held_by(run_dir)  # first: its record is the holder's, whatever it says yet
    if holder is not None:
        return "skipped", run_dir, f"in use by {holder}", False
    try:
        results = read_results(run_dir / "results.json")
    except (OSError, ValueError) as err:
        return "failed", run_dir, f"no readable results.json ({err}): see its train.log", False
    status, error = results.get("status"), results.get("error")
    attempts = results.get("provenance", {}).get("attempts") or [results.get("provenance", {})]
    ran_now = (attempts[-1].get("started_at") or "") >= sweep_started
    if status == "completed":
        return ("completed", run_dir, f"attempt {len(attempts)}", True) if ran_now else (
            "skipped", run_dir, "completed earlier", True)
    if status == "running":
        return ("failed", run_dir, "its process died (killed?): run the sweep again to resume it",
                False)
    if results.get("interrupted"):
        return "failed", run_dir, f"interrupted ({error}): run the sweep again to resume it", False
    if ran_now:
        return "failed", run_dir, error, False
    return "skipped", run_dir, f"failed earlier ({error}); retry_failed=true runs it again", False
