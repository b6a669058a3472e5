"""Which two clips to show next: every pair of groups is compared about equally often."""

from __future__ import annotations

import random
from collections import Counter, defaultdict

from text2sign.study.clips import Clip, Unit

SIDES = random.SystemRandom()  # the rater cannot predict which side a group takes


def unit_key(a: str, b: str) -> frozenset[str]:
    """A unit's key in the loads: its two clips' paths, in either order."""
    return frozenset((a, b))


def next_pair(units: list[Unit], loads: Counter[frozenset[str]]) -> tuple[Clip, Clip]:
    """(left, right): from the pair of groups with the fewest comparisons so far, its least
    compared unit (a prompt, and two runs), ties and sides drawn at random. `loads` counts
    the comparisons of each unit (`unit_key`): votes, and pairs being shown."""
    by_groups: dict[frozenset[str], list[Unit]] = defaultdict(list)
    for unit in units:
        by_groups[frozenset(unit.groups)].append(unit)

    def load(unit: Unit) -> int:
        return loads[unit_key(unit.a.path, unit.b.path)]

    totals = {groups: sum(map(load, members)) for groups, members in by_groups.items()}
    groups = SIDES.choice([g for g, total in totals.items() if total == min(totals.values())])
    members = by_groups[groups]
    least = min(map(load, members))
    unit = SIDES.choice([unit for unit in members if load(unit) == least])
    return (unit.a, unit.b) if SIDES.random() < 0.5 else (unit.b, unit.a)
