"""Text faithfulness on the synthetic signer dataset, from the hands' trajectories.

Weight-free: the hands are found by colour (``hands.locate_hands``) and compared with the
ground truth of the caption (DTW-MJE) and with the vocabulary's movement templates (gloss
accuracy). Coordinates are [0, 1] image units throughout.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch

from text2sign.data.synthetic import GLOSSES, gloss_template
from text2sign.metrics.hands import locate_hands

TEMPLATE_FRAMES = 256  # templates are sampled this finely, then interpolated at any time


def dtw_mje(hands: np.ndarray, gt_hands: np.ndarray) -> float:
    """Mean joint error of (T, 2, 2) hands against (T', 2, 2) ground truth after time warping.

    Frames where either hand is missing (NaN) are dropped first (DTW aligns sequences of
    any length). The cost of matching two frames is the mean over both hands of the
    Euclidean distance; DTW finds the warping path with the least total cost (steps
    (1, 0), (0, 1), (1, 1)) and the result is that cost divided by the path's length: the
    error per matched frame pair, >= 0. NaN when no frame shows both hands.
    """
    pred = hands[~np.isnan(hands).any(axis=(1, 2))]
    if len(pred) == 0:
        return float("nan")
    truth = np.asarray(gt_hands, np.float64)
    cost = np.linalg.norm(pred[:, None] - truth[None], axis=-1).mean(axis=-1)  # (n, T')
    total = np.full((len(pred) + 1, cost.shape[1] + 1), np.inf)
    length = np.zeros(total.shape, dtype=int)
    total[0, 0] = 0.0
    for i in range(1, total.shape[0]):
        for j in range(1, total.shape[1]):
            prev = min(((i - 1, j - 1), (i - 1, j), (i, j - 1)), key=lambda p: total[p])
            total[i, j] = total[prev] + cost[i - 1, j - 1]
            length[i, j] = length[prev] + 1
    return float(total[-1, -1] / length[-1, -1])


def gloss_slots(num_frames: int, num_glosses: int) -> tuple[np.ndarray, np.ndarray]:
    """Slot of each frame, floor((t + 0.5) / T * n), and the time within the slot, in [0, 1)."""
    clip_time = (np.arange(num_frames) + 0.5) / num_frames * num_glosses
    slot = np.minimum(clip_time.astype(int), num_glosses - 1)
    return slot, clip_time - slot


@lru_cache(maxsize=1)
def _fine_templates() -> np.ndarray:
    return np.stack([gloss_template(g.word, TEMPLATE_FRAMES) for g in GLOSSES]).astype(np.float64)


def gloss_templates(times: np.ndarray) -> np.ndarray:
    """(G, L, 2, 2) hand positions of every gloss of the vocabulary at slot times (L,) in [0, 1],
    for the neutral signer at speed 1 (``gloss_template``, linearly interpolated)."""
    fine = _fine_templates()
    position = np.clip(np.asarray(times) * TEMPLATE_FRAMES - 0.5, 0, TEMPLATE_FRAMES - 1)
    lo = np.floor(position).astype(int)
    hi = np.minimum(lo + 1, TEMPLATE_FRAMES - 1)
    w = (position - lo)[None, :, None, None]
    return (1 - w) * fine[:, lo] + w * fine[:, hi]


def classify_glosses(hands: np.ndarray, num_glosses: int) -> np.ndarray:
    """Gloss index (into GLOSSES) recognised in each of the ``num_glosses`` slots of a clip.

    A slot's hands (T, 2, 2) are compared in absolute image coordinates with every template
    at the same slot times; the template with the least mean hand distance over the found
    hands wins. No normalisation for the signer's position: signers are offset by at most
    0.05, less than places and paths differ, and centring each slot measurably lowered the
    accuracy on ground-truth clips. -1 for a slot in which no hand was found.
    """
    slot, slot_time = gloss_slots(len(hands), num_glosses)
    labels = np.full(num_glosses, -1)
    for k in range(num_glosses):
        frames = slot == k
        distance = np.linalg.norm(hands[frames][None] - gloss_templates(slot_time[frames]), axis=-1)
        found = ~np.isnan(distance[0])
        if found.any():
            labels[k] = int(np.argmin(distance[:, found].mean(axis=1)))
    return labels


def text_faithfulness(videos: torch.Tensor, gt_hands: torch.Tensor | np.ndarray,
                      gloss_ids: torch.Tensor | np.ndarray) -> dict[str, float | None]:
    """How well generated synthetic-signer clips sign their captions.

    videos: uint8 (B, C, T, H, W) generated clips; gt_hands: (B, T', 2, 2) ground-truth
    hands of the real clip with the same caption; gloss_ids: (B, 3) the caption's glosses,
    padded with -1. Returns
      dtw_mje: mean over clips of ``dtw_mje`` (lower is better, 0 = the ground truth's path),
        over the clips where some frame shows both hands; None when none does;
      gloss_accuracy: fraction of gloss slots classified as the caption's gloss, in [0, 1]
        (a slot without hands counts as wrong; chance is 1/27);
      hands_found: fraction of frames in which both hands were found, in [0, 1].
    """
    gt_hands, gloss_ids = np.asarray(gt_hands, np.float64), np.asarray(gloss_ids)
    errors, correct, slots, found = [], 0, 0, []
    for video, truth, ids in zip(videos, gt_hands, gloss_ids, strict=True):
        hands = locate_hands(video)
        found.append(~np.isnan(hands).any(axis=(1, 2)))
        errors.append(dtw_mje(hands, truth))
        ids = ids[ids >= 0]
        correct += int((classify_glosses(hands, len(ids)) == ids).sum())
        slots += len(ids)
    if slots == 0:
        raise ValueError("gloss_ids name no gloss (all -1)")
    errors = np.array(errors)
    return {
        "dtw_mje": float(np.nanmean(errors)) if not np.isnan(errors).all() else None,
        "gloss_accuracy": correct / slots,
        "hands_found": float(np.concatenate(found).mean()),
    }
