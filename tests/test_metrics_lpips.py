"""LPIPS through the real loading code, with random stand-in weights in the published formats."""

from __future__ import annotations

import dataclasses
import time

import pytest
import torch

from text2sign.metrics import MetricUnavailable, clip_lpips, load_lpips, perceptual
from text2sign.metrics.perceptual import AlexNetFeatures

# torchvision's alexnet().features: the shapes its checkpoint carries.
TORCHVISION_FEATURE_SHAPES = {
    "features.0.weight": (64, 3, 11, 11), "features.0.bias": (64,),
    "features.3.weight": (192, 64, 5, 5), "features.3.bias": (192,),
    "features.6.weight": (384, 192, 3, 3), "features.6.bias": (384,),
    "features.8.weight": (256, 384, 3, 3), "features.8.bias": (256,),
    "features.10.weight": (256, 256, 3, 3), "features.10.bias": (256,),
}


@pytest.fixture
def weight_paths(tmp_path):
    """A torchvision-style AlexNet checkpoint (classifier included) and lpips-style linear heads."""
    torch.manual_seed(0)
    backbone = {**AlexNetFeatures().state_dict(), "classifier.1.weight": torch.zeros(8, 8)}
    linear = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1)
              for k, c in enumerate(perceptual.CHANNELS)}
    torch.save(backbone, tmp_path / "alexnet.pth")
    torch.save(linear, tmp_path / "alex.pth")
    return tmp_path / "alexnet.pth", tmp_path / "alex.pth"


@pytest.fixture
def model(weight_paths):
    return load_lpips(*weight_paths)


def clips(seed: int, size: int = 16, frames: int = 4) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (2, 3, frames, size, size), dtype=torch.uint8, generator=generator)


def test_alexnet_layers_match_torchvision():
    shapes = {k: tuple(v.shape) for k, v in AlexNetFeatures().state_dict().items()}
    assert shapes == TORCHVISION_FEATURE_SHAPES


@pytest.mark.parametrize("size", [16, 64])
def test_identical_zero_different_positive_symmetric(model, size):
    a, b = clips(0, size), clips(1, size)
    assert clip_lpips(model, a, a.clone()).abs().max() < 1e-6
    ab, ba = clip_lpips(model, a, b), clip_lpips(model, b, a)
    assert ab.shape == (2,) and (ab > 1e-3).all()
    assert torch.allclose(ab, ba, rtol=1e-5)


def test_clip_score_is_the_mean_over_frames(model):
    a, b = clips(2), clips(3)
    per_frame = torch.stack([clip_lpips(model, a[:, :, [t]], b[:, :, [t]])
                             for t in range(a.shape[2])], dim=1)
    assert torch.allclose(clip_lpips(model, a, b, batch_size=3), per_frame.mean(dim=1), rtol=1e-5)


def test_missing_weights_name_their_keys(tmp_path, weight_paths):
    backbone, linear = weight_paths
    with pytest.raises(MetricUnavailable, match="eval.lpips.backbone_path"):
        load_lpips(tmp_path / "nope.pth", linear)
    with pytest.raises(MetricUnavailable, match="eval.lpips.linear_path"):
        load_lpips(backbone, cache_dir=tmp_path / "empty", download=False)


def test_unreachable_download_fails_fast(tmp_path, monkeypatch):
    offline = dataclasses.replace(perceptual.ALEXNET_WEIGHTS, url="http://127.0.0.1:9/alexnet.pth")
    monkeypatch.setattr(perceptual, "ALEXNET_WEIGHTS", offline)
    start = time.monotonic()
    with pytest.raises(MetricUnavailable, match="eval.lpips.backbone_path"):
        load_lpips(cache_dir=tmp_path, download=True)
    assert time.monotonic() - start < 5


def test_weights_found_in_the_cache_dir(tmp_path, weight_paths):
    backbone, linear = weight_paths
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / perceptual.ALEXNET_WEIGHTS.filename).write_bytes(backbone.read_bytes())
    (cache / perceptual.LPIPS_LINEAR_WEIGHTS.filename).write_bytes(linear.read_bytes())
    a, b = clips(4), clips(5)
    assert torch.equal(clip_lpips(load_lpips(cache_dir=cache, download=False), a, b),
                       clip_lpips(load_lpips(backbone, linear), a, b))
