"""What training costs besides time: the FLOPs of a step, the share of the GPU's peak they
reach (MFU), and the process's peak memory."""

from __future__ import annotations

import gc
import re
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from torch.utils.flop_counter import (
    FlopCounterMode,
    flop_registry,
    register_flop_formula,
    sdpa_backward_flop_count,
    sdpa_flop_count,
)

from text2sign.module import UNCONDITIONAL_CAPTION

GB = 1024**3
aten = torch.ops.aten

# Dense peak FLOP/s (no sparsity) by precision; the first name found in the device name wins.
PEAK_FLOPS = {
    r"H100.*PCIe": {"bf16": 756e12, "tf32": 378e12, "fp32": 51.2e12},
    r"H100.*NVL": {"bf16": 835e12, "tf32": 418e12, "fp32": 60e12},
    r"H100|H200|GH200": {"bf16": 989e12, "tf32": 495e12, "fp32": 67e12},
    r"A100": {"bf16": 312e12, "tf32": 156e12, "fp32": 19.5e12},
    r"\bL4\b": {"bf16": 121e12, "tf32": 60e12, "fp32": 30.3e12},
}


def _count_cpu_flash_attention() -> None:
    """torch.utils.flop_counter counts SDPA's CUDA kernels but not the CPU's flash kernel, which
    scaled_dot_product_attention runs on a CPU (torch 2.13): count it with the same formulas."""
    forward = getattr(aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    backward = getattr(aten, "_scaled_dot_product_flash_attention_for_cpu_backward", None)
    if forward is not None and forward not in flop_registry:
        register_flop_formula(forward)(
            lambda q, k, v, *args, out_shape=None, **kwargs: sdpa_flop_count(q, k, v))
    if backward is not None and backward not in flop_registry:
        register_flop_formula(backward)(
            lambda grad, q, k, v, *args, out_shape=None, **kwargs:
            sdpa_backward_flop_count(grad, q, k, v))


_count_cpu_flash_attention()


def peak_flops(name: str, precision: str, tf32: bool) -> float | None:
    """The dense peak FLOP/s of the GPU called `name` at a Lightning precision; None unknown."""
    kind = "bf16" if "bf16" in str(precision) else "tf32" if tf32 else "fp32"
    return next((peaks[kind] for pattern, peaks in PEAK_FLOPS.items()
                 if re.search(pattern, name)), None)


def mfu(flops_per_clip: float, clips_per_s: float, peak: float | None) -> float | None:
    """Model FLOPs utilisation: the FLOP/s of `clips_per_s` over the GPU's `peak` (None:
    unknown)."""
    return None if peak is None else flops_per_clip * clips_per_s / peak


def flop_counter() -> FlopCounterMode:
    """torch.utils.flop_counter's counter, attention on a CPU included."""
    return FlopCounterMode(display=False)


def reset_peak_rss() -> bool:
    """Reset the process's peak resident memory (Linux: /proc/self/clear_refs); False where
    it cannot be reset."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def peak_rss_gb() -> float | None:
    """The process's peak resident memory since the last reset (Linux VmHWM); None elsewhere."""
    try:
        found = re.search(r"^VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    except OSError:
        return None
    return int(found.group(1)) * 1024 / GB if found else None


class StepCost(pl.Callback):
    """FLOPs of one training micro-batch, forward and backward (torch.utils.flop_counter on the
    run's first one), and the process's peak resident memory while training: what a CPU run's
    memory is (peak_memory_gb is CUDA's). A frozen text encoder encodes each caption once, not
    every step: the counted batch's captions are encoded before counting. The peak is reset
    when training starts, so each job of a sweep run in one process has its own; where it
    cannot be reset (not Linux) it is not reported. Kept across attempts: the larger peak."""

    def __init__(self):
        self.flops: int | None = None
        self.clips: int | None = None  # in the counted micro-batch
        self.peak_gb: float | None = None  # of the earlier attempts
        self.peak_flops: float | None = None  # of this attempt's GPU; None off a GPU or unknown
        self._counter: FlopCounterMode | None = None
        self._measuring = False

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        gc.collect()  # what earlier jobs of a sweep left unreachable in this process
        self._measuring = reset_peak_rss()
        device = pl_module.device
        if device.type == "cuda":  # TF32: the run's perf.tf32, applied by configure_model
            self.peak_flops = peak_flops(torch.cuda.get_device_name(device), trainer.precision,
                                         torch.backends.cuda.matmul.allow_tf32)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        if self.flops is None and self._counter is None:
            self.clips = len(batch["caption"])
            encoder = pl_module.text_encoder
            if not encoder.trainable:  # fills its cache: no random draw, the same features
                encoder([*batch["caption"], UNCONDITIONAL_CAPTION])
            self._counter = flop_counter()
            self._counter.__enter__()

    def on_after_backward(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._counter is not None:
            self.flops = self._stop_counting()

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.peak_gb, self._measuring = self._peak(), False

    def on_exception(self, trainer, pl_module, exception: BaseException) -> None:
        if self._counter is not None:
            self._stop_counting()

    def _stop_counting(self) -> int:
        """Leave the counter; the FLOPs it counted."""
        self._counter.__exit__(None, None, None)
        flops, self._counter = self._counter.get_total_flops(), None
        return flops

    def _peak(self) -> float | None:
        now = peak_rss_gb() if self._measuring else None
        known = [gb for gb in (self.peak_gb, now) if gb is not None]
        return max(known) if known else None

    def summary(self) -> dict[str, Any]:
        peak = self._peak()
        return {"flops_per_step": self.flops, "peak_rss_gb": None if peak is None else round(peak, 3)}

    def mfu(self, clips_per_s: float | None) -> float | None:
        """Model FLOPs utilisation at `clips_per_s`, of the counted micro-batch's FLOPs per
        clip; None off a GPU or for an unknown one."""
        if None in (self.flops, self.clips, clips_per_s):
            return None
        return mfu(self.flops / self.clips, clips_per_s, self.peak_flops)

    def state_dict(self) -> dict[str, Any]:
        return {"flops": self.flops, "clips": self.clips, "peak_gb": self._peak()}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.flops, self.peak_gb = state_dict["flops"], state_dict["peak_gb"]
        self.clips = state_dict.get("clips")  # none in a checkpoint written before MFU
