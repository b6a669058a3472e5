"""The end of a multirun: what became of every job, and an exit status that says it.

Configured as a Hydra callback (conf/hydra/default.yaml); `python -m
text2sign.launch.sweep_summary SWEEP_DIR` shows a sweep's state at any time (a SLURM sweep's
jobs run while its command waits, or after it was cancelled). Jobs may run in this process, in
worker processes or on other machines, so the summary is read from the job directories of
the sweep: each one's results.json, and its lock for a job another process still runs.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from text2sign.rundir.lock import held_by
from text2sign.rundir.record import now_iso
from text2sign.rundir.schema import read_results

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
        outcomes = [job_outcome(run_dir, self.started) for run_dir in job_dirs(sweep_dir)]
        if not outcomes:  # e.g. jobs that wrote elsewhere, in their own working directory
            log.error("sweep %s: no job directory in it: its jobs did not start here", sweep_dir)
            raise SystemExit(1)
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
    """(completed | failed | skipped, run_dir, reason, whether the run is complete), of a job
    of the sweep that started at `sweep_started`."""
    state, detail, results = job_state(run_dir)
    attempts = results.get("provenance", {}).get("attempts") or [results.get("provenance", {})]
    ran_now = (attempts[-1].get("started_at") or "") >= sweep_started
    if state == "running":
        return "skipped", run_dir, detail, False
    if state == "completed":
        return ("completed", run_dir, detail, True) if ran_now else (
            "skipped", run_dir, "completed earlier", True)
    if state == "to resume" or ran_now or not results:
        return "failed", run_dir, detail, False
    return "skipped", run_dir, f"failed earlier ({detail}); retry_failed=true runs it again", False


def job_state(run_dir: Path) -> tuple[str, str, dict[str, Any]]:
    """What a job directory holds now: (state, detail, its results.json). The state is
    completed, running (a live process holds it), to resume (interrupted or killed: the
    sweep run again resumes it) or failed."""
    holder = held_by(run_dir)  # first: its record is the holder's, whatever it says yet
    if holder is not None:
        return "running", f"in use by {holder}", {}
    try:
        results = read_results(run_dir / "results.json")
    except (OSError, ValueError) as err:
        return "failed", f"no readable results.json ({err}): see its train.log", {}
    status, error = results.get("status"), results.get("error")
    if status == "completed":
        attempts = results.get("provenance", {}).get("attempts") or [{}]
        return "completed", f"attempt {len(attempts)}", results
    if status == "running":
        return "to resume", "its process died (killed?): run the sweep again to resume it", results
    if results.get("interrupted"):
        return "to resume", f"interrupted ({error}): run the sweep again to resume it", results
    return "failed", error, results


def main(argv: list[str] | None = None) -> int:
    """`python -m text2sign.launch.sweep_summary SWEEP_DIR`: each job's state now; exit
    status 1 unless every job has completed."""
    parser = argparse.ArgumentParser(prog="python -m text2sign.launch.sweep_summary",
                                     description=main.__doc__)
    parser.add_argument("sweep_dir", type=Path, help="the sweep's hydra.sweep.dir")
    sweep_dir = parser.parse_args(argv).sweep_dir
    if not sweep_dir.is_dir():
        parser.error(f"{sweep_dir} is not a folder: give a sweep's hydra.sweep.dir, "
                     "e.g. outputs/multirun/<sweep>")
    states = [(run_dir, *job_state(run_dir)[:2]) for run_dir in job_dirs(sweep_dir)]
    kinds = ("completed", "running", "to resume", "failed")
    print(f"sweep {sweep_dir}: {len(states)} jobs started: " + ", ".join(
        f"{sum(s == kind for _, s, _ in states)} {kind}" for kind in kinds))
    for run_dir, state, detail in states:
        print(f"  {state:9} {run_dir.relative_to(sweep_dir)}: {detail}")
    return 0 if all(state == "completed" for _, state, _ in states) else 1


def job_dirs(sweep_dir: Path) -> list[Path]:
    """The directories of the sweep's jobs that have started (Hydra writes their .hydra/)."""
    return [hydra_dir.parent for hydra_dir in sorted(sweep_dir.rglob(".hydra"))]


if __name__ == "__main__":
    sys.exit(main())
