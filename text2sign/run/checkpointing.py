"""Checkpoint files: written atomically, saved after the step's validation, checked before a
run resumes from them or a command reads them (`read_checkpoint`).

Lightning writes a checkpoint through a filesystem "transaction" whose temporary file may sit
on another disk, so a kill during the final move can leave a truncated `last.ckpt`. Here the
temporary file is written beside the checkpoint and renamed over it, which is atomic; a write
that fails (a full disk) leaves the previous file as it was.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from fsspec.implementations.local import LocalFileSystem
from lightning_fabric.utilities.cloud_io import get_filesystem
from pytorch_lightning.callbacks import ModelCheckpoint
from pytorch_lightning.plugins.io import TorchCheckpointIO

from text2sign.rundir.files import atomic_file
from text2sign.rundir.identity import moved_targets
from text2sign.rundir.record import one_line

FOLDER = Path("checkpoints")
# Where a run can resume from, most complete first: final.ckpt is written when training ends.
RESUMABLE = ("final.ckpt", "last.ckpt")
STEP_FILES = "step*.ckpt"  # callbacks.step_checkpoints


# What a checkpoint written by train.py holds, beyond Lightning's own keys.
TEXT2SIGN_KEYS = ("text2sign_config", "state_dict", "global_step")


class CheckpointError(ValueError):
    """A file that is not a readable text2sign checkpoint; the message says why and what to do."""

    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path} is not a readable text2sign checkpoint: {reason}; set ckpt_path "
                         "to a checkpoint written by train.py (a run's checkpoints/final.ckpt, "
                         "last.ckpt or best.ckpt)")


def read_checkpoint(path: str | Path, mmap: bool = False) -> dict[str, Any]:
    """The content of a checkpoint train.py wrote (plain data only), or a CheckpointError that
    says why the file is not one. `mmap`: read the small header now, the tensors when used."""
    path = Path(path).expanduser()
    if path.is_dir():
        inside = path / FOLDER / "final.ckpt"
        raise CheckpointError(path, "it is a directory" + (
            f" (its final checkpoint is {inside})" if inside.is_file() else ""))
    if not path.is_file():
        raise CheckpointError(path, "no such file")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(path, "the file is empty (0 bytes)")
    if not zipfile.is_zipfile(path):
        with open(path, "rb") as f:
            truncated = f.read(4) == b"PK\x03\x04"  # a zip archive that ends early
        raise CheckpointError(path, f"truncated: the archive ends early ({size} bytes)" if truncated
                              else "not a PyTorch checkpoint archive (a text file or another "
                                   "format)")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except Exception as err:  # noqa: BLE001 - whatever torch says, the file is unusable
        raise CheckpointError(path, f"torch cannot load it ({_first_sentence(err)})") from err
    missing = [key for key in TEXT2SIGN_KEYS
               if not isinstance(checkpoint, dict) or key not in checkpoint]
    if missing:
        found = sorted(map(str, checkpoint))[:8] if isinstance(checkpoint, dict) else []
        raise CheckpointError(path, f"it lacks {', '.join(missing)} (holds "
                              f"{type(checkpoint).__name__} {found}): written by another program")
    checkpoint["text2sign_config"] = moved_targets(checkpoint["text2sign_config"])
    return checkpoint


WEIGHTS = ("auto", "ema", "raw")  # which weights of a checkpoint to use: auto is EMA's if any


def ema_shadow(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor] | None:
    """The EMA weights a checkpoint holds (the EMA callback's state), or None."""
    return next((state["shadow"] for key, state in (checkpoint.get("callbacks") or {}).items()
                 if key.startswith("EMA") and isinstance(state, dict) and state.get("shadow")),
                None)


def chosen_weights(checkpoint: dict[str, Any], weights: str, path: str | Path) -> str:
    """"ema" or "raw": what `weights` (WEIGHTS) picks in the checkpoint at `path`; a
    ValueError names the fix when it asks for EMA weights the checkpoint lacks."""
    if weights not in WEIGHTS:
        raise ValueError(f"weights={weights}: use {', '.join(WEIGHTS)}")
    has_ema = ema_shadow(checkpoint) is not None
    if weights == "ema" and not has_ema:
        raise ValueError(f"{path} has no EMA weights (trained with ema=false): use weights=raw "
                         "or weights=auto")
    return "ema" if has_ema and weights != "raw" else "raw"


class AtomicCheckpointIO(TorchCheckpointIO):
    """Local checkpoints via temp file + rename; remote URLs (s3://...) as Lightning does.

    A checkpoint read from a run directory that was moved, copied or reached through a symlink
    names the checkpoint files of its old place (best, last, the kept step checkpoints); they
    are renamed to where the checkpoint now lies, so Lightning restores the checkpoint
    callbacks' scores instead of starting the race for best.ckpt again."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        if not isinstance(get_filesystem(path), LocalFileSystem):
            return super().save_checkpoint(checkpoint, path, storage_options)
        with atomic_file(path, "wb") as f:
            torch.save(checkpoint, f)

    def load_checkpoint(self, path, *args, **kwargs) -> dict[str, Any]:
        checkpoint = super().load_checkpoint(path, *args, **kwargs)
        if isinstance(get_filesystem(path), LocalFileSystem):
            here = os.path.realpath(Path(path).parent)  # as ModelCheckpoint resolves dirpath
            for state in checkpoint.get("callbacks", {}).values():
                if isinstance(state, dict) and state.get("dirpath") not in (None, here):
                    _move_paths(state, state["dirpath"], here)
        return checkpoint


def _move_paths(state: dict[str, Any], old: str, new: str) -> None:
    """A ModelCheckpoint's state with the files under `old` named under `new`."""
    def moved(path: Any) -> Any:
        inside = isinstance(path, str) and path.startswith(old + os.sep)
        return new + path[len(old):] if inside else path

    state["dirpath"] = new
    for key in ("best_model_path", "kth_best_model_path", "last_model_path"):
        if key in state:
            state[key] = moved(state[key])
    if isinstance(state.get("best_k_models"), dict):
        state["best_k_models"] = {moved(k): v for k, v in state["best_k_models"].items()}


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
