"""Items of cached clips: a random window of frames in training, uniform frames in evaluation."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import Enum
from functools import cached_property
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from text2sign.data.clips import Clip
from text2sign.data.sampler import Key, split_key


class ShortClips(str, Enum):
    pad = "pad"  # repeat the last frame up to num_frames (listed under "padded" in the report)
    skip = "skip"  # leave the clip out (listed under "skipped")


@dataclass(frozen=True)
class CachedClip:
    clip: Clip
    entry: Path  # the cache's .npy file, (T, S, S, 3) uint8
    num_frames: int  # T


class ClipDataset(Dataset):
    """Items {"video": uint8 (C, T, H, W), "caption": str, "signer": str}."""

    def __init__(self, clips: list[CachedClip], num_frames: int, train: bool, seed: int = 0):
        self.clips, self.num_frames, self.train = clips, num_frames, train
        self.seed = seed  # the split's seed (data.seed), as the synthetic dataset has one
        self.signers = sorted({c.clip.signer for c in clips})

    @cached_property
    def fingerprint(self) -> str:
        """Names exactly these frames: the cache keys hold the files and the decode settings."""
        names = [c.entry.name for c in self.clips] + [str(self.num_frames), str(self.train)]
        return hashlib.sha1("\n".join(names).encode()).hexdigest()[:16]

    @property
    def captions(self) -> list[str]:
        return [c.clip.caption for c in self.clips]

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, key: int | Key) -> dict:
        i, epoch = split_key(key)
        item = self.clips[i]
        frames = np.load(item.entry, mmap_mode="r")
        video = frames[self._frame_indices(len(frames), i, epoch)].transpose(3, 0, 1, 2)
        return {"video": torch.from_numpy(np.ascontiguousarray(video)),
                "caption": item.clip.caption, "signer": item.clip.signer}

    def _frame_indices(self, length: int, i: int, epoch: int) -> np.ndarray | slice:
        if length < self.num_frames:  # the documented padding: repeat the last frame
            return np.minimum(np.arange(self.num_frames), length - 1)
        if self.train:  # a random window, the same whenever (clip, epoch) comes again
            rng = np.random.default_rng([self.seed, epoch, i])
            start = int(rng.integers(length - self.num_frames + 1))
            return slice(start, start + self.num_frames)
        return np.linspace(0, length - 1, self.num_frames).round().astype(int)
