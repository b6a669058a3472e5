"""LightningDataModules: batches of uint8 videos (B, C, T, H, W) with their captions."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from torch.utils.data import DataLoader, Dataset

from text2sign.data.synthetic import SPLITS, SyntheticSignDataset


class SyntheticSignDataModule(pl.LightningDataModule):
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
    ):
        super().__init__()
        self.batch_size, self.num_workers = batch_size, num_workers
        sizes = {"train": num_train, "val": num_val, "test": num_test}
        self.datasets: dict[str, Dataset] = {
            split: SyntheticSignDataset(
                split, sizes[split], num_frames, image_size,
                num_signers, num_val_signers, num_test_signers, seed,
            )
            for split in SPLITS
        }
        if batch_size > num_train:
            raise ValueError(
                f"data.batch_size={batch_size} is larger than data.num_train={num_train}"
            )

    def _loader(self, split: str, shuffle: bool) -> DataLoader:
        return DataLoader(
            self.datasets[split],
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=shuffle,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

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
