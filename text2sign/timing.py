"""Wall-clock timing that waits for the GPU: the bench's and the evaluation's figures."""

from __future__ import annotations

import statistics
import time
from typing import Any, Callable

import torch


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on `device` (a CUDA kernel returns before it has run)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_ms(fn: Callable[[], Any], repeats: int, device: torch.device) -> float:
    """Median milliseconds of `fn()` over `repeats` calls after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        synchronize(device)
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)
