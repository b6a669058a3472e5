"""Tests of the procedurally rendered synthetic signer dataset."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from text2sign.data.synthetic import (
    BACKGROUND_PALETTE,
    GLOSSES,
    HAND_COLOURS,
    HANDS,
    MIN_HAND_COLOUR_DISTANCE,
    SHAPES,
    SHIRT_PALETTE,
    SKIN_PALETTE,
    Signer,
    SyntheticSignDataset,
    gloss_template,
    make_signer,
    render_clip,
    split_signers,
)

WORDS = [g.word for g in GLOSSES]
SIGNERS = [make_signer(i, seed) for seed in range(3) for i in range(60)]


def _colour_distance(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    return float(np.linalg.norm(np.subtract(a, b, dtype=float)))


def _same_item(a: dict, b: dict) -> bool:
    return (a["caption"] == b["caption"] and a["signer"] == b["signer"]
            and all(torch.equal(a[k], b[k]) for k in ("video", "hands", "gloss_ids")))


# --------------------------------------------------------------------------- determinism


def test_render_is_deterministic_and_typed() -> None:
    signer = make_signer(3, seed=1)
    video, hands = render_clip(["hello", "thank you"], signer, 8, 16)
    video2, hands2 = render_clip(["hello", "thank you"], make_signer(3, seed=1), 8, 16)
    assert video.dtype == np.uint8 and video.shape == (3, 8, 16, 16)
    assert hands.dtype == np.float32 and hands.shape == (8, 2, 2)
    np.testing.assert_array_equal(video, video2)
    np.testing.assert_array_equal(hands, hands2)


def test_dataset_items_are_deterministic_and_seeded() -> None:
    first = SyntheticSignDataset(num_clips=6, seed=0)
    again = SyntheticSignDataset(num_clips=6, seed=0)
    other = SyntheticSignDataset(num_clips=6, seed=1)
    assert all(_same_item(first[i], again[i]) for i in range(6))
    assert not any(torch.equal(first[i]["video"], other[i]["video"]) for i in range(6))


def test_clip_does_not_depend_on_num_clips() -> None:
    small = SyntheticSignDataset("val", num_clips=4, seed=2)
    big = SyntheticSignDataset("val", num_clips=400, seed=2)
    assert all(_same_item(small[i], big[i]) for i in range(4))
    assert big.captions[:4] == small.captions


def test_item_layout() -> None:
    ds = SyntheticSignDataset(num_clips=3, num_frames=5, image_size=24)
    item = ds[-1]
    assert item["video"].dtype == torch.uint8 and item["video"].shape == (3, 5, 24, 24)
    assert item["hands"].dtype == torch.float32 and item["hands"].shape == (5, 2, 2)
    assert item["gloss_ids"].dtype == torch.long and item["gloss_ids"].shape == (3,)
    assert isinstance(item["caption"], str) and isinstance(item["signer"], int)
    assert _same_item(item, ds[2])
    with pytest.raises(IndexError):
        ds[3]


# --------------------------------------------------------------------------- splits and captions


def test_split_signers_partition() -> None:
    parts = split_signers(12, 2, 3)
    assert parts == {"train": list(range(7)), "val": [7, 8], "test": [9, 10, 11]}


def test_clip_signers_belong_to_their_split() -> None:
    seen = {}
    for split in ("train", "val", "test"):
        ds = SyntheticSignDataset(split, num_clips=40, num_signers=8, num_val_signers=2, num_test_signers=2)
        assert ds.signers == split_signers(8, 2, 2)[split]
        seen[split] = {ds.clip_content(i)[0] for i in range(len(ds))}
        assert seen[split] <= set(ds.signers)
    assert set(seen["train"]).isdisjoint(seen["val"] | seen["test"])
    assert seen["val"].isdisjoint(seen["test"])
    assert len(seen["train"]) > 1  # clips really draw from several signers


def test_captions_are_one_to_three_known_glosses() -> None:
    ds = SyntheticSignDataset(num_clips=60, image_size=8, num_frames=2)
    counts = set()
    for i in range(len(ds)):
        item = ds[i]
        ids = [g for g in item["gloss_ids"].tolist() if g >= 0]
        assert item["gloss_ids"].tolist() == ids + [-1] * (3 - len(ids))  # padding only at the end
        assert 1 <= len(ids) <= 3
        assert item["caption"] == " ".join(WORDS[g] for g in ids)
        assert item["caption"] == ds.captions[i]
        counts.add(len(ids))
    assert counts == {1, 2, 3}


def test_max_glosses_bounds_the_captions_and_three_changes_nothing() -> None:
    single = SyntheticSignDataset(num_clips=40, image_size=8, num_frames=2, max_glosses=1)
    assert all(len(single[i]["caption"].split()) <= 2 and single[i]["gloss_ids"][1] == -1
               for i in range(40))  # one gloss ("thank you" is one gloss of two words)
    assert len(set(single.captions)) > 15
    default = SyntheticSignDataset(num_clips=10, image_size=8, num_frames=2)
    three = SyntheticSignDataset(num_clips=10, image_size=8, num_frames=2, max_glosses=3)
    assert all(_same_item(default[i], three[i]) for i in range(10))


def test_hand_scale_grows_the_hands_and_keeps_their_path() -> None:
    def hand_pixels(video):
        red = np.array(HAND_COLOURS["right"])[:, None, None, None]
        return int((np.linalg.norm(video.astype(float) - red, axis=0) < 45).sum())
    signer = make_signer(1)
    small, path = render_clip(["hello"], signer, 4, 16)
    large, same_path = render_clip(["hello"], signer, 4, 16, hand_scale=2.0)
    assert hand_pixels(large) > 2.5 * hand_pixels(small) > 0
    assert np.array_equal(path, same_path)


# --------------------------------------------------------------------------- vocabulary


def test_vocabulary_size_and_uniqueness() -> None:
    assert len(GLOSSES) >= 20
    assert len(set(WORDS)) == len(WORDS)
    assert all(w == w.strip() and "  " not in w and w for w in WORDS)


@pytest.mark.parametrize("num_frames", [8, 16])
def test_gloss_templates_are_pairwise_distinct(num_frames: int) -> None:
    # Mean per-frame, per-hand distance. 0.03 image units is 1.9 px at 64x64:
    # above the 1.5 px colour-localisation error tolerated below, so templates
    # stay separable for a classifier that locates hands by colour.
    templates = {w: gloss_template(w, num_frames) for w in WORDS}
    for a, b in itertools.combinations(WORDS, 2):
        distance = np.linalg.norm(templates[a] - templates[b], axis=-1).mean()
        assert distance > 0.03, (a, b, distance)


def test_gloss_template_shape_and_idle_hand() -> None:
    template = gloss_template("hello", 12)  # a right-hand-only gloss
    assert template.shape == (12, 2, 2) and template.dtype == np.float32
    assert ((template >= 0) & (template <= 1)).all()
    np.testing.assert_allclose(template[:, 1], template[:1, 1].repeat(12, 0))  # left hand rests
    assert np.ptp(template[:, 0], axis=0).max() > 0.1  # right hand moves
    # The template is a neutral signer's one-gloss clip.
    neutral = Signer(0, 0.0, 0.0, 1.0, 1.0, (200, 150, 100), (60, 60, 60), (230, 230, 230))
    np.testing.assert_allclose(template, render_clip(["hello"], neutral, 12, 16)[1], atol=1e-6)


# --------------------------------------------------------------------------- rendering


def _hand_pixel_centroid(frame: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray | None:
    """(x, y) centroid in [0, 1] of the pixels of frame (3, H, W) near colour."""
    close = np.linalg.norm(frame.astype(float) - np.array(colour)[:, None, None], axis=0) < 40
    if not close.any():
        return None
    ys, xs = np.nonzero(close)
    return (np.array([xs.mean(), ys.mean()]) + 0.5) / frame.shape[-1]


@pytest.mark.parametrize("size", [32, 64])
def test_hand_pixels_match_ground_truth(size: int) -> None:
    reach = max(max(r) for r in SHAPES.values()) * max(s.scale for s in SIGNERS)
    checked = 0
    for k, words in enumerate([["hello", "more"], ["where", "friend", "sad"], ["come", "please"], ["family"]]):
        video, hands = render_clip(words, make_signer(k), 16, size)
        for t in range(16):
            if np.linalg.norm(hands[t, 0] - hands[t, 1]) < 2 * reach:
                continue  # blobs may overlap
            for h, name in enumerate(HANDS):
                centroid = _hand_pixel_centroid(video[:, t], HAND_COLOURS[name])
                assert centroid is not None, (words, t, name)
                error_px = np.linalg.norm(centroid - hands[t, h]) * size
                assert error_px < 1.0, (words, t, name, error_px)
                checked += 1
    assert checked > 60


def test_hands_stay_inside_the_image() -> None:
    reach = max(max(r) for r in SHAPES.values()) * max(s.scale for s in SIGNERS)
    for signer in SIGNERS[::7]:
        _, hands = render_clip(WORDS, signer, 8 * len(WORDS), 16)
        assert hands.min() > reach and hands.max() < 1 - reach, signer


def test_hand_colours_are_far_from_every_signer_colour() -> None:
    assert _colour_distance(HAND_COLOURS["right"], HAND_COLOURS["left"]) > 2 * MIN_HAND_COLOUR_DISTANCE
    body_colours = set(SKIN_PALETTE + SHIRT_PALETTE + BACKGROUND_PALETTE)
    body_colours |= {c for s in SIGNERS for c in (s.skin, s.shirt, s.background)}
    for hand in HAND_COLOURS.values():
        for colour in body_colours:
            assert _colour_distance(hand, colour) >= MIN_HAND_COLOUR_DISTANCE, (hand, colour)


def test_rendered_body_contains_no_hand_colour() -> None:
    # Apart from the hands, no pixel (anti-aliased edges included) looks like a hand.
    for signer in SIGNERS[:20]:
        video, _ = render_clip(["love"], signer, 1, 64)  # hands rest low on the chest
        frame = video[:, 0].astype(float)
        for name, colour in HAND_COLOURS.items():
            close = np.linalg.norm(frame - np.array(colour)[:, None, None], axis=0) < 40
            ys, xs = np.nonzero(close)
            assert close.any()
            assert np.hypot(xs - xs.mean(), ys - ys.mean()).max() < 8, (signer, name)


def test_signers_differ() -> None:
    a, b = make_signer(0), make_signer(1)
    assert a != b
    video_a, hands_a = render_clip(["please", "go"], a, 16, 32)
    video_b, hands_b = render_clip(["please", "go"], b, 16, 32)
    assert not np.array_equal(video_a, video_b)
    assert np.abs(hands_a - hands_b).max() > 0.01
    assert len({(s.offset_x, s.scale, s.speed) for s in SIGNERS}) == len(SIGNERS)
    assert len({(s.skin, s.shirt, s.background) for s in SIGNERS}) > 20


def test_speed_changes_timing_only() -> None:
    slow = Signer(0, 0.0, 0.0, 1.0, 0.75, (200, 150, 100), (60, 60, 60), (230, 230, 230))
    fast = Signer(0, 0.0, 0.0, 1.0, 1.25, (200, 150, 100), (60, 60, 60), (230, 230, 230))
    _, hands_slow = render_clip(["drink"], slow, 32, 16)
    _, hands_fast = render_clip(["drink"], fast, 32, 16)
    assert np.abs(hands_slow - hands_fast).max() > 0.02
    # Both reach the same end of the movement before returning to rest.
    np.testing.assert_allclose(hands_slow.min(axis=0), hands_fast.min(axis=0), atol=1e-3)
    np.testing.assert_allclose(hands_slow[[0, -1]], hands_fast[[0, -1]], atol=1e-6)


# --------------------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: render_clip(["hello", "flibbertigibbet"], make_signer(0), 8, 16), "flibbertigibbet"),
        (lambda: render_clip([], make_signer(0), 8, 16), "words"),
        (lambda: render_clip("hello", make_signer(0), 8, 16), "words"),
        (lambda: render_clip(["hello"], make_signer(0), 0, 16), "num_frames"),
        (lambda: render_clip(["hello"], make_signer(0), 8, 7), "image_size"),
        (lambda: gloss_template("nope", 8), "nope"),
        (lambda: gloss_template("hello", 0), "num_frames"),
        (lambda: make_signer(-1), "signer_id"),
        (lambda: make_signer(0, seed=-2), "seed"),
        (lambda: split_signers(4, 2, 2), "num_signers"),
        (lambda: split_signers(4, 0, 1), "num_val_signers"),
        (lambda: split_signers(4, 1, 0), "num_test_signers"),
        (lambda: SyntheticSignDataset("training"), "split"),
        (lambda: SyntheticSignDataset(num_clips=0), "num_clips"),
        (lambda: SyntheticSignDataset(num_frames=0), "num_frames"),
        (lambda: SyntheticSignDataset(image_size=4), "image_size"),
        (lambda: SyntheticSignDataset(num_signers=3), "num_signers"),
        (lambda: SyntheticSignDataset(max_glosses=4), "data.max_glosses"),
        (lambda: SyntheticSignDataset(max_glosses=0), "data.max_glosses"),
        (lambda: SyntheticSignDataset(hand_scale=5.0), "data.hand_scale"),
    ],
)
def test_bad_arguments_raise(call, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call()
