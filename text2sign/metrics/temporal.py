"""Temporal consistency of generated clips, and the amount of motion to read it against."""

from __future__ import annotations

import math

import torch

# Frames are compared after a Gaussian blur of sigma = BLUR * frame height: then the
# difference grows with how far a hand moved instead of saturating as soon as the blob no
# longer overlaps itself (at 16 px a hand moves more than its own width between frames).
BLUR = 1 / 8
# Mean absolute difference (per pixel and channel, [0, 1] units) under which a clip counts
# as motionless: far below one grey level (1/255) anywhere in the frame.
MOTIONLESS = 1e-6


def mean_motion(videos: torch.Tensor) -> torch.Tensor:
    """(B,) mean absolute frame-to-frame difference of (B, C, T, H, W) videos in [0, 1].

    In [0, 1], 0 for a frozen clip; reported next to ``temporal_consistency`` so that a clip
    that does not move cannot pass for a smooth one.
    """
    x = _frames(videos)
    if x.shape[1] < 2:
        return torch.zeros(x.shape[0], dtype=torch.float64)
    return (x[:, 1:] - x[:, :-1]).abs().mean(dim=(1, 2))


def temporal_consistency(videos: torch.Tensor) -> torch.Tensor:
    """(B,) smoothness in [0, 1] of (B, C, T, H, W) videos in [0, 1]; higher is smoother.

    score = 1 - d_next / d_any, clamped to [0, 1]: d_next is the mean absolute difference
    between consecutive frames, d_any the mean over all pairs of distinct frames, both on
    blurred frames (``BLUR``). Scale-free: it asks how much more alike neighbouring frames
    are than frames drawn at random from the same clip. The same frames in random order
    score about 0 (over random permutations E[d_next] = d_any); flicker that makes
    neighbours differ more than random pairs is clamped to 0. Two frames always score 0.
    A motionless clip (d_any < ``MOTIONLESS``, or a single frame) scores 1 by definition:
    read the score together with ``mean_motion``.
    """
    x = _frames(videos, blur=True)
    num_frames = x.shape[1]
    if num_frames < 2:
        return torch.ones(x.shape[0], dtype=torch.float64)
    d_next = (x[:, 1:] - x[:, :-1]).abs().mean(dim=(1, 2))
    pairwise = torch.cdist(x, x, p=1) / x.shape[2]  # (B, T, T), zero diagonal
    d_any = pairwise.sum(dim=(1, 2)) / (num_frames * (num_frames - 1))
    score = (1.0 - d_next / d_any.clamp_min(MOTIONLESS)).clamp(0.0, 1.0)
    return torch.where(d_any < MOTIONLESS, torch.ones_like(score), score)


def _frames(videos: torch.Tensor, blur: bool = False) -> torch.Tensor:
    """(B, C, T, H, W) -> (B, T, C*H*W) float64, each frame blurred first if ``blur``."""
    if videos.ndim != 5 or not videos.is_floating_point():
        raise ValueError(f"expected float videos (B, C, T, H, W) in [0, 1], got {videos.dtype} "
                         f"{tuple(videos.shape)}")
    return (_blur(videos) if blur else videos).transpose(1, 2).flatten(2).double()


def _blur(videos: torch.Tensor) -> torch.Tensor:
    """Gaussian blur of every frame (edges replicated), as one matrix product per axis."""
    height, width = videos.shape[-2:]
    sigma = BLUR * height
    return _blur_matrix(height, sigma) @ videos.double() @ _blur_matrix(width, sigma).T


def _blur_matrix(size: int, sigma: float) -> torch.Tensor:
    """(size, size) M with (M @ x)[i] = sum_k g[k] x[clamp(i + k)], g a normalised Gaussian."""
    radius = math.ceil(3 * sigma)
    offsets = torch.arange(-radius, radius + 1)
    weights = torch.exp(-offsets.double() ** 2 / (2 * sigma**2))
    source = (torch.arange(size)[:, None] + offsets).clamp(0, size - 1)
    matrix = torch.zeros(size, size, dtype=torch.float64)
    return matrix.scatter_add_(1, source, (weights / weights.sum()).expand(size, -1))
