"""training_metrics.csv/.json: loss, learning rate, time and memory of every optimizer step."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.trainer.states import TrainerFn

from text2sign.callbacks.gpu_memory import GPUMemoryMonitor
from text2sign.callbacks.step_end import StepEndCallback, log_metrics
from text2sign.rundir.faults import kill_point
from text2sign.rundir.files import CsvLog, atomic_write_json
from text2sign.rundir.step_logs import TRAINING_COLUMNS, TRAINING_METRICS


class TrainingLog(StepEndCallback):
    """One row per optimizer step; the JSON written at the end.

    A step's row is written (and flushed) when the next step ends, or before a checkpoint is
    saved: its loss is read on the host a step late (TextToSignModule.last_loss), so that the
    host never waits for the GPU. The loss and the learning rate go to the loggers every
    `trainer.log_every_n_steps` steps, as numbers (LightningModule.log would copy each one to
    the GPU, a synchronisation).

    `elapsed_s` is the training time of the run so far, over all its attempts: the wall time
    of the training loop (steps, data loading, checkpoint writes) without the validations in
    it; `time_before` (set by the caller) is the time of the earlier attempts. A resumed run first
    drops the rows after its checkpoint's step, so every step appears once. Memory columns
    come from the GPUMemoryMonitor when one is configured.

    Not Lightning's CSVLogger, which stays configured for everything logged (validation and
    eval included): it starts a new csv/version_N per attempt, so a resumed run's steps are
    split and repeated across files, and it flushes every 100 steps, so a killed run loses
    up to 99 rows. This file holds each step once, flushed a step later.
    """

    columns = TRAINING_COLUMNS

    def __init__(self, filename: str = TRAINING_METRICS):
        self.filename = filename
        self.rows: list[dict[str, Any]] = []
        self.time_before = 0.0  # training time of the run's earlier attempts
        self.clips_seen = 0
        self._trained = 0.0  # training time of this attempt, up to the last on_train_end
        self._start: float | None = None  # perf_counter() while training runs
        self._paused = False  # training stopped the clock for a validation
        self._restored_step = 0  # the step of the checkpoint this attempt resumed from
        self._csv: CsvLog | None = None
        self._unread: list[tuple[dict[str, Any], Any]] = []  # (row, its loss still on the GPU)

    def attempt_time_s(self) -> float:
        """Training time of this attempt (this process), validations left out."""
        running = 0.0 if self._start is None else time.perf_counter() - self._start
        return self._trained + running

    def elapsed_s(self) -> float:
        return self.time_before + self.attempt_time_s()

    def on_load_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        self._restored_step = checkpoint["global_step"]

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        # before training starts, and even when a resumed run has no step left to train
        if trainer.is_global_zero:
            self._csv = CsvLog(Path(trainer.default_root_dir) / self.filename, self.columns,
                               keep=lambda row: int(row["step"]) <= self._restored_step)
            self.rows = [_parse(row) for row in self._csv.read()]

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        self._start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.clips_seen += len(batch["caption"]) * trainer.world_size  # all ranks' clips
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_step_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._write_rows(trainer)  # the earlier steps' losses are done by now
        lrs = {group.get("name"): group["lr"] for group in trainer.optimizers[0].param_groups}
        memory = next((c.last for c in trainer.callbacks if isinstance(c, GPUMemoryMonitor)), {})
        row = {
            "epoch": trainer.current_epoch,
            "step": trainer.global_step,
            "loss": None,  # read when the row is written
            "lr": lrs.get("denoiser"),
            "lr_text_encoder": lrs.get("text_encoder"),
            "elapsed_s": round(self.elapsed_s(), 3),
            "peak_memory_gb": memory.get("peak_gb"),
            "avg_memory_gb": memory.get("avg_gb"),
            "timestamp": time.time(),
        }
        step, loss = getattr(pl_module, "last_loss", None) or (None, None)
        self._unread.append((row, loss if step == trainer.global_step else None))  # None: skipped
        kill_point("step")

    def on_save_checkpoint(self, trainer, pl_module, checkpoint: dict[str, Any]) -> None:
        self._write_rows(trainer)  # every row up to the checkpoint's step is on disk with it

    def _write_rows(self, trainer: pl.Trainer) -> None:
        """Read the losses of the rows not written yet, write them and log them."""
        for row, loss in self._unread:
            row["loss"] = None if loss is None else loss.value()
            self.rows.append(row)
            self._csv.write_rows([row])
            log_metrics(trainer, {"train/loss": row["loss"], "lr": row["lr"]}, row["step"])
        self._unread.clear()

    def on_validation_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._pause()  # a validation inside training is not training time

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx,
                                dataloader_idx=0) -> None:
        if trainer.state.fn == TrainerFn.FITTING and not trainer.sanity_checking:
            kill_point("validation")

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._paused:
            self._paused, self._start = False, time.perf_counter()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._pause()
        self._paused = False
        if self._csv is not None:
            self._write_rows(trainer)

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if self._csv is not None:
            self._write_rows(trainer)  # a diverged step's row shows its loss: nan or inf

    def _pause(self) -> None:
        if self._start is not None:
            self._trained, self._start, self._paused = self.attempt_time_s(), None, True

    def on_fit_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._csv is None:
            return  # not rank 0
        self._csv.close()
        path = Path(trainer.default_root_dir) / self.filename
        atomic_write_json(path.with_suffix(".json"), self.rows)

    def summary(self) -> dict[str, Any]:
        time_s = self.elapsed_s()
        return {
            "steps": self.rows[-1]["step"] if self.rows else 0,
            "final_loss": self.rows[-1]["loss"] if self.rows else None,
            "time_s": round(time_s, 3),
            "clips_per_s": round(self.clips_seen / time_s, 3) if time_s else None,
        }

    def state_dict(self) -> dict[str, Any]:
        return {"clips_seen": self.clips_seen}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.clips_seen = state_dict["clips_seen"]


def _parse(row: dict[str, str]) -> dict[str, Any]:
    """A CSV row back to numbers (empty cells are None)."""
    return {k: (None if v == "" else float(v)) if k not in ("epoch", "step") else int(v)
            for k, v in row.items()}
