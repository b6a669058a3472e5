"""Where the host waits for the GPU: device values read without waiting, and a count of
the reads that wait.

Reading a CUDA tensor (`.item()`, `float()`, `if tensor:`) waits for every kernel queued so
far, and so does a tensor made on the GPU from a host number (`torch.tensor(x, device=...)`):
inside a training loop the GPU then idles while the host queues the next step. A HostScalar
starts a non-blocking copy into pinned memory and records an event after it; `value()` waits
for that event only, which has long passed when it is read a step later. HostReads counts the
reads that wait, where each happens (the bench, tests/test_perf.py).
"""

from __future__ import annotations

import sys
from collections import Counter

import torch
from torch.overrides import TorchFunctionMode

READS = {torch.Tensor.item, torch.Tensor.tolist, torch.Tensor.numpy, torch.Tensor.cpu,
         torch.Tensor.__bool__, torch.Tensor.__float__, torch.Tensor.__int__,
         torch.Tensor.__index__}
FROM_HOST = {torch.tensor, torch.as_tensor, torch.scalar_tensor}


class HostScalar:
    """The value of a one-element tensor, copied to the host without waiting for it."""

    def __init__(self, tensor: torch.Tensor):
        tensor = tensor.detach()
        self._event: torch.cuda.Event | None = None
        self._value: float | None = None
        if tensor.device.type == "cuda":
            self._host = torch.empty(tensor.shape, dtype=tensor.dtype, pin_memory=True)
            self._host.copy_(tensor, non_blocking=True)
            self._event = torch.cuda.Event()
            self._event.record()
        else:
            self._host = tensor

    def ready(self) -> bool:
        """Whether `value()` would return without waiting."""
        return self._value is not None or self._event is None or self._event.query()

    def value(self) -> float:
        """The number (waits only for the work queued before the copy)."""
        if self._value is None:
            if self._event is not None:
                self._event.synchronize()
            self._value = float(self._host)
        return self._value


class HostReads(TorchFunctionMode):
    """Counts, while active, the host reads of tensors on `device` and the tensors made there
    from host numbers (both a synchronisation on a GPU), by the place in the code
    ("file:line function") that asked. A HostScalar's read is not one: it waits for its copy
    only. On a CPU every tensor is on the device: host-side tensors count too."""

    def __init__(self, device: torch.device):
        super().__init__()
        self.device = torch.device(device)
        self.counts: Counter[str] = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in READS and args[0].device.type == self.device.type or (
                func in FROM_HOST and self._here(kwargs.get("device"))):
            self._count(sys._getframe(1))
        return func(*args, **kwargs)

    def _here(self, device) -> bool:
        return device is not None and torch.device(device).type == self.device.type

    def _count(self, caller) -> None:
        frame = caller
        while frame is not None:
            if frame.f_code is HostScalar.value.__code__:
                return
            frame = frame.f_back
        self.counts[f"{caller.f_code.co_filename}:{caller.f_lineno} {caller.f_code.co_name}"] += 1
