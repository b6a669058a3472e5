"""Every evaluation metric of one set of generated clips against the real clips of their captions.

`video_metrics` returns (metrics, unavailable): each metric is a number or None, and every None
has its reason, with the config key that enables it, in `unavailable`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from text2sign.metrics.errors import MetricUnavailable
from text2sign.metrics.faithfulness import text_faithfulness
from text2sign.metrics.fidelity import fidelity
from text2sign.metrics.perceptual import clip_lpips, load_lpips
from text2sign.metrics.temporal import mean_motion, temporal_consistency
from text2sign.metrics.video_distance import fvd, real_stats_cache_key
from text2sign.metrics.video_features import load_video_feature_extractor

Metrics = dict[str, Any]


def video_metrics(
    real: torch.Tensor,
    fake: torch.Tensor,
    clips: dict[str, Any],
    dataset_id: str,
    fvd_settings: dict[str, Any],
    lpips_settings: dict[str, Any],
    cache_dir: str | Path | None,
    download: bool,
) -> tuple[Metrics, dict[str, str]]:
    """real, fake: uint8 (B, C, T, H, W), clip i of `fake` generated from clip i's caption.
    `clips` may hold `hands` and `gloss_ids` (the synthetic dataset's ground truth)."""
    metrics: Metrics = {}
    unavailable: dict[str, str] = {}

    def attempt(names: tuple[str, ...], compute: Callable[[], Metrics]) -> None:
        try:
            metrics.update(compute())
        except MetricUnavailable as reason:
            metrics.update(dict.fromkeys(names))
            unavailable.update(dict.fromkeys(names, str(reason)))

    attempt(("temporal_consistency", "temporal_consistency_real", "motion", "motion_real"),
            lambda: _temporal(real, fake))
    attempt(("ssim", "psnr"), lambda: fidelity(fake, real))
    attempt(("dtw_mje", "gloss_accuracy", "hands_found"), lambda: _faithfulness(fake, clips))
    attempt(("fvd",), lambda: _fvd(real, fake, dataset_id, fvd_settings, cache_dir, download))
    attempt(("lpips",), lambda: _lpips(real, fake, lpips_settings, cache_dir, download))
    for name, value in metrics.items():
        if isinstance(value, float) and not math.isfinite(value):
            metrics[name] = None  # JSON has no infinity; PSNR is +inf for identical frames
            unavailable[name] = f"{name} is {value}: a generated frame equals its real frame"
    if "dtw_mje" in metrics and metrics["dtw_mje"] is None and "dtw_mje" not in unavailable:
        unavailable["dtw_mje"] = "no generated frame shows both hands (hands_found = 0)"
    return metrics, unavailable


def _temporal(real: torch.Tensor, fake: torch.Tensor) -> Metrics:
    real_f, fake_f = real.float() / 255, fake.float() / 255
    return {
        "temporal_consistency": float(temporal_consistency(fake_f).mean()),
        "temporal_consistency_real": float(temporal_consistency(real_f).mean()),
        "motion": float(mean_motion(fake_f).mean()),
        "motion_real": float(mean_motion(real_f).mean()),
    }


def _faithfulness(fake: torch.Tensor, clips: dict[str, Any]) -> Metrics:
    if "hands" not in clips or "gloss_ids" not in clips:
        raise MetricUnavailable("needs ground-truth hand positions and glosses, which only the "
                                "synthetic dataset (data=synthetic) has")
    return text_faithfulness(fake, clips["hands"], clips["gloss_ids"])


def _fvd(real, fake, dataset_id, settings, cache_dir, download) -> Metrics:
    backbone = settings["backbone"]
    extractor = load_video_feature_extractor(
        backbone=backbone,
        detector_path=settings.get("detector_path"),
        detector_sha256=settings.get("detector_sha256"),
        videomae_name=settings["videomae_name"],
        local_files_only=settings["local_files_only"],
        cache_dir=cache_dir,
        download=download,
        batch_size=settings["batch_size"],
    )
    tag = settings["videomae_name"] if backbone == "videomae" else backbone
    _, _, frames, size, _ = real.shape
    key = real_stats_cache_key(dataset_id, len(real), frames, size, tag)
    return {"fvd": fvd(real, fake, extractor, cache_dir, key)}


def _lpips(real, fake, settings, cache_dir, download) -> Metrics:
    model = load_lpips(settings.get("backbone_path"), settings.get("linear_path"), cache_dir,
                       download)
    return {"lpips": float(clip_lpips(model, fake, real).mean())}
