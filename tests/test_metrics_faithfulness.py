"""The weight-free text-faithfulness metrics, validated on the synthetic dataset itself."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from text2sign.data.synthetic import (
    GLOSSES,
    SyntheticSignDataset,
    gloss_template,
    make_signer,
    render_clip,
)
from text2sign.metrics import classify_glosses, dtw_mje, locate_hands, text_faithfulness


@pytest.fixture(scope="module")
def test_split():
    """Held-out clips at the default small scale (8 frames, 16 px): videos, hands, glosses."""
    data = SyntheticSignDataset("test", num_clips=64, num_frames=8, image_size=16)
    items = [data[i] for i in range(len(data))]
    return tuple(torch.stack([item[k] for item in items]) for k in ("video", "hands", "gloss_ids"))


def noise_videos(shape: tuple[int, ...], seed: int = 0) -> dict[str, torch.Tensor]:
    """Uniform noise, and clipped Gaussian noise as an untrained diffusion model emits."""
    rng = np.random.default_rng(seed)
    gaussian = np.clip(rng.standard_normal(shape), -1, 1)
    return {"uniform": torch.from_numpy(rng.integers(0, 256, shape, dtype=np.uint8)),
            "clipped_gaussian": torch.from_numpy(np.rint((gaussian + 1) * 127.5).astype(np.uint8))}


@pytest.mark.parametrize("size", [16, 64])
def test_hands_located_on_ground_truth_clips(size):
    signer = make_signer(3)
    video, truth = render_clip(["want", "go"], signer, num_frames=8, image_size=size)
    hands = locate_hands(video)
    assert hands.shape == (8, 2, 2)
    found = ~np.isnan(hands).any(axis=(1, 2))
    assert found.mean() >= 7 / 8
    assert np.linalg.norm(hands[found] - truth[found], axis=-1).max() < 1.5 / size


def test_noise_yields_hands_not_found():
    for name, noise in noise_videos((3, 100, 16, 16)).items():
        hands = locate_hands(noise)
        # Measured per hand and frame: 1.1% (uniform) and 0.4% (clipped Gaussian) at 16 px.
        assert np.isnan(hands[..., 0]).mean() > 0.95, name


def test_ground_truth_clips_score_near_perfect(test_split):
    videos, hands, glosses = test_split
    scores = text_faithfulness(videos, hands, glosses)
    # Measured on these 64 clips: 0.013, 1.00, 0.990; on 200 clips at 16x64x64: 0.0016, 0.99, 0.995.
    assert scores["dtw_mje"] < 0.02
    assert scores["gloss_accuracy"] > 0.95
    assert scores["hands_found"] > 0.97


def test_wrong_captions_score_near_chance(test_split):
    videos, hands, glosses = test_split
    other = torch.roll(torch.arange(len(videos)), 1)
    scores = text_faithfulness(videos, hands[other], glosses[other])
    assert scores["gloss_accuracy"] < 0.12  # measured 0.047; chance is 1/27 = 0.037
    assert scores["dtw_mje"] > 0.08


def test_noise_finds_no_hands(test_split):
    _, hands, glosses = test_split
    for name, noise in noise_videos((len(hands), 3, 8, 16, 16), seed=1).items():
        scores = text_faithfulness(noise, hands, glosses)
        assert scores["hands_found"] < 0.01 and scores["gloss_accuracy"] < 0.02, name


def test_every_gloss_template_is_recognised():
    templates = [gloss_template(g.word, 16).astype(np.float64) for g in GLOSSES]
    labels = [classify_glosses(t, 1)[0] for t in templates]
    assert labels == list(range(len(GLOSSES)))


def test_gloss_slots_of_a_three_gloss_clip():
    words = ["thank you", "friend", "stop"]
    _, truth = render_clip(words, make_signer(0), num_frames=12, image_size=32)
    expected = [next(i for i, g in enumerate(GLOSSES) if g.word == w) for w in words]
    assert classify_glosses(truth.astype(np.float64), 3).tolist() == expected
    assert classify_glosses(np.full((12, 2, 2), np.nan), 3).tolist() == [-1, -1, -1]


def test_dtw_mje_definition():
    truth = gloss_template("friend", 8).astype(np.float64)
    assert dtw_mje(truth, truth) == 0.0
    assert dtw_mje(np.repeat(truth, 2, axis=0), truth) == pytest.approx(0.0)  # slower, same path
    assert dtw_mje(truth + [0.03, 0.04], truth) == pytest.approx(0.05)
    partly_missing = truth.copy()
    partly_missing[::2] = np.nan
    # frames with a missing hand are dropped
    assert dtw_mje(partly_missing, truth) == dtw_mje(truth[1::2], truth) > 0
    assert np.isnan(dtw_mje(np.full_like(truth, np.nan), truth))
