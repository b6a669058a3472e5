"""The clips a study shows: the groups of a sweep, as the analysis groups them, and each
group's sample GIFs by prompt and sampling seed (samples/index.json of its completed runs)."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from itertools import combinations, product
from pathlib import Path
from typing import Any

from text2sign.analysis import AnalysisError
from text2sign.analysis.collect import Run, collect
from text2sign.analysis.study import build_study

log = logging.getLogger(__name__)


class StudyError(Exception):
    """A sweep that cannot be studied, or a database of another sweep: exit code 2."""


@dataclass(frozen=True)
class Clip:
    group: str  # the group's label in the analysis (factor=value ...)
    run: str  # the run directory, relative to the sweep
    seed: str  # the run's training seed, as the analysis prints it
    prompt: str
    sample_seed: Any  # the seed of the clip's noise (index.json's "seed")
    path: str  # the GIF, relative to the sweep


@dataclass(frozen=True)
class Unit:
    """Two clips of one prompt and sampling seed from two groups: what a pair shows."""

    a: Clip
    b: Clip

    @property
    def groups(self) -> tuple[str, str]:
        return self.a.group, self.b.group


@dataclass
class Catalog:
    root: Path  # the sweep, resolved
    groups: list[str]  # labels of the groups with samples, in the analysis's order
    units: list[Unit]  # those still offered: replaced, never changed, when clips go

    @property
    def files(self) -> set[str]:
        """Every GIF the study may serve, relative to the sweep."""
        return {clip.path for unit in self.units for clip in (unit.a, unit.b)}

    def gone(self, clip: Clip) -> bool:
        return not (self.root / clip.path).is_file()

    def drop(self, clip: Clip) -> None:
        """Offer no more pairs with `clip` (its file is gone), nor with any clip of its run
        when the run has gone (its results.json)."""
        run_gone = not (self.root / clip.run / "results.json").is_file()

        def dropped(other: Clip) -> bool:
            return other.path == clip.path or run_gone and other.run == clip.run

        before = len(self.units)
        self.units = [unit for unit in self.units if not (dropped(unit.a) or dropped(unit.b))]
        log.warning("%s is gone: %d pair(s) of clips no longer offered, %d left",
                    clip.run if run_gone else clip.path, before - len(self.units), len(self.units))


def find_clips(sweep: Path, on_conflict: str = "error") -> Catalog:
    """The groups of `sweep` with sample clips and every unit of comparison between them."""
    root = sweep.resolve()
    try:
        study = build_study(collect([root], skip=root / "analysis"), on_conflict=on_conflict)
    except AnalysisError as error:
        raise StudyError(str(error)) from error
    clips = {study.label(group): [clip for run in group.completed
                                  for clip in run_clips(run, root, study.label(group))]
             for group in study.groups}
    with_clips = [label for label, found in clips.items() if found]
    if not with_clips:
        raise StudyError(f"no completed run under {sweep} has sample clips (samples/index.json "
                         f"and its GIFs, written after training by callbacks.samples): train the "
                         f"sweep with samples on, then serve it")
    if len(with_clips) < 2:
        raise StudyError(f"{sweep} has one group with sample clips ({with_clips[0]}) of "
                         f"{len(study.groups)} group(s) of completed runs: a study compares two "
                         f"or more configurations; serve a sweep over a factor "
                         f"(python train.py -m ema=true,false)")
    for label in clips.keys() - set(with_clips):
        log.warning("group %s has no sample clips: left out of the study", label)
    units = [unit for a, b in combinations(with_clips, 2) for unit in pair_units(clips[a], clips[b])]
    if not units:
        raise StudyError(f"no two groups of {sweep} have a clip of the same prompt with the same "
                         f"sampling seed (callbacks.samples.prompts and eval.seed): nothing to "
                         f"compare side by side")
    return Catalog(root, with_clips, units)


def run_clips(run: Run, root: Path, group: str) -> list[Clip]:
    """The run's GIFs listed in samples/index.json; an entry naming a file outside samples/
    or the sweep (`..`, an absolute path, a link out) or a missing one is left out with a
    warning."""
    samples = (run.path / "samples").resolve()
    try:
        index = json.loads((samples / "index.json").read_text())
        entries = [(entry["text"], entry["gif"]) for entry in index["prompts"]]
    except (OSError, ValueError, KeyError, TypeError):
        return []
    clips = []
    for text, gif in entries:
        path = (samples / str(gif)).resolve()
        if (path.parent != samples or not path.is_relative_to(root) or path.suffix != ".gif"
                or not path.is_file()):
            log.warning("%s/index.json lists %r, not a GIF in that folder: left out", samples, gif)
            continue
        clips.append(Clip(group, str(run.path.resolve().relative_to(root)), str(run.seed),
                          str(text), index.get("seed"), str(path.relative_to(root))))
    return clips


def pair_units(a: list[Clip], b: list[Clip]) -> list[Unit]:
    """Clips of two groups with the same prompt and sampling seed, from runs of the same
    training seed where the groups share one (a paired comparison), else from any runs."""
    units = []
    for key in dict.fromkeys((clip.prompt, clip.sample_seed) for clip in a):
        mine = [clip for clip in a if (clip.prompt, clip.sample_seed) == key]
        theirs = [clip for clip in b if (clip.prompt, clip.sample_seed) == key]
        pairs = list(product(mine, theirs))
        same_seed = [(x, y) for x, y in pairs if x.seed == y.seed]
        units += [Unit(x, y) for x, y in same_seed or pairs]
    return units
