"""Runs grouped by their description (identity.describe) minus the seed, and the shortest
names that tell the groups apart.

A factor is a key whose value differs between groups. Its column is named by a recorded
setting (group option, override, ema) when one takes one value per group and determines the
key: a named ablation (`ablation`, whose arms are labelled by their names), else the setting
named like the key or its parent (`text_encoder` for `text_encoder.trainable`), else the
shortest such setting (`ema` for `callbacks.ema.enabled`); the key itself when no setting
says it. A setting whose value differs between runs that ran the same configuration (a
default-valued override, a preset that changed nothing) is not a factor.
"""

from __future__ import annotations

from dataclasses import dataclass

from text2sign.analysis.collect import Run
from text2sign.analysis.identity import Description, setting, setting_names
from text2sign.analysis.levels import ABSENT, Level, level

ABLATION = "ablation"  # the setting of a named ablation's arm (conf/ablation/)


@dataclass
class Group:
    levels: dict[str, Level]  # the factors' values: the table columns
    runs: list[Run]  # ordered by seed: those that completed and those that failed (study.counts)
    settings: dict[str, Level]  # every key and named setting with one value in the group

    def label(self, factors: list[str]) -> str:
        return " ".join(f"{name}={self.levels[name][2]}" for name in factors) or "all runs"

    @property
    def seeds(self) -> list[str]:
        return [level(run.seed)[2] for run in self.runs]

    @property
    def completed(self) -> list[Run]:
        """The runs that completed (the others failed diverging: study.counts)."""
        return [run for run in self.runs if run.status == "completed"]

    @property
    def diverged(self) -> list[Run]:
        return [run for run in self.runs if run.diverged]

    @property
    def failed(self) -> list[Run]:
        """The runs that failed without diverging: seeds without figures."""
        return [run for run in self.runs if run.status == "failed" and not run.diverged]

    @property
    def size(self) -> str:
        """`3`, or `3 (1 diverged, 1 failed)`: the group's seeds, and those that did not end
        well."""
        parts = [f"{len(runs)} {word}" for runs, word in ((self.diverged, "diverged"),
                                                          (self.failed, "failed")) if runs]
        return f"{len(self.runs)}" + (f" ({', '.join(parts)})" if parts else "")


@dataclass
class Grouping:
    groups: list[Group]  # in sorted order of the factors' values
    factors: list[str]  # the column names, sorted
    common: dict[str, str]  # named settings with one value in every run
    not_factors: dict[str, str]  # named settings that differ between runs: why not a factor


def group_runs(runs: list[Run], descriptions: list[Description]) -> Grouping:
    if not runs:
        return Grouping([], [], {}, {})
    seeds = [level(run.seed) for run in runs]
    # model.seed: ${seed} and the like, in every run whose configuration has the key (runs of
    # other code, such as AblationRunner's, lack it)
    seed_keys = {"seed"} | {key for key in descriptions[0]
                            if all(d[key] in (seed, ABSENT) for d, seed in zip(descriptions, seeds))
                            and any(d[key] != ABSENT for d in descriptions)}
    varying = [key for key in descriptions[0]
               if key not in seed_keys and len({d[key] for d in descriptions}) > 1]
    members: dict[tuple, list[int]] = {}
    for i, description in enumerate(descriptions):
        members.setdefault(tuple(description[key] for key in varying), []).append(i)
    parts = list(members.values())
    names = setting_names(runs)
    in_parts = {name: [{setting(runs[i], name) for i in part} for part in parts]
                for name in names}
    one_per_group = {name: [next(iter(values)) for values in sets]
                     for name, sets in in_parts.items() if all(len(v) == 1 for v in sets)}
    columns: dict[str, list[Level]] = {}
    for key in varying:
        values = [descriptions[part[0]][key] for part in parts]
        name = _name(key, values, one_per_group)
        columns[name] = one_per_group.get(name, values)
    factors = sorted(columns)
    groups = []
    for k, part in enumerate(parts):
        settings = {key: value for key, value in descriptions[part[0]].items()
                    if key not in seed_keys}
        settings.update((name, values[k]) for name, values in one_per_group.items())
        ordered = sorted((runs[i] for i in part), key=lambda run: (level(run.seed), run.name))
        groups.append(Group({name: columns[name][k] for name in factors}, ordered, settings))
    groups.sort(key=lambda group: [group.levels[name] for name in factors])
    everywhere = {name: set().union(*sets) for name, sets in in_parts.items()}
    common = {name: next(iter(values))[2] for name, values in everywhere.items()
              if len(values) == 1}
    not_factors = {name: ("varies only together with other factors" if name in one_per_group
                          else "differs between runs that ran the same configuration")
                   for name, values in everywhere.items()
                   if len(values) > 1 and name not in columns}
    return Grouping(groups, factors, common, not_factors)


def _name(key: str, values: list[Level], one_per_group: dict[str, list[Level]]) -> str:
    """The setting that names `key` (see the module's docstring), else the key."""
    says = [name for name, named in one_per_group.items() if _determines(named, values)]
    if ABLATION in says:
        return ABLATION
    parents = [name for name in says if key == name or key.startswith(name + ".")]
    if parents:
        return max(parents, key=len)
    return min(says, key=lambda name: (len(name), name)) if says else key


def _determines(named: list[Level], values: list[Level]) -> bool:
    """Whether each value of `named` goes with one value of the key, group by group."""
    seen: dict[Level, Level] = {}
    return all(seen.setdefault(a, b) == b for a, b in zip(named, values))
