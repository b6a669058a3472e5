"""The fast path: the `perf` config group applied to a built module.

Every switch is safe on a CPU. Nothing here renames a state_dict key: the denoiser's
`denoise` method is compiled in place, not wrapped in an OptimizedModule, so checkpoints of
the fast and the plain path are interchangeable.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import torch

from text2sign.models.unet3d import UNet3D

CONTEXT_MULTIPLE = 8  # text tokens are padded to a multiple of this for a compiled denoiser
AUTOCAST_DTYPES = {"bf16-mixed": torch.bfloat16, "bf16": torch.bfloat16, "16-mixed": torch.float16}


SWITCHES = ("compile", "fused_optimizer")  # the keys that take auto, true or false


def switch(key: str, value: Any, auto: bool) -> bool:
    """The value of a perf switch; `auto` gives the policy's answer."""
    if value == "auto":
        return auto
    if isinstance(value, bool):
        return value
    raise ValueError(f"perf.{key}={value!r}: use auto, true or false")


def apply(module: torch.nn.Module, perf: Any, precision: str) -> None:
    """Apply `perf` to a TextToSignModule; perf=None (a checkpoint from before the fast path
    existed) leaves the plain path."""
    module.denoiser.autocast_dtype = AUTOCAST_DTYPES.get(str(precision))
    if perf is None:
        return
    for key in SWITCHES:  # a bad value fails now, not when training starts
        switch(key, perf[key], auto=False)
    apply_global_settings(perf)
    configure_denoiser(module.denoiser, perf)
    module.optimizer_factory = functools.partial(
        build_optimizer, module.optimizer_factory, perf.fused_optimizer
    )


def apply_global_settings(perf: Any) -> None:
    """TF32 for fp32 matmuls and convolutions (Ampere and later GPUs; ignored on a CPU)."""
    torch.backends.cuda.matmul.allow_tf32 = perf.tf32
    torch.backends.cudnn.allow_tf32 = perf.tf32


def configure_denoiser(denoiser: UNet3D, perf: Any) -> None:
    denoiser.gradient_checkpointing = perf.gradient_checkpointing
    if perf.channels_last:
        denoiser.to(memory_format=torch.channels_last_3d)
        denoiser.memory_format = torch.channels_last_3d
    if switch("compile", perf.compile, auto=torch.cuda.is_available()):
        # Captions vary in length: padded to a multiple of 8 tokens they make a few static
        # shapes (inductor's backward failed on a dynamic token count: stride 5 vs 6).
        denoiser.context_multiple = CONTEXT_MULTIPLE
        denoiser.denoise = compile_fn(denoiser.denoise, perf.compile_mode, perf.compile_backend)


def compile_fn(fn: Callable, mode: str, backend: str) -> Callable:
    # a mode is an inductor setting; other backends reject it
    kwargs = {"mode": None if mode == "default" else mode} if backend == "inductor" else {}
    return torch.compile(fn, backend=backend, **kwargs)


def build_optimizer(factory: Callable, fused: Any, groups: list[dict]) -> torch.optim.Optimizer:
    """`factory(groups)`, with the fused kernel where `fused` (auto: on a GPU) asks for it.

    Called from configure_optimizers, after the parameters have moved to their device.
    """
    optimizer_class = getattr(factory, "func", factory)
    supported = "fused" in inspect.signature(optimizer_class).parameters
    on_gpu = all(p.is_cuda for group in groups for p in group["params"])
    if not switch("fused_optimizer", fused, auto=supported and on_gpu):
        return factory(groups)
    if not supported:
        raise ValueError(f"perf.fused_optimizer=true: {optimizer_class.__name__} has no fused "
                         "kernel; set perf.fused_optimizer=auto or false")
    return factory(groups, fused=True)
