"""What an indexer finds: clips with their captions, and inputs it had to skip."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

SPLIT_NAMES = {"train": "train", "val": "val", "dev": "val", "test": "test"}


class DataError(ValueError):
    """A problem with the data config that stops a run before training; names the key to fix."""


@dataclass(frozen=True)
class Clip:
    id: str  # unique and stable across runs (a relative path or a corpus name)
    path: Path  # a video file or a folder of frames
    caption: str
    signer: str
    start: Optional[float] = None  # seconds into the file
    end: Optional[float] = None
    split: Optional[str] = None  # the dataset's official split, if it has one
    origin: Optional[str] = None  # where it is listed, for messages: "FILE line N (start=...)"

    def fault(self, reason: str) -> "Skipped":
        """A reason to skip or pad this clip, naming where it is listed."""
        return Skipped(str(self.path), f"{self.origin}: {reason}" if self.origin else reason)


@dataclass(frozen=True)
class Skipped:
    file: str
    reason: str


def official_split(name: str) -> Optional[str]:
    """'train' | 'val' | 'test' for a dataset's split name (dev counts as val), else None."""
    return SPLIT_NAMES.get(name.strip().lower())
