"""FVD through the real loading code, with small stand-in networks for I3D and VideoMAE."""

from __future__ import annotations

import dataclasses
import time

import pytest
import torch
from torch import nn

from text2sign.metrics import (
    MetricUnavailable,
    fvd,
    load_video_feature_extractor,
    real_stats_cache_key,
    video_features,
)


class StandInI3D(nn.Module):
    """The StyleGAN-V detector's call signature on a tiny random Conv3d."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv3d(3, 8, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor, rescale: bool = False, resize: bool = False,
                return_features: bool = False) -> torch.Tensor:
        assert x.dtype == torch.uint8 and rescale and resize and return_features
        return self.conv(x.float() / 127.5 - 1).relu().mean(dim=(2, 3, 4))


@pytest.fixture
def detector_path(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "stand_in_i3d.pt"
    torch.jit.script(StandInI3D()).save(str(path))
    return path


def videos(num: int, frames: int = 10, size: int = 16, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    shape = (num, 3, frames, size, size)
    return torch.randint(0, 200, shape, dtype=torch.uint8, generator=generator)


def test_identical_sets_score_zero_and_shifted_sets_more(detector_path):
    extractor = load_video_feature_extractor("i3d", detector_path=detector_path)
    real = videos(12)
    assert extractor(real).shape == (12, 8)
    assert fvd(real, real.clone(), extractor) == pytest.approx(0.0, abs=1e-9)
    assert fvd(real, real + 50, extractor) > 1e-3


def test_detector_found_in_the_cache_dir(detector_path, tmp_path):
    (tmp_path / "i3d_torchscript.pt").write_bytes(detector_path.read_bytes())
    extractor = load_video_feature_extractor("i3d", cache_dir=tmp_path, download=False)
    assert extractor(videos(2)).shape == (2, 8)


def test_real_stats_are_cached(detector_path, tmp_path):
    extractor = load_video_feature_extractor("i3d", detector_path=detector_path)
    seen = []

    def counting(batch):
        seen.append(len(batch))
        return extractor(batch)

    real, fake = videos(6, seed=1), videos(5, seed=2)
    key = real_stats_cache_key("synthetic-val", len(real), 10, 16, "i3d")
    first = fvd(real, fake, counting, real_stats_cache=tmp_path, cache_key=key)
    assert seen == [6, 5] and (tmp_path / "fvd_stats" / f"{key}.npz").is_file()
    second = fvd(real, fake, counting, real_stats_cache=tmp_path, cache_key=key)
    assert seen == [6, 5, 5]  # only the generated videos went through the network again
    assert second == first


def test_cache_key_names_the_settings():
    assert real_stats_cache_key("synthetic/val", 64, 16, 64, "videomae:MCG-NJU/videomae-base") == \
        "synthetic_val-n64-t16-s64-videomae_MCG-NJU_videomae-base"


def test_fewer_than_two_videos_is_unavailable(detector_path):
    extractor = load_video_feature_extractor("i3d", detector_path=detector_path)
    with pytest.raises(MetricUnavailable, match="at least 2"):
        fvd(videos(1), videos(4), extractor)


def test_i3d_refuses_clips_too_short_for_its_pooling(detector_path):
    extractor = load_video_feature_extractor("i3d", detector_path=detector_path)
    with pytest.raises(MetricUnavailable, match="data.num_frames"):
        extractor(videos(2, frames=8))


def test_missing_detector_fails_fast_naming_the_key(tmp_path, monkeypatch):
    with pytest.raises(MetricUnavailable, match="eval.fvd.detector_path"):
        load_video_feature_extractor("i3d", detector_path=tmp_path / "missing.pt")
    start = time.monotonic()
    # no published checksum: no download
    with pytest.raises(MetricUnavailable, match="eval.fvd.detector_path"):
        load_video_feature_extractor("i3d", cache_dir=tmp_path)
    offline = dataclasses.replace(video_features.I3D_DETECTOR, url="http://127.0.0.1:9/i3d_torchscript.pt")
    monkeypatch.setattr(video_features, "I3D_DETECTOR", offline)
    with pytest.raises(MetricUnavailable, match="eval.fvd.detector_path"):
        load_video_feature_extractor("i3d", cache_dir=tmp_path, detector_sha256="0" * 64,
                                     download=True)
    assert time.monotonic() - start < 5


def test_unknown_backbone():
    with pytest.raises(ValueError, match="eval.fvd.backbone"):
        load_video_feature_extractor("c3d")


@pytest.fixture
def videomae_dir(tmp_path):
    from transformers import VideoMAEConfig, VideoMAEModel

    torch.manual_seed(0)
    config = VideoMAEConfig(image_size=32, patch_size=16, num_frames=4, tubelet_size=2,
                            hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                            intermediate_size=32)
    VideoMAEModel(config).save_pretrained(tmp_path / "videomae")
    return tmp_path / "videomae"


def test_videomae_backbone_from_a_local_directory(videomae_dir):
    extractor = load_video_feature_extractor("videomae", videomae_name=str(videomae_dir))
    real = videos(6, frames=8)  # resampled to the model's 4 frames and 32 px
    assert extractor(real).shape == (6, 16)
    assert fvd(real, real.clone(), extractor) == pytest.approx(0.0, abs=1e-9)
    assert fvd(real, real // 2, extractor) > 1e-4


def test_missing_videomae_names_the_key(tmp_path):
    with pytest.raises(MetricUnavailable, match="eval.fvd.videomae_name"):
        load_video_feature_extractor("videomae", videomae_name=str(tmp_path / "nowhere"))
