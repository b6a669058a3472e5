"""Find every results.json under the results directories and read each run's record.

A run that failed, is still running or left a half-written file is kept with its status and
reason, so the report can list it; only completed runs enter the statistics.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from text2sign.analysis import AnalysisError
from text2sign.analysis.configs import read_config
from text2sign.rundir.factors import saved_factors
from text2sign.rundir.schema import STATUSES as RECORDED
from text2sign.rundir.schema import UnreadableResults, nonfinite, read_results

STATUSES = (*RECORDED, "unreadable")
DIVERGED = "diverged"  # a figure of a run that diverged
NONFINITE_LOSS = "NonFiniteLossError"  # a train.py run stopped by a NaN or infinite loss


@dataclass
class Run:
    path: Path  # the run directory
    name: str  # as printed: the results directory as given, then the path below it
    status: str  # one of STATUSES
    error: str | None = None
    factors: dict[str, Any] = field(default_factory=dict)
    results: dict[str, Any] = field(default_factory=dict)
    factors_from: str = "results.json"  # or ".hydra", or "nowhere"
    config: dict[str, Any] | None = None  # configs.read_config: None without metadata.json
    diverged: dict[str, str] = field(default_factory=dict)  # what diverged (run_diverged)

    @property
    def seed(self) -> Any:
        return self.factors.get("seed", (self.config or {}).get("seed"))


def collect(results_dirs: list[Path], skip: Path) -> list[Run]:
    """Every run under `results_dirs` (sorted by name, each file once), leaving out the `skip`
    directory."""
    runs, seen = [], set()
    for root in results_dirs:
        if not root.is_dir():
            raise AnalysisError(f"results directory {str(root)!r} does not exist "
                                "(or is not a directory)")
        found = find_results(root, skip)
        if not found:
            raise AnalysisError(f"no results.json under {str(root)!r}: train first "
                                "(python train.py -m ...) or point analyze.py at an outputs tree")
        for path in found:
            if path.resolve() not in seen:  # nested results directories: one file, one run
                seen.add(path.resolve())
                runs.append(read_run(path, str(root / path.parent.relative_to(root))))
    return sorted(runs, key=lambda run: run.name)


def output_dir_note(results_dirs: list[Path], out: Path) -> str | None:
    """What the search left out because the output directory lies inside a results tree."""
    inside = next((root for root in results_dirs if out.resolve() != root.resolve()
                   and out.resolve().is_relative_to(root.resolve())), None)
    if inside is None:
        return None
    left_out = len(find_results(out, skip=out)) if out.is_dir() else 0
    return (f"{out}, the output directory (inside {inside})"
            + (f": {left_out} results.json in it left out" if left_out else ""))


def find_results(root: Path, skip: Path) -> list[Path]:
    """results.json files at any depth; a run directory's own subfolders are not searched."""
    found = []
    skip = skip.resolve()
    for dirpath, dirnames, filenames in os.walk(root):
        if "results.json" in filenames:
            found.append(Path(dirpath) / "results.json")
            dirnames.clear()  # checkpoints/, tensorboard/ ... hold no runs
            continue
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".")
                             and (Path(dirpath) / d).resolve() != skip)
    return found


def read_run(path: Path, name: str) -> Run:
    results, status, error = _read(path)
    factors, source = _factors(results, path.parent)
    diverged = run_diverged(results, status, error) if status != "unreadable" else {}
    config = read_config(path.parent) if status in ("completed", "failed") else None
    return Run(path.parent, name, status, error, factors, results, source, config, diverged)


def run_diverged(results: dict[str, Any], status: str, error: str | None) -> dict[str, str]:
    """What diverged in a run, by key: results.json's `diverged`, the NaN or infinite numbers
    a record of older code holds, and the loss that stopped a failed run."""
    found = dict(results.get("diverged") or {})
    sections = {section: results.get(section) for section in ("train", "model", "eval")}
    found.update((key, str(value)) for key, value in nonfinite(sections))
    if status == "failed" and (error or "").startswith(NONFINITE_LOSS):
        found["train.loss"] = error
    return found


def _read(path: Path) -> tuple[dict[str, Any], str, str | None]:
    """(results, status, error); a half-written or foreign file is "unreadable"."""
    try:
        results = read_results(path)
    except OSError as error:
        return {}, "unreadable", f"half-written results.json ({error})"
    except UnreadableResults as error:
        return error.results, "unreadable", str(error)
    return results, results["status"], results.get("error")


def _factors(results: dict[str, Any], run_dir: Path) -> tuple[dict[str, Any], str]:
    """The run's factors and where they came from: results.json, else Hydra's files."""
    factors = results.get("factors")
    if isinstance(factors, dict) and factors:
        return factors, "results.json"
    factors = saved_factors(run_dir)
    return factors, ".hydra" if factors else "nowhere"
