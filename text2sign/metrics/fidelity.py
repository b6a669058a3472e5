"""Pixel fidelity of generated clips against the real clip with the same caption."""

from __future__ import annotations

import torch
from torchmetrics.functional.image import (
    peak_signal_noise_ratio,
    structural_similarity_index_measure,
)

from text2sign.metrics.frames import paired_frames


def fidelity(fake: torch.Tensor, real: torch.Tensor) -> dict[str, float]:
    """SSIM and PSNR of uint8 (B, C, T, H, W) generated clips against real ones, frame-averaged.

    ssim: torchmetrics' SSIM (11x11 Gaussian window, sigma 1.5) on [0, 1] frames, in
    [-1, 1], 1 for identical frames. psnr: 10 log10(1 / MSE) in dB per frame on [0, 1]
    frames; higher is better and +inf for identical frames (so the mean is +inf as soon as
    one frame is reproduced exactly).
    """
    a, b = (frames.float() / 255 for frames in paired_frames(fake, real))
    ssim = structural_similarity_index_measure(a, b, data_range=1.0, reduction="none")
    psnr = peak_signal_noise_ratio(a, b, data_range=1.0, reduction="none", dim=(1, 2, 3))
    return {"ssim": float(ssim.mean()), "psnr": float(psnr.mean())}
