"""What a run is, and which runs are the same run.

A run is described by its resolved configuration (run_identity.run_config, which holds the
seed), or, when some completed run has no metadata.json, by its recorded factors and seed.
Runs with the same description made by the same code (git commit, uncommitted changes or not)
are the same run found twice: one copy is used. Runs with the same description made by
different code are a conflict: which copy to use is the user's choice (--on-conflict).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from text2sign.analysis import AnalysisError
from text2sign.analysis.collect import Run
from text2sign.analysis.levels import ABSENT, DEFAULT, Level, level
from text2sign.rundir.identity import RUN_LOCAL

ON_CONFLICT = ("error", "newest", "oldest")
# Factors that say where and how to run: never a setting of a run.
NOT_SETTINGS = RUN_LOCAL

Description = dict[str, Level]


@dataclass
class Copies:
    """Runs with one description: `used` enters the statistics, `others` do not."""

    used: Run
    others: list[Run]
    conflict: bool  # made by different code
    rule: str  # how `used` was chosen


def setting_names(runs: list[Run]) -> list[str]:
    """The names of the recorded factors (group options, overrides, ema), seed excluded."""
    return sorted({name for run in runs for name in run.factors
                   if name != "seed" and name.split(".")[0] not in NOT_SETTINGS})


def setting(run: Run, name: str) -> Level:
    """A named setting's value in a run: as recorded, else from its configuration; `default`
    where the configuration has the setting's part but no choice was recorded (or there is no
    configuration to tell), `absent` where the configuration has no such part (a run of other
    code: AblationRunner's has no text encoder)."""
    if name in run.factors:
        return level(run.factors[name])
    if run.config is None:
        return DEFAULT
    if name in run.config:
        return level(run.config[name])
    return DEFAULT if any(key.startswith(name + ".") for key in run.config) else ABSENT


def describe(runs: list[Run], by_config: bool) -> list[Description]:
    """Each run's description, over the same keys (ABSENT where a run lacks one)."""
    names = setting_names(runs)
    found = [{key: level(value) for key, value in run.config.items()} if by_config
             else {**{name: setting(run, name) for name in names}, "seed": level(run.seed)}
             for run in runs]
    keys = sorted(set().union(*found))
    return [{key: one.get(key, ABSENT) for key in keys} for one in found]


def code_version(run: Run) -> tuple[Any, Any]:
    provenance = run.results.get("provenance") or {}
    return provenance.get("git_commit"), provenance.get("git_dirty")


def version_text(run: Run) -> str:
    commit, dirty = code_version(run)
    code = f"commit {commit[:10]}" if commit else "no git commit recorded"
    started = (run.results.get("provenance") or {}).get("started_at") or "start not recorded"
    return f"{code}{' with uncommitted changes' if dirty else ''}, started {started}"


def deduplicate(runs: list[Run], descriptions: list[Description],
                on_conflict: str) -> tuple[list[Run], list[Copies]]:
    """(the runs to use, the sets of copies). Of identical copies the first started is used;
    of conflicting ones the newest or oldest, or an AnalysisError lists them; a completed copy
    before one that failed."""
    same: dict[tuple, list[Run]] = defaultdict(list)
    for run, description in zip(runs, descriptions):
        same[tuple(description.items())].append(run)
    copies = []
    for found in same.values():
        if len(found) > 1:
            found.sort(key=lambda run: (_started(run), run.name))
            conflict = len({code_version(run) for run in found}) > 1
            usable = [run for run in found if run.status == "completed"] or found
            used = usable[-1] if conflict and on_conflict == "newest" else usable[0]
            rule = f"--on-conflict {on_conflict}" if conflict else "the first started"
            copies.append(Copies(used, [run for run in found if run is not used], conflict,
                                 rule))
    conflicts = [c for c in copies if c.conflict]
    if conflicts and on_conflict == "error":
        raise AnalysisError(
            f"{len(conflicts)} run(s) were made twice, with the same configuration and seed "
            "but different code, and cannot be merged:\n"
            + "\n".join(f"{k:3d}. " + "\n     ".join(f"{run.name} ({version_text(run)})"
                                                   for run in [c.used, *c.others])
                        for k, c in enumerate(conflicts, 1))
            + "\nchoose with --on-conflict newest or --on-conflict oldest, or move the runs you"
              " do not want out of the results directories")
    dropped = {id(run) for c in copies for run in c.others}
    return [run for run in runs if id(run) not in dropped], copies


def _started(run: Run) -> float:
    """When the run started (provenance.started_at), else when its results.json was written."""
    try:
        return datetime.fromisoformat(run.results["provenance"]["started_at"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return (run.path / "results.json").stat().st_mtime
