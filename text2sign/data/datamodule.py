"""LightningDataModules: batches of uint8 videos (B, C, T, H, W) with their captions."""

from __future__ import annotations

import hashlib
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pytorch_lightning as pl
import torch
from torch.utils.data import DataLoader, Dataset

from text2sign.data.clip_cache import ClipCache, DecodeSettings
from text2sign.data.clip_dataset import CachedClip, ClipDataset, ShortClips
from text2sign.data.clips import Clip, DataError, Skipped
from text2sign.data.frame_fit import Fit
from text2sign.data.indexers import (
    index_gif_folder,
    index_how2sign,
    index_manifest,
    index_phoenix14t,
)
from text2sign.data.sampler import ResumableBatchSampler
from text2sign.data.splits import SplitMode, split_clips
from text2sign.data.synthetic import SPLITS, SyntheticSignDataset

log = logging.getLogger(__name__)


class BatchLoaders(pl.LightningDataModule):
    """Shuffled training batches (the last partial one dropped), ordered evaluation batches.

    Training batches come from a `ResumableBatchSampler`: a run resumed from a checkpoint
    continues at the next batch of the same epoch, and each DDP rank reads its own share.
    Every rank evaluates the whole (small) validation set, so val/loss is the same on all.
    """

    datasets: dict[str, Dataset]

    def __init__(self, batch_size: int, num_workers: int, shuffle_seed: int,
                 prefetch_factor: int):
        super().__init__()
        self.batch_size, self.num_workers = batch_size, num_workers
        self.shuffle_seed, self.prefetch_factor = shuffle_seed, prefetch_factor

    def _loader(self, split: str, **batching: Any) -> DataLoader:
        workers = self.num_workers
        return DataLoader(
            self.datasets[split],
            **(batching or {"batch_size": self.batch_size}),
            num_workers=workers,
            persistent_workers=workers > 0,
            prefetch_factor=self.prefetch_factor if workers > 0 else None,
            pin_memory=torch.cuda.is_available(),  # faster, asynchronous copies to the GPU
        )

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        rank, world = (trainer.global_rank, trainer.world_size) if trainer else (0, 1)
        sampler = ResumableBatchSampler(len(self.datasets["train"]), self.batch_size,
                                        self.shuffle_seed, rank, world)
        if trainer is not None:  # a resumed run: skip the batches already trained on
            sampler.consumed = trainer.global_step * trainer.accumulate_grad_batches
        return self._loader("train", batch_sampler=sampler)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")


class SyntheticSignDataModule(BatchLoaders):
    """The embedded default: procedurally rendered signers, signer-disjoint splits.

    The data seed is separate from the training seed, so every run of a sweep sees the
    same clips whatever its `seed`.
    """

    def __init__(
        self,
        num_frames: int = 8,
        image_size: int = 16,
        batch_size: int = 16,
        num_workers: int = 0,
        num_train: int = 4096,
        num_val: int = 64,
        num_test: int = 64,
        num_signers: int = 12,
        num_val_signers: int = 2,
        num_test_signers: int = 2,
        seed: int = 0,
        shuffle_seed: int = 0,
        prefetch_factor: int = 2,
        max_glosses: int = 3,
        hand_scale: float = 1.0,
    ):
        super().__init__(batch_size, num_workers, shuffle_seed, prefetch_factor)
        sizes = {"train": num_train, "val": num_val, "test": num_test}
        self.datasets: dict[str, Dataset] = {
            split: SyntheticSignDataset(
                split, sizes[split], num_frames, image_size,
                num_signers, num_val_signers, num_test_signers, seed, max_glosses, hand_scale,
            )
            for split in SPLITS
        }
        if batch_size > num_train:
            raise ValueError(f"data.batch_size={batch_size} is larger than data.num_train="
                             f"{num_train}: set data.batch_size to at most {num_train}, or "
                             f"data.num_train to at least {batch_size}")

    def report(self) -> dict[str, Any]:
        """What data_report.json records: clips and signers per split, skipped files."""
        return {
            "name": "synthetic",
            "splits": {
                split: {"clips": len(ds), "signers": ds.signers}
                for split, ds in self.datasets.items()
            },
            "skipped": [],
        }


class ClipDataModule(BatchLoaders):
    """Clips from files: index -> decode once into the cache -> split -> datasets.

    The files are indexed and decoded into the cache in `prepare_data`, split in `setup`;
    `report()` (which train.py writes before the model is built) sets up on first use, so
    faulty inputs are listed before training starts. Subclasses only index a format.
    """

    name = "clips"
    key = "the data paths"  # the config key(s) that say where the clips are

    def __init__(
        self,
        num_frames: int,
        image_size: int,
        batch_size: int,
        num_workers: int,
        seed: int,
        split: SplitMode,
        val_fraction: float,
        test_fraction: float,
        fit: Fit,
        short_clips: ShortClips,
        fps: Optional[float],
        cache_dir: str,
        frames_fps: float = 25.0,
        num_train: Optional[int] = None,
        num_val: Optional[int] = None,
        num_test: Optional[int] = None,
        shuffle_seed: int = 0,
        prefetch_factor: int = 2,
    ):
        super().__init__(batch_size, num_workers, shuffle_seed, prefetch_factor)
        # Hydra passes enum members, direct callers strings: the cache key needs the value
        self.cache = ClipCache(cache_dir, DecodeSettings(image_size, Fit(fit).value, fps, frames_fps))
        self.num_frames, self.seed = num_frames, seed
        self.split, self.short_clips = SplitMode(split), ShortClips(short_clips)
        self.fractions = (val_fraction, test_fraction)
        self.caps = {"train": num_train, "val": num_val, "test": num_test}
        self._indexed: tuple[list[Clip], list[Skipped]] | None = None
        self._entries: list[Path | str] | None = None
        self._datasets: dict[str, ClipDataset] | None = None

    def prepare_data(self) -> None:
        """Index the files and decode every clip into the cache: Lightning runs this once per
        machine (local rank 0), so DDP ranks read the cache instead of decoding it again."""
        if self._entries is None:
            self._indexed = self._indexed or self.index()
            self._entries = _decode_all(self.cache, self._indexed[0], self.num_workers)

    def setup(self, stage: Optional[str] = None) -> None:
        """Skip or pad the short clips and split them (every rank; only reads a filled cache)."""
        if self._datasets is not None:
            return
        self.prepare_data()
        clips, skipped = self._indexed
        self.skipped, self.padded, cached = list(skipped), [], []
        for clip, entry in zip(clips, self._entries):
            length = None if isinstance(entry, str) else _length(entry)
            reason = entry if length is None else _short(length, self.num_frames, self.short_clips)
            if reason and (length is None or self.short_clips == ShortClips.skip):
                self.skipped.append(clip.fault(reason))
                continue
            if reason:
                self.padded.append(clip.fault(reason))
            cached.append(CachedClip(clip, entry, length))
        if not cached:
            first = self.skipped[0] if self.skipped else None
            example = f"{first.file}: {first.reason}" if first else "none found"
            raise DataError(f"data={self.name}: no usable clip ({len(self.skipped)} skipped, e.g. "
                            f"{example}): check {self.key}")
        parts = split_clips([c.clip for c in cached], self.split, *self.fractions, self.seed)
        datasets = self._datasets_of(cached, parts, self.caps, self.num_frames, self.seed)
        if self.batch_size > len(datasets["train"]):
            raise DataError(self._too_few_for_a_batch(datasets))
        self._datasets = datasets
        log.info("%s", self.summary())

    @property
    def datasets(self) -> dict[str, ClipDataset]:
        """The datasets per split, set up on first use."""
        self.setup()
        return self._datasets

    def _datasets_of(self, cached: list[CachedClip], parts: dict[str, list[Clip]],
                  caps: dict[str, Optional[int]], num_frames: int, seed: int
                  ) -> dict[str, ClipDataset]:
        """One dataset per split, its first `caps[split]` clips (all if None); none may be empty."""
        by_id = {c.clip.id: c for c in cached}
        datasets = {part: ClipDataset([by_id[c.id] for c in part_clips[: caps[part]]],
                                      num_frames, part == "train", seed)
                    for part, part_clips in parts.items()}
        for part, dataset in datasets.items():
            if len(dataset) == 0:
                raise DataError(f"data={self.name}: the {part} split is empty: set data.split, "
                                "data.val_fraction or data.test_fraction")
        return datasets

    def _too_few_for_a_batch(self, datasets: dict[str, ClipDataset]) -> str:
        """What each part got, and the ways out, when training clips cannot fill one batch."""
        split, num_train = self.split, self.caps["train"]
        train = len(datasets["train"])
        parts = ", ".join(
            f"{part} {plural(len(ds), 'clip')} of {plural(len(ds.signers), 'signer')}"
            for part, ds in datasets.items())
        ways = [f"a smaller data.batch_size (at most {train})"]
        if num_train is not None and num_train == train:
            ways.append(f"a larger data.num_train (now {num_train})")
        if split == SplitMode.signer:
            ways.append("data.split=random (the clips, not the signers, are split)")
        ways.append("more clips" + (" from more signers" if split == SplitMode.signer else ""))
        return (f"data={self.name}: data.batch_size={self.batch_size} is larger than the {train} "
                f"training clips (data.split={split.value}: {parts}; "
                f"{len(self.skipped)} files skipped). Use {', '.join(ways[:-1])} or {ways[-1]}")

    def index(self) -> tuple[list[Clip], list[Skipped]]:
        raise NotImplementedError

    def report(self) -> dict[str, Any]:
        """data_report.json: clips and signers per split, skipped and padded files, the split."""
        split_ids = {part: [c.clip.id for c in ds.clips] for part, ds in self.datasets.items()}
        return {
            "name": self.name,
            "splits": {part: {"clips": len(ds), "signers": ds.signers}
                       for part, ds in self.datasets.items()},
            "skipped": [asdict(s) for s in self.skipped],
            "padded": [asdict(s) for s in self.padded],
            "split_sha1": hashlib.sha1(json.dumps(split_ids).encode()).hexdigest(),
            "split_ids": split_ids,
        }

    def summary(self) -> str:
        """The clips per split, and the first 10 skipped files with their reasons."""
        sizes = ", ".join(f"{len(ds)} {part}" for part, ds in self.datasets.items())
        lines = [f"data={self.name}: {sizes} clips; {len(self.skipped)} skipped, "
                 f"{len(self.padded)} padded"]
        lines += [f"  skipped {s.file}: {s.reason}" for s in self.skipped[:10]]
        if len(self.skipped) > 10:
            lines.append(f"  ... and {len(self.skipped) - 10} more")
        return "\n".join(lines)


class GifFolderDataModule(ClipDataModule):
    """`X.gif` + `X.txt` pairs (the original Text2Sign export of How2Sign)."""

    name = "gif_folder"
    key = "data.root"

    def __init__(self, root: str, signer_pattern: str, **common: Any):
        self.root, self.signer_pattern = root, signer_pattern
        super().__init__(**common)

    def index(self) -> tuple[list[Clip], list[Skipped]]:
        return index_gif_folder(self.root, self.signer_pattern)


class How2SignDataModule(ClipDataModule):
    name = "how2sign"
    key = "data.annotations and data.video_dir"

    def __init__(self, annotations: str, video_dir: str, val_annotations: Optional[str] = None,
                 test_annotations: Optional[str] = None, **common: Any):
        self.files = (annotations, video_dir, val_annotations, test_annotations)
        super().__init__(**common)

    def index(self) -> tuple[list[Clip], list[Skipped]]:
        return index_how2sign(*self.files)


class Phoenix14TDataModule(ClipDataModule):
    name = "phoenix14t"
    key = "data.root"

    def __init__(self, root: str, caption_column: str, **common: Any):
        self.root, self.caption_column = root, caption_column
        super().__init__(**common)

    def index(self) -> tuple[list[Clip], list[Skipped]]:
        return index_phoenix14t(self.root, self.caption_column)


class ManifestDataModule(ClipDataModule):
    name = "manifest"
    key = "data.path"

    def __init__(self, path: str, **common: Any):
        self.path = path
        super().__init__(**common)

    def index(self) -> tuple[list[Clip], list[Skipped]]:
        return index_manifest(self.path)


def _decode_all(cache: ClipCache, clips: list[Clip], num_workers: int) -> list[Path | str]:
    """Each clip's cache entry, or why it cannot be decoded (threads: decoders release the GIL)."""
    def load(clip: Clip) -> Path | str:
        try:
            return cache.load(clip)
        except DataError:  # the cache cannot be written: no clip can be
            raise
        except ValueError as err:
            return str(err)

    with ThreadPoolExecutor(max(1, num_workers)) as pool:
        return list(pool.map(load, clips))


def plural(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _length(entry: Path) -> int:
    return np.load(entry, mmap_mode="r").shape[0]


def _short(length: int, num_frames: int, policy: str) -> str:
    """The reason a clip is too short for `num_frames`, with what happens to it; '' if it is not."""
    if length >= num_frames:
        return ""
    rule = ("skipped (data.short_clips=skip)" if policy == ShortClips.skip
            else "padded by repeating its last frame (data.short_clips=pad)")
    return f"too short: {length} frames < data.num_frames={num_frames}, {rule}"
