"""A callback base that acts once per optimizer step, not once per micro-batch."""

from __future__ import annotations

import pytorch_lightning as pl


class StepEndCallback(pl.Callback):
    """Calls `on_step_end(trainer, pl_module)` after each optimizer step.

    With gradient accumulation several micro-batches make one step; `trainer.global_step`
    only moves when the optimizer has stepped. Under DDP only rank 0 records steps.
    """

    _seen_step = -1

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._seen_step = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.is_global_zero and trainer.global_step != self._seen_step:
            self._seen_step = trainer.global_step
            self.on_step_end(trainer, pl_module)

    def on_step_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        raise NotImplementedError


def log_metrics(trainer: pl.Trainer, metrics: dict[str, float | None], step: int) -> None:
    """Write host numbers to the run's loggers every `trainer.log_every_n_steps` steps (None
    values left out): directly, as LightningModule.log would copy each one to the GPU."""
    numbers = {name: value for name, value in metrics.items() if value is not None}
    if numbers and step % trainer.log_every_n_steps == 0:
        for logger in trainer.loggers:
            logger.log_metrics(numbers, step)
