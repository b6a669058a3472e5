"""CUDA memory per optimizer step: peak and average, written to gpu_memory.csv."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch

from text2sign.callbacks.step_end import StepEndCallback, log_metrics
from text2sign.rundir.files import CsvLog
from text2sign.rundir.step_logs import GB, GPU_MEMORY, GPU_MEMORY_COLUMNS


class GPUMemoryMonitor(StepEndCallback):
    """Per step: peak allocated memory (the CUDA peak counter, reset every step) and the mean
    of the allocated memory sampled at the start and end of each micro-batch.

    On a machine without CUDA every figure is None (empty CSV cells), never 0.
    """

    columns = GPU_MEMORY_COLUMNS

    def __init__(self, filename: str = GPU_MEMORY):
        self.filename = filename
        self.last: dict[str, float | None] = {"peak_gb": None, "avg_gb": None}
        self._samples: list[int] = []
        self._peak_max: float | None = None
        self._avg_sum, self._avg_count = 0.0, 0
        self._device: torch.device | None = None
        self._csv: CsvLog | None = None

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        if not trainer.is_global_zero:
            return  # rank 0 reports its GPU; under DDP every rank runs the same model
        self._device = pl_module.device if pl_module.device.type == "cuda" else None
        if self._device is not None:
            torch.cuda.reset_peak_memory_stats(self._device)  # jobs of a sweep share a process
        step = trainer.global_step  # restored by now when the run resumes
        self._csv = CsvLog(
            Path(trainer.default_root_dir) / self.filename,
            self.columns,
            keep=lambda row: int(row["step"]) <= step,
        )

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self._device is not None:
            self._samples.append(torch.cuda.memory_allocated(self._device))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self._device is not None:
            self._samples.append(torch.cuda.memory_allocated(self._device))
        super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)

    def on_step_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        row: dict[str, Any] = {"epoch": trainer.current_epoch, "step": trainer.global_step,
                               "timestamp": time.time()}
        if self._device is not None:
            row.update(
                peak_gb=torch.cuda.max_memory_allocated(self._device) / GB,
                avg_gb=sum(self._samples) / len(self._samples) / GB,
                allocated_gb=torch.cuda.memory_allocated(self._device) / GB,
                reserved_gb=torch.cuda.memory_reserved(self._device) / GB,
            )
            torch.cuda.reset_peak_memory_stats(self._device)
            self._peak_max = max(self._peak_max or 0.0, row["peak_gb"])
            self._avg_sum, self._avg_count = self._avg_sum + row["avg_gb"], self._avg_count + 1
            log_metrics(trainer, {"memory/peak_gb": row["peak_gb"], "memory/avg_gb": row["avg_gb"]},
                        trainer.global_step)
        self._samples.clear()
        self.last = {"peak_gb": row.get("peak_gb"), "avg_gb": row.get("avg_gb")}
        self._csv.write_rows([row])

    def on_train_end(self, trainer, pl_module) -> None:
        if self._csv is not None:
            self._csv.close()

    def summary(self) -> dict[str, float | None]:
        """Peak over all steps and mean of the per-step averages; None without CUDA."""
        avg = self._avg_sum / self._avg_count if self._avg_count else None
        return {"peak_memory_gb": self._peak_max, "avg_memory_gb": avg}

    def state_dict(self) -> dict[str, Any]:
        return {"peak_max": self._peak_max, "avg_sum": self._avg_sum, "avg_count": self._avg_count}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self._peak_max = state_dict["peak_max"]
        self._avg_sum, self._avg_count = state_dict["avg_sum"], state_dict["avg_count"]
