"""Checkpoint files: written atomically, found again when a run is started a second time.

Lightning writes a checkpoint through a filesystem "transaction" whose temporary file may sit
on another disk, so a kill during the final move can leave a truncated `last.ckpt`. Here the
temporary file is written beside the checkpoint and renamed over it, which is atomic.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from fsspec.implementations.local import LocalFileSystem
from lightning_fabric.utilities.cloud_io import get_filesystem
from pytorch_lightning.plugins.io import TorchCheckpointIO

from text2sign.files import atomic_file

LAST = Path("checkpoints") / "last.ckpt"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Local checkpoints via temp file + rename; remote URLs (s3://...) as Lightning does."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        if not isinstance(get_filesystem(path), LocalFileSystem):
            return super().save_checkpoint(checkpoint, path, storage_options)
        with atomic_file(path, "wb") as f:
            torch.save(checkpoint, f)


def remove_partial_writes(run_dir: str | Path) -> None:
    """Delete the temporary files of writes a killed process never finished."""
    run_dir = Path(run_dir)
    for folder in (run_dir, run_dir / "checkpoints"):
        for tmp in folder.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)


def last_checkpoint(run_dir: str | Path) -> Path | None:
    """The run directory's `checkpoints/last.ckpt`, if an earlier attempt left one."""
    path = Path(run_dir) / LAST
    return path if path.is_file() else None
