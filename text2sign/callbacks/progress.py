"""The progress bar: Lightning's, showing the training loss without waiting for the GPU."""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import RichProgressBar


class ProgressBar(RichProgressBar):
    """Lightning's rich progress bar, with the loss of the latest step whose value has reached
    the host (TextToSignModule.last_loss). The training loss is not logged with
    `prog_bar=True`: the bar would read it on the host at every step, making the host wait
    for the GPU. Dropped by the run when `trainer.enable_progress_bar=false`.

    Args:
        refresh_rate: redraws per second (0: none).
        leave: keep each epoch's finished bar on the terminal.
    """

    def __init__(self, refresh_rate: int = 10, leave: bool = False):
        super().__init__(refresh_rate=refresh_rate, leave=leave)
        self._loss: float | None = None

    def get_metrics(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        metrics = super().get_metrics(trainer, pl_module)
        last = getattr(pl_module, "last_loss", None)
        if last is not None and last[1].ready():
            self._loss = last[1].value()
        if self._loss is not None:
            metrics["train/loss"] = self._loss
        return metrics
