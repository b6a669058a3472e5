"""Frechet distance between Gaussian fits of two feature sets (the distance behind FID/FVD)."""

from __future__ import annotations

import numpy as np
import torch


def feature_stats(feats: torch.Tensor | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and unbiased covariance (D, D), float64, of (N, D) features; N >= 2."""
    x = np.asarray(torch.as_tensor(feats).detach().cpu(), dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need (N, D) features with N >= 2, got shape {x.shape}")
    return x.mean(axis=0), np.cov(x, rowvar=False).reshape(x.shape[1], x.shape[1])


def frechet_distance_from_stats(mu_a: np.ndarray, cov_a: np.ndarray,
                                mu_b: np.ndarray, cov_b: np.ndarray) -> float:
    """||mu_a - mu_b||^2 + tr(cov_a + cov_b - 2 (cov_a cov_b)^(1/2)), in float64, >= 0.

    tr((cov_a cov_b)^(1/2)) is the sum of the square roots of the eigenvalues of the
    symmetric PSD matrix S cov_b S with S = cov_a^(1/2): the same eigenvalues as cov_a cov_b,
    but computed with eigvalsh, so no complex parts to discard. Round-off negatives are
    clamped at 0.
    """
    evals, evecs = np.linalg.eigh(np.asarray(cov_a, np.float64))
    sqrt_a = (evecs * np.sqrt(np.clip(evals, 0.0, None))) @ evecs.T
    middle = sqrt_a @ np.asarray(cov_b, np.float64) @ sqrt_a
    tr_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2), 0.0, None)).sum()
    diff = np.asarray(mu_a, np.float64) - np.asarray(mu_b, np.float64)
    distance = diff @ diff + np.trace(cov_a) + np.trace(cov_b) - 2.0 * tr_sqrt
    return float(max(distance, 0.0))


def frechet_distance(feats_a: torch.Tensor | np.ndarray,
                     feats_b: torch.Tensor | np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to (N, D) and (M, D) features; 0 when identical."""
    return frechet_distance_from_stats(*feature_stats(feats_a), *feature_stats(feats_b))
