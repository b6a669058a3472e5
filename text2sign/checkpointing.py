"""Checkpoint files: written atomically, saved after the step's validation, checked before a
run resumes from them.

Lightning writes a checkpoint through a filesystem "transaction" whose temporary file may sit
on another disk, so a kill during the final move can leave a truncated `last.ckpt`. Here the
temporary file is written beside the checkpoint and renamed over it, which is atomic; a write
that fails (a full disk) leaves the previous file as it was.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from fsspec.implementations.local import LocalFileSystem
from lightning_fabric.utilities.cloud_io import get_filesystem
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.plugins.io import TorchCheckpointIO

from text2sign.files import atomic_file
from text2sign.results import one_line

FOLDER = Path("checkpoints")
# Where a run can resume from, most complete first: final.ckpt is written when training ends.
RESUMABLE = ("final.ckpt", "last.ckpt")
STEP_FILES = "step*.ckpt"  # callbacks.step_checkpoints


class AtomicCheckpointIO(TorchCheckpointIO):
    """Local checkpoints via temp file + rename; remote URLs (s3://...) as Lightning does."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        if not isinstance(get_filesystem(path), LocalFileSystem):
            return super().save_checkpoint(checkpoint, path, storage_options)
        with atomic_file(path, "wb") as f:
            torch.save(checkpoint, f)


class StepCheckpoint(ModelCheckpoint):
    """A ModelCheckpoint whose step- or time-triggered save, when a validation runs after the
    same step, waits until that validation has ended.

    Lightning saves at the end of the training batch, before the validation; a run resumed from
    that file skips the validation (Lightning fast-forwards past it), so its `val/loss` and best
    checkpoint would differ from an uninterrupted run's. train.py lists it after
    `best_checkpoint`, so the file holds the best score that validation produced. Whether a
    validation follows is asked of Lightning's own loop (a private method of Lightning 2.x).
    """

    _waiting = False  # a save waits for the end of this step's validation

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        epoch_loop = trainer.fit_loop.epoch_loop
        if epoch_loop._should_check_val_fx(trainer.fit_loop._data_fetcher):
            self._waiting = True
            return
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_validation_end(self, trainer, pl_module) -> None:
        super().on_validation_end(trainer, pl_module)
        if self._waiting:
            self._waiting = False
            # decides on the step count and the clock as at the end of the batch
            super().on_train_batch_end(trainer, pl_module, None, None, 0)


def remove_partial_writes(run_dir: str | Path) -> None:
    """Delete the temporary files of writes a killed process never finished."""
    run_dir = Path(run_dir)
    for folder in (run_dir, run_dir / FOLDER, run_dir / "samples"):
        for tmp in folder.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)


@dataclass
class ResumePoint:
    """The checkpoint a run resumes from (None: start over) and the files passed over, why."""

    path: Path | None = None
    step: int = 0
    passed_over: list[str] = field(default_factory=list)


def resume_point(run_dir: str | Path, same_run: Callable[[Any], bool]) -> ResumePoint:
    """The intact checkpoint of this run with the highest step: final.ckpt, last.ckpt or a
    step checkpoint (ties in that order). `same_run(config)` says whether a checkpoint's stored
    config is this run's; a file of another run or a damaged one is passed over, with why."""
    run_dir = Path(run_dir)
    folder = run_dir / FOLDER
    names = [*RESUMABLE, *sorted((p.name for p in folder.glob(STEP_FILES)), reverse=True)]
    point, found = ResumePoint(), []
    for rank, name in enumerate(names):
        path = folder / name
        if not path.is_file():
            continue
        try:  # mmap: reads the small pickled header, not the tensors
            header = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
            step, config = int(header["global_step"]), header.get("text2sign_config")
        except Exception as err:  # noqa: BLE001 - whatever the damage, the file is unusable
            point.passed_over.append(f"{FOLDER / name} is damaged ({_first_sentence(err)})")
            continue
        if not same_run(config):
            point.passed_over.append(f"{FOLDER / name} belongs to a run of another config")
            continue
        found.append((-step, rank, path))
    for minus_step, _, path in sorted(found):
        damage = _damage(path)
        if damage is None:
            point.path, point.step = path, -minus_step
            break
        point.passed_over.append(f"{FOLDER / path.name} is damaged ({damage})")
    return point


def _damage(path: Path) -> str | None:
    """Why a checkpoint cannot be trusted, or None when every entry matches its CRC-32."""
    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except (OSError, zipfile.BadZipFile) as err:
        return _first_sentence(err)
    return None if bad is None else f"{bad} fails its CRC check"


def _first_sentence(err: BaseException) -> str:
    return one_line(err).split(". ")[0]  # torch explains a bad zip archive at length
