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
