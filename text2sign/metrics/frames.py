"""Generated and real clips as paired batches of frames, for the per-frame metrics."""

from __future__ import annotations

import torch


def paired_frames(fake: torch.Tensor, real: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, C, T, H, W) generated and real clips -> their frames, (B*T, C, H, W) each, clip-major.

    Clip i of ``real`` is the real clip with clip i's caption, so frame k of one batch pairs
    with frame k of the other.
    """
    if fake.shape != real.shape or fake.ndim != 5:
        raise ValueError(f"expected generated and real clips (B, C, T, H, W) of one shape, got "
                         f"{tuple(fake.shape)} and {tuple(real.shape)}")
    return fake.transpose(1, 2).flatten(0, 1), real.transpose(1, 2).flatten(0, 1)
