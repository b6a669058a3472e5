"""Does the generated video depend on the text? The trained model as a caption classifier.

For each held-out clip, the denoising error is measured with its true caption and with K-1
other captions of the same split, at fixed timesteps and with the same fixed noise for every
candidate (a paired comparison); the caption with the lowest error is the model's guess (the
"diffusion classifier" of Li et al. 2023, Clark & Jaini 2023). No external weights, so it works
on every dataset. A model that ignores the text gives every candidate the same error: ties are
broken at random with a fixed seed, so it scores chance, 1/K.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from text2sign.metrics.errors import MetricUnavailable
from text2sign.seeds import generator

# (x0 uint8 (B, C, T, H, W), captions, timesteps (B,), noise (B, C, T, H, W)) -> errors (B,)
ErrorFn = Callable[[torch.Tensor, list[str], torch.Tensor, torch.Tensor], torch.Tensor]
# errors this close (relative) count as equal: the same input up to float rounding
TIE_TOLERANCE = 1e-6
NAMES = ("caption_retrieval_acc", "caption_retrieval_acc_ci_low", "caption_retrieval_acc_ci_high",
         "caption_retrieval_chance", "text_loss_gap", "text_loss_gap_ci_low",
         "text_loss_gap_ci_high")


def rng(*key: int) -> np.random.Generator:
    return np.random.default_rng([*key])


def candidate_captions(true: Sequence[str], pool: Sequence[str], k: int,
                       seed: int) -> list[list[str]]:
    """Per clip, its true caption first, then k-1 other distinct captions of the pool."""
    distinct = list(dict.fromkeys([*pool, *true]))
    candidates = []
    for i, caption in enumerate(true):
        others = [c for c in distinct if c != caption]
        picked = rng(seed, 0, i).choice(len(others), k - 1, replace=False)
        candidates.append([caption, *(others[j] for j in sorted(picked))])
    return candidates


@torch.no_grad()
def candidate_errors(error_fn: ErrorFn, videos: torch.Tensor, candidates: list[list[str]],
                     timesteps: Sequence[int], seed: int, batch_size: int) -> np.ndarray:
    """(N, K) mean denoising error of clip i with candidate k over the timesteps.

    Clip i's noise at each timestep comes from (seed, i) and is shared by its K candidates."""
    n, k = len(candidates), len(candidates[0])
    jobs = [(i, c, s) for i in range(n) for c in range(k) for s in range(len(timesteps))]
    noise = [torch.randn((len(timesteps), *videos.shape[1:]), generator=generator(seed, i))
             for i in range(n)]
    errors = np.zeros((n, k, len(timesteps)))
    for start in range(0, len(jobs), batch_size):
        chunk = jobs[start:start + batch_size]
        x0 = torch.stack([videos[i] for i, _, _ in chunk])
        eps = torch.stack([noise[i][s] for i, _, s in chunk])
        t = torch.tensor([timesteps[s] for _, _, s in chunk])
        captions = [candidates[i][c] for i, c, _ in chunk]
        values = error_fn(x0, captions, t, eps).double().cpu().numpy()
        for (i, c, s), value in zip(chunk, values):
            errors[i, c, s] = value
    return errors.mean(axis=2)


def guesses(errors: np.ndarray, seed: int) -> np.ndarray:
    """Index of the lowest-error candidate per clip; ties broken at random (fixed seed)."""
    picks = []
    for i, row in enumerate(errors):
        lowest = np.flatnonzero(row <= row.min() + TIE_TOLERANCE * abs(row.min()))
        picks.append(lowest[rng(seed, 1, i).integers(len(lowest))])
    return np.array(picks)


def bootstrap_ci(values: np.ndarray, seed: int, resamples: int) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean over clips."""
    draws = rng(seed, 2).integers(len(values), size=(resamples, len(values)))
    means = values[draws].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def caption_retrieval(
    error_fn: ErrorFn,
    videos: torch.Tensor,
    captions: Sequence[str],
    pool: Sequence[str],
    num_candidates: int,
    timesteps: Sequence[int],
    seed: int,
    batch_size: int,
    bootstrap: int,
) -> dict[str, Any]:
    """Retrieval accuracy, chance and text loss gap, each with a 95% bootstrap CI over clips.

    videos: uint8 (N, C, T, H, W) held-out clips with their `captions`; pool: the captions the
    wrong candidates come from (the split's). text_loss_gap: mean over clips of the mean
    relative error increase of the wrong captions over the true one (0: text ignored)."""
    distinct = len(set(pool) | set(captions))
    k = min(num_candidates, distinct)
    if k < 2:
        raise MetricUnavailable(f"caption retrieval needs at least 2 distinct captions in the "
                                f"split; it has {distinct}")
    errors = candidate_errors(error_fn, videos, candidate_captions(captions, pool, k, seed),
                              timesteps, seed, batch_size)
    correct = (guesses(errors, seed) == 0).astype(float)
    true = np.maximum(errors[:, :1], np.finfo(float).tiny)
    gap = ((errors[:, 1:] - true) / true).mean(axis=1)
    acc_ci, gap_ci = (bootstrap_ci(v, seed, bootstrap) for v in (correct, gap))
    return {
        "caption_retrieval_acc": float(correct.mean()),
        "caption_retrieval_acc_ci_low": acc_ci[0],
        "caption_retrieval_acc_ci_high": acc_ci[1],
        "caption_retrieval_chance": 1 / k,
        "text_loss_gap": float(gap.mean()),
        "text_loss_gap_ci_low": gap_ci[0],
        "text_loss_gap_ci_high": gap_ci[1],
        "retrieval": {"num_clips": len(captions), "num_candidates": k,
                      "timesteps": list(timesteps), "seed": seed, "bootstrap": bootstrap},
    }
