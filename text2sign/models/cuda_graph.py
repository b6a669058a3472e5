"""A function of tensors replayed as one CUDA graph: sampling's denoiser pass, made 50 times.

A denoiser pass launches hundreds of small kernels; at sampling's batch sizes the GPU waits
for the host to launch them. Captured once into a CUDA graph (PyTorch's whole-network
capture: warm-up on a side stream, then `torch.cuda.graph`), each later pass is one launch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

log = logging.getLogger(__name__)


class CapturedCall:
    """`fn(*tensors)` captured on its first call and replayed on every later one, with the
    new inputs copied into the captured ones: every call must pass tensors of the first
    call's shapes, and `fn` must not read device values on the host. If the capture fails,
    the calls run `fn` uncaptured, and the log says why."""

    def __init__(self, fn: Callable[..., torch.Tensor], warmup: int = 2):
        self.fn, self.warmup = fn, warmup
        self.graph: torch.cuda.CUDAGraph | None = None
        self.failed = False

    def __call__(self, *args: torch.Tensor) -> torch.Tensor:
        if self.failed:
            return self.fn(*args)
        if self.graph is None:
            self._capture(args)
            return self(*args)
        for captured, new in zip(self.inputs, args):
            captured.copy_(new)
        self.graph.replay()
        return self.output.clone()  # the next replay overwrites the captured output

    def _capture(self, args: tuple[torch.Tensor, ...]) -> None:
        self.inputs = [a.clone() for a in args]
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        try:
            with torch.cuda.stream(side):  # lazy initialisation and compilation, outside capture
                for _ in range(self.warmup):
                    self.fn(*self.inputs)
            torch.cuda.current_stream().wait_stream(side)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph):
                self.output = self.fn(*self.inputs)
        except RuntimeError as err:
            self.failed, self.graph = True, None
            log.warning("CUDA graph capture failed, sampling runs uncaptured (set "
                        "perf.cuda_graphs=false to skip the attempt): %s", err)
