"""Caption retrieval: the model as a caption classifier scores 1 when it uses the text, chance
when it ignores it, and is a pure function of its seed."""

from __future__ import annotations

import zlib

import pytest
import torch

from text2sign.metrics.errors import MetricUnavailable
from text2sign.metrics.retrieval import candidate_captions, caption_retrieval

N, K = 200, 8
CAPTIONS = [f"sign {i % 50}" for i in range(N)]  # 50 distinct texts, each on several clips
# clip i's video is a constant grey level that encodes its caption
VIDEOS = torch.stack([torch.full((3, 2, 4, 4), 5 * (i % 50), dtype=torch.uint8)
                      for i in range(N)])


def level(caption: str) -> float:
    return 5.0 * int(caption.split()[1])


def oracle(x0, captions, t, noise):
    """Denoising error lowest for the caption the clip shows, plus noise-driven jitter."""
    wanted = torch.tensor([level(c) for c in captions])
    return (x0.float().mean(dim=(1, 2, 3, 4)) - wanted).abs() / 255 + 0.1 * noise.std(dim=(1, 2, 3, 4))


def text_blind(x0, captions, t, noise):
    return x0.float().mean(dim=(1, 2, 3, 4)) / 255 + noise.square().mean(dim=(1, 2, 3, 4)) * t / 1000


def retrieve(error_fn, seed=0, **kwargs):
    settings = dict(num_candidates=K, timesteps=[300, 700], seed=seed, batch_size=96,
                    bootstrap=500)
    return caption_retrieval(error_fn, VIDEOS, CAPTIONS, CAPTIONS, **{**settings, **kwargs})


def test_a_model_that_uses_the_text_finds_the_true_caption():
    result = retrieve(oracle)
    assert result["caption_retrieval_acc"] == 1.0
    assert result["caption_retrieval_chance"] == pytest.approx(1 / K)
    assert result["text_loss_gap"] > 0.5 and result["text_loss_gap_ci_low"] > 0
    assert result["retrieval"] == {"num_clips": N, "num_candidates": K, "timesteps": [300, 700],
                                   "seed": 0, "bootstrap": 500}


def test_a_model_that_ignores_the_text_scores_chance():
    result = retrieve(text_blind)
    low, high = result["caption_retrieval_acc_ci_low"], result["caption_retrieval_acc_ci_high"]
    assert low <= 1 / K <= high and high - low < 0.15
    assert result["text_loss_gap"] == 0.0  # every candidate has exactly the same error
    assert result["text_loss_gap_ci_low"] == result["text_loss_gap_ci_high"] == 0.0


def test_a_weak_text_effect_is_between_chance_and_one():
    def weak(x0, captions, t, noise):  # a fixed per-caption bias as large as the text's effect
        bias = torch.tensor([zlib.crc32(c.encode()) % 1000 / 1000 * 0.2 for c in captions])
        return oracle(x0, captions, t, noise) + bias
    result = retrieve(weak, timesteps=[500])
    assert 1 / K < result["caption_retrieval_acc"] < 1
    assert result["caption_retrieval_acc_ci_low"] < result["caption_retrieval_acc"]


def test_retrieval_is_fixed_by_its_seed():
    first, again = retrieve(text_blind, seed=3), retrieve(text_blind, seed=3)
    assert first == again
    others = [retrieve(text_blind, seed=s)["caption_retrieval_acc"] for s in (4, 5, 6)]
    assert len({first["caption_retrieval_acc"], *others}) > 1  # ties really are broken at random


def test_the_batch_size_does_not_change_the_result():
    assert retrieve(oracle, batch_size=7) == retrieve(oracle, batch_size=1000)


def test_candidates_are_the_true_caption_and_distinct_others():
    candidates = candidate_captions(CAPTIONS[:20], CAPTIONS, K, seed=0)
    for caption, row in zip(CAPTIONS, candidates):
        assert row[0] == caption and len(set(row)) == K


def test_too_few_captions_is_unavailable_not_a_number():
    with pytest.raises(MetricUnavailable, match="at least 2 distinct captions"):
        caption_retrieval(oracle, VIDEOS[:3], ["a 1"] * 3, ["a 1"], K, [500], 0, 8, 10)
    small = caption_retrieval(oracle, VIDEOS[:3], ["a 1", "a 2", "a 3"], ["a 1", "a 2", "a 3"],
                              K, [500], 0, 8, 10)
    assert small["caption_retrieval_chance"] == pytest.approx(1 / 3)
    assert small["retrieval"]["num_candidates"] == 3
