"""Frechet Video Distance with the real set's statistics cached on disk."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch

from text2sign.metrics.errors import MetricUnavailable
from text2sign.metrics.frechet import feature_stats, frechet_distance_from_stats
from text2sign.metrics.video_features import VideoFeatureExtractor
from text2sign.rundir.files import atomic_file


def real_stats_cache_key(dataset: str, num_videos: int, num_frames: int, image_size: int,
                         backbone: str) -> str:
    """File-name-safe key of one real set's statistics, e.g. 'synthetic-val-n64-t16-s64-i3d'.

    ``dataset`` should name the split and data seed too; ``backbone`` the model (a VideoMAE
    name, say) whenever different weights could sit behind the same backbone type.
    """
    key = f"{dataset}-n{num_videos}-t{num_frames}-s{image_size}-{backbone}"
    return re.sub(r"[^A-Za-z0-9._-]+", "_", key)


def real_video_stats(real_videos: torch.Tensor, extractor: VideoFeatureExtractor,
                     cache_dir: str | Path | None = None,
                     cache_key: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Feature mean and covariance of the real videos, read from / written to
    ``cache_dir``/fvd_stats/``cache_key``.npz when both are given (recomputed if the cached
    file holds a different number of videos)."""
    if cache_dir is None or cache_key is None:
        return feature_stats(extractor(real_videos))
    path = Path(cache_dir).expanduser() / "fvd_stats" / f"{cache_key}.npz"
    if path.is_file():
        with np.load(path) as cached:
            if int(cached["num_videos"]) == len(real_videos):
                return cached["mean"], cached["cov"]
    mean, cov = feature_stats(extractor(real_videos))
    _save_stats(path, mean, cov, len(real_videos))
    return mean, cov


def _save_stats(path: Path, mean: np.ndarray, cov: np.ndarray, num_videos: int) -> None:
    with atomic_file(path, "wb") as f:
        np.savez(f, mean=mean, cov=cov, num_videos=num_videos)


def fvd(real_videos: torch.Tensor, fake_videos: torch.Tensor, extractor: VideoFeatureExtractor,
        real_stats_cache: str | Path | None = None, cache_key: str | None = None) -> float:
    """Frechet distance between the extractor's features of real and generated videos.

    Videos are uint8 (B, C, T, H, W). 0 for identical sets, lower is better. Undefined for
    fewer than 2 videos on either side: MetricUnavailable. The real statistics are cached
    under ``real_stats_cache`` by ``cache_key`` (see ``real_stats_cache_key``).
    """
    if min(len(real_videos), len(fake_videos)) < 2:
        raise MetricUnavailable(f"FVD needs at least 2 real and 2 generated videos, got "
                                f"{len(real_videos)} and {len(fake_videos)}: evaluate more clips")
    mean_real, cov_real = real_video_stats(real_videos, extractor, real_stats_cache, cache_key)
    mean_fake, cov_fake = feature_stats(extractor(fake_videos))
    return frechet_distance_from_stats(mean_real, cov_real, mean_fake, cov_fake)
