"""Evaluation metrics: FVD, LPIPS, SSIM/PSNR, temporal consistency, text faithfulness.

Every metric is computed from data or raises ``MetricUnavailable`` with the reason and the
config key that enables it; none returns a placeholder number.
"""

from text2sign.metrics.errors import MetricUnavailable
from text2sign.metrics.faithfulness import classify_glosses, dtw_mje, text_faithfulness
from text2sign.metrics.fidelity import fidelity
from text2sign.metrics.frechet import feature_stats, frechet_distance, frechet_distance_from_stats
from text2sign.metrics.hands import locate_hands
from text2sign.metrics.perceptual import LPIPS, clip_lpips, load_lpips
from text2sign.metrics.temporal import mean_motion, temporal_consistency
from text2sign.metrics.video_distance import fvd, real_stats_cache_key, real_video_stats
from text2sign.metrics.video_features import load_video_feature_extractor

__all__ = [
    "LPIPS",
    "MetricUnavailable",
    "classify_glosses",
    "clip_lpips",
    "dtw_mje",
    "feature_stats",
    "fidelity",
    "frechet_distance",
    "frechet_distance_from_stats",
    "fvd",
    "load_lpips",
    "load_video_feature_extractor",
    "locate_hands",
    "mean_motion",
    "real_stats_cache_key",
    "real_video_stats",
    "temporal_consistency",
    "text_faithfulness",
]
