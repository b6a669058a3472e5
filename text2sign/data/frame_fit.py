"""Frame geometry and timing: square resize with the aspect ratio kept, frame-rate resampling."""

from __future__ import annotations

from enum import Enum
from typing import Optional

import numpy as np
from PIL import Image


class Fit(str, Enum):
    crop = "crop"  # fill the square, cutting the centre out of the longer side
    pad = "pad"  # keep the whole frame, black bars on the shorter side


def fit_frame(frame: np.ndarray, size: int, fit: str) -> np.ndarray:
    """(H, W, 3) uint8 -> (size, size, 3) uint8."""
    h, w = frame.shape[:2]
    scale = size / (min(h, w) if fit == Fit.crop else max(h, w))
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    resized = np.asarray(Image.fromarray(frame).resize((new_w, new_h), Image.BILINEAR))
    if fit == Fit.crop:
        top, left = (new_h - size) // 2, (new_w - size) // 2
        return resized[top : top + size, left : left + size]
    out = np.zeros((size, size, 3), np.uint8)
    top, left = (size - new_h) // 2, (size - new_w) // 2
    out[top : top + new_h, left : left + new_w] = resized
    return out


def resample_times(times: np.ndarray, fps: Optional[float]) -> np.ndarray:
    """Indices of the frames shown at a steady `fps` (None: every frame, as decoded)."""
    if fps is None or len(times) < 2:
        return np.arange(len(times))
    step = float(np.median(np.diff(times)))
    targets = np.arange(times[0], times[-1] + step, 1.0 / fps)
    targets = targets[targets < times[-1] + step - 1e-9]
    return np.clip(np.searchsorted(times, targets + 1e-9, side="right") - 1, 0, len(times) - 1)
