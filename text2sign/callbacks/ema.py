"""Exponential moving average of the trainable weights, swapped in for validation and evaluation."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import Any

import pytorch_lightning as pl
import torch


class EMA(pl.Callback):
    """Keeps an EMA of every trainable parameter (a finetuned text encoder included).

    After optimizer step n (1-based) the decay is min(decay, (1 + n) / (10 + n)): the warm-up
    lets the average follow the fast early changes instead of remembering the initialisation.
    The averaged weights replace the raw ones during validation and inside `averaged_weights`,
    and are saved in (and restored from) checkpoints.

    Not Lightning's EMAWeightAveraging: its constant decay leaves a short ablation run's
    average near the initialisation (no warm-up), its AveragedModel copies the whole module
    (the frozen text encoder too), it copies the average into the model when training ends
    (a run reports both weights: `weights=raw|ema`), and its checkpoints put the average in
    `state_dict`, so the checkpoints written before would load with the wrong weights.

    Args:
        enabled: the root key `ema`; when False the callback does nothing.
        decay: the decay after warm-up.
    """

    def __init__(self, enabled: bool = True, decay: float = 0.999):
        if not 0 < decay < 1:
            raise ValueError(f"callbacks.ema.decay={decay} must be in (0, 1)")
        self.enabled, self.decay = enabled, decay
        self.shadow: dict[str, torch.Tensor] = {}
        self.num_updates = 0
        self._backup: dict[str, torch.Tensor] = {}
        self._last_step = -1
        # what `update` averages: the parameters and their shadows, in one order
        self._params: list[torch.nn.Parameter] = []
        self._shadows: list[torch.Tensor] = []
        self._fp32 = True

    def current_decay(self) -> float:
        return min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))

    def _parameters(self, pl_module: pl.LightningModule) -> dict[str, torch.nn.Parameter]:
        return {n: p for n, p in pl_module.named_parameters() if p.requires_grad}

    def track(self, params: dict[str, torch.nn.Parameter]) -> None:
        """Average these parameters from now on: from the shadow restored from a checkpoint,
        else from their current values. Listed once here, so that `update` walks no module."""
        if self.shadow:
            self.shadow = {n: t.to(params[n].device) for n, t in self.shadow.items()}
        else:
            self.shadow = {n: p.detach().float().clone() for n, p in params.items()}
        self._params = list(params.values())
        self._shadows = [self.shadow[n] for n in params]
        self._fp32 = all(p.dtype == torch.float32 for p in self._params)  # else: cast each step

    @torch.no_grad()
    def update(self) -> None:
        """One averaging step, one foreach kernel for all the parameters."""
        self.num_updates += 1
        params = self._params if self._fp32 else [p.float() for p in self._params]
        torch._foreach_lerp_(self._shadows, params, 1 - self.current_decay())

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self.enabled:
            self.track(self._parameters(pl_module))
            self._last_step = trainer.global_step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if self.enabled and trainer.global_step != self._last_step:  # not while accumulating
            self._last_step = trainer.global_step
            self.update()

    @contextmanager
    def averaged_weights(self, pl_module: pl.LightningModule) -> Iterator[None]:
        """Temporarily load the EMA weights into the module (a no-op when disabled)."""
        self.swap_in(pl_module)
        try:
            yield
        finally:
            self.swap_out(pl_module)

    @torch.no_grad()
    def swap_in(self, pl_module: pl.LightningModule) -> None:
        if not self.enabled or self._backup:
            return
        if not self.shadow:
            raise RuntimeError("EMA has no averaged weights: train first or load a checkpoint")
        for name, p in self._parameters(pl_module).items():
            self._backup[name] = p.detach().clone()
            p.copy_(self.shadow[name])

    @torch.no_grad()
    def swap_out(self, pl_module: pl.LightningModule) -> None:
        for name, p in self._parameters(pl_module).items():
            if name in self._backup:
                p.copy_(self._backup[name])
        self._backup.clear()

    def on_validation_start(self, trainer, pl_module) -> None:
        self.swap_in(pl_module)

    def on_validation_end(self, trainer, pl_module) -> None:
        self.swap_out(pl_module)

    def state_dict(self) -> dict[str, Any]:
        return {"shadow": self.shadow, "num_updates": self.num_updates}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.shadow = state_dict["shadow"]
        self.num_updates = state_dict["num_updates"]


def active_ema(trainer: pl.Trainer) -> EMA | None:
    """The trainer's enabled EMA callback, if any."""
    return next((c for c in trainer.callbacks if isinstance(c, EMA) and c.enabled), None)


def reported_weights(trainer: pl.Trainer, pl_module: pl.LightningModule, weights: str):
    """A context with the weights a run reports loaded: `weights`, as its record says
    (results.json eval.weights, decided once from `ema`), "ema" or "raw"."""
    if weights == "raw":
        return nullcontext()
    ema = active_ema(trainer)
    if ema is None:
        raise ValueError("the run reports EMA weights (ema=true) but its EMA callback is off "
                         "(callbacks.ema.enabled=false): leave callbacks.ema.enabled to follow ema")
    return ema.averaged_weights(pl_module)
