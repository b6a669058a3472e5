"""The fast path: the `perf` settings (conf/perf/default.yaml), read by the module that uses them.

`FastPath()` is the plain path (every switch off): the eager baseline of the bench, and what a
checkpoint written before the fast path existed gets. TextToSignModule passes the denoiser's
switches to UNet3D's constructor and applies the rest in Lightning's `configure_model` (TF32,
`UNet3D.compile`) and `configure_optimizers` (the fused kernel). Every switch is safe on a CPU.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch

AUTOCAST_DTYPES = {"bf16-mixed": torch.bfloat16, "bf16": torch.bfloat16, "16-mixed": torch.float16}
AUTO = "auto"


# marks a setting that takes true, false or auto (the policy of `FastPath.on` decides)
SWITCH = {"switch": True}


@dataclass
class FastPath:
    """The keys of the `perf` group; docs/performance.md says when each one helps."""

    # torch.compile the denoiser (UNet3D.compile); auto: with CUDA
    compile: Any = field(default=False, metadata=SWITCH)
    compile_mode: str = "default"  # default | reduce-overhead | max-autotune | ...
    compile_backend: str = "inductor"  # inductor | aot_eager (no code generation: tests)
    gradient_checkpointing: bool = False  # recompute each UNet stage in backward
    channels_last: bool = False  # channels_last_3d weights and activations
    tf32: bool = False  # TF32 tensor cores for fp32 matmuls and convolutions
    # the optimizer's fused kernel; auto: on a GPU
    fused_optimizer: Any = field(default=False, metadata=SWITCH)
    # sampling's denoiser pass as one CUDA graph (models/cuda_graph.py); auto: on a GPU
    cuda_graphs: Any = field(default=False, metadata=SWITCH)

    def __post_init__(self) -> None:
        for setting in dataclasses.fields(self):  # a bad value fails now, not when training starts
            value = getattr(self, setting.name)
            if setting.metadata.get("switch") and not (isinstance(value, bool) or value == AUTO):
                raise ValueError(f"perf.{setting.name}={value!r}: use auto, true or false")

    def on(self, key: str, auto: bool) -> bool:
        """The value of a switch; `auto` gives the policy's answer."""
        value = getattr(self, key)
        return auto if value == AUTO else value

    def compiles(self) -> bool:
        # auto: off on a CPU, where minutes of inductor compilation outweigh a short run
        return self.on("compile", auto=torch.cuda.is_available())

    def captures(self, device: torch.device) -> bool:
        """Whether sampling on `device` replays a CUDA graph (never off CUDA)."""
        return device.type == "cuda" and self.on("cuda_graphs", auto=True)

    def compile_options(self) -> dict[str, Any]:
        """torch.compile's arguments; a mode is an inductor setting, other backends reject it."""
        if self.compile_backend != "inductor":
            return {"backend": self.compile_backend}
        mode = None if self.compile_mode == "default" else self.compile_mode
        return {"backend": "inductor", "mode": mode}

    def apply_global_settings(self) -> None:
        """TF32 for fp32 matmuls and convolutions (Ampere and later GPUs; ignored on a CPU)."""
        torch.backends.cuda.matmul.allow_tf32 = self.tf32
        torch.backends.cudnn.allow_tf32 = self.tf32

    def optimizer_options(self, factory: Callable,
                          params: Iterable[torch.Tensor]) -> dict[str, Any]:
        """The keyword arguments `factory` (a partial of an optimizer class) gets besides the
        parameter groups: the fused kernel where perf.fused_optimizer (auto: the parameters
        are on a GPU) asks for it. Called from configure_optimizers, after the move to the device.
        """
        optimizer_class = getattr(factory, "func", factory)
        supported = "fused" in inspect.signature(optimizer_class).parameters
        if not self.on("fused_optimizer", auto=supported and all(p.is_cuda for p in params)):
            return {}
        if not supported:
            raise ValueError(f"perf.fused_optimizer=true: {optimizer_class.__name__} has no fused "
                             "kernel; set perf.fused_optimizer=auto or false")
        return {"fused": True}
