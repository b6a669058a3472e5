"""Find the synthetic signer's hands in a video by their fixed colours.

The synthetic dataset draws the hands as blobs in colours (``HAND_COLOURS``) that no body or
background colour comes within ``MIN_HAND_COLOUR_DISTANCE`` of, so a generated clip's hands
can be found again by colour alone, with no learned detector.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from text2sign.data.synthetic import HAND_COLOURS, HANDS

# A pixel belongs to a hand to the degree w = 1 - d / COLOUR_RADIUS, d its RGB distance to
# the hand colour. At d < 45 a pixel is nearer the hand colour than any body or background
# colour can be (they keep >= 100 away), so the body never counts.
COLOUR_RADIUS = 45.0
# A blob's size is its soft pixel count, the sum of w over a 4-connected blob of member
# pixels; a hand is the largest blob of size >= max(MIN_PIXELS, MIN_AREA * H * W). Noise has
# near-colour pixels in almost every frame, but rarely two touching ones; a single pixel
# passes only in the exact hand colour (the opaque core of a 16 px hand is often 1 pixel).
# Measured per hand and frame: noise 1.1% (uniform) / 0.4% (clipped Gaussian) at 16 px,
# 0% at 32 and 64 px; both hands found in 99.1-99.6% of ground-truth frames.
MIN_PIXELS = 1.0
MIN_AREA = 0.002


def min_blob_size(height: int, width: int) -> float:
    """The smallest soft pixel count accepted as a hand in an image of this size."""
    return max(MIN_PIXELS, MIN_AREA * height * width)


def locate_hands(video: torch.Tensor | np.ndarray) -> np.ndarray:
    """Hand centres of one clip, uint8 (C, T, H, W) RGB.

    Returns float64 (T, 2, 2): per frame and hand (in ``HANDS`` order: right, left) the
    membership-weighted centre (x, y) of the largest blob near that hand's colour, in [0, 1]
    image coordinates (pixel j has its centre at (j + 0.5) / size); NaN where no blob
    reaches ``min_blob_size``.
    """
    frames = torch.as_tensor(video).permute(1, 2, 3, 0).numpy().astype(np.float32)  # T,H,W,C
    num_frames, height, width, _ = frames.shape
    centres = np.full((num_frames, len(HANDS), 2), np.nan)
    grid_y, grid_x = np.mgrid[:height, :width]
    for h, hand in enumerate(HANDS):
        distance = np.linalg.norm(frames - np.array(HAND_COLOURS[hand], np.float32), axis=-1)
        membership = np.clip(1.0 - distance / COLOUR_RADIUS, 0.0, None)
        for t in range(num_frames):
            blob = _largest_blob(membership[t], min_blob_size(height, width))
            if blob is not None:
                w = membership[t] * blob
                centres[t, h] = ((w * (grid_x + 0.5)).sum() / w.sum() / width,
                                 (w * (grid_y + 0.5)).sum() / w.sum() / height)
    return centres


def _largest_blob(membership: np.ndarray, min_size: float) -> np.ndarray | None:
    """Mask of the 4-connected blob of member pixels with the largest soft size, if big enough."""
    labels, count = ndimage.label(membership > 0)
    if count == 0:
        return None
    sizes = ndimage.sum_labels(membership, labels, np.arange(1, count + 1))
    best = int(np.argmax(sizes))
    return labels == best + 1 if sizes[best] >= min_size else None
