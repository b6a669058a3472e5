"""Train/val/test splits of a clip list: signer-disjoint, random, or the dataset's own."""

from __future__ import annotations

from collections import defaultdict
from enum import Enum

import numpy as np

from text2sign.data.clips import Clip, DataError

PARTS = ("train", "val", "test")


class SplitMode(str, Enum):
    signer = "signer"  # no signer appears in two parts
    random = "random"
    official = "official"  # the split the dataset ships with


def split_clips(clips: list[Clip], mode: str, val_fraction: float, test_fraction: float,
                seed: int) -> dict[str, list[Clip]]:
    """Clips per part, each part in a seeded shuffled order (its first clips are a fair sample)."""
    rng = np.random.default_rng(seed)
    if mode == SplitMode.official:
        parts = _official(clips)
    elif mode == SplitMode.random:
        parts = _by_groups({c.id: [c] for c in clips}, val_fraction, test_fraction, rng)
    else:
        groups: dict[str, list[Clip]] = defaultdict(list)
        for clip in clips:
            groups[clip.signer].append(clip)
        if len(groups) < 3:
            raise DataError(f"data.split=signer needs at least 3 signers, found {len(groups)} "
                            f"({sorted(groups)}): set data.split=random, or check "
                            "how signers are named")
        parts = _by_groups(groups, val_fraction, test_fraction, rng)
    return {part: [parts[part][i] for i in rng.permutation(len(parts[part]))] for part in PARTS}


def _official(clips: list[Clip]) -> dict[str, list[Clip]]:
    missing = [c.id for c in clips if c.split is None]
    if missing:
        raise DataError(f"data.split=official, but {len(missing)} clips have no official split "
                        f"(e.g. {missing[0]}): set data.split=signer or random")
    return {part: [c for c in clips if c.split == part] for part in PARTS}


def _by_groups(groups: dict[str, list[Clip]], val_fraction: float, test_fraction: float,
               rng: np.random.Generator) -> dict[str, list[Clip]]:
    """Whole groups go to test, then val, then train, in a seeded order."""
    names = [sorted(groups)[i] for i in rng.permutation(len(groups))]
    n_test = max(1, round(test_fraction * len(names))) if test_fraction > 0 else 0
    n_val = max(1, round(val_fraction * len(names))) if val_fraction > 0 else 0
    chosen = {"test": names[:n_test], "val": names[n_test : n_test + n_val],
              "train": names[n_test + n_val :]}
    return {part: sorted((c for g in chosen[part] for c in groups[g]), key=lambda c: c.id)
            for part in PARTS}
