"""Frame geometry and timing: aspect-kept resize, frame-rate resampling, windows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from text2sign.data.clip_dataset import CachedClip, ClipDataset
from text2sign.data.clips import Clip
from text2sign.data.frame_fit import fit_frame, resample_times


def test_crop_keeps_the_centre_and_pad_keeps_everything():
    frame = np.zeros((20, 40, 3), np.uint8)
    frame[:, :6] = 255  # a white band on the far left
    cropped = fit_frame(frame, 10, "crop")
    padded = fit_frame(frame, 10, "pad")
    assert cropped.shape == padded.shape == (10, 10, 3)
    assert cropped.max() == 0  # the band is outside the centre square
    assert padded[:2].max() == padded[7:].max() == 0 and padded[2:7, 0].min() == 255  # bars


def test_frame_rate_is_normalised():
    times = np.arange(30) / 30  # one second at 30 fps
    assert len(resample_times(times, 10)) == 10
    assert resample_times(times, 10)[:3].tolist() == [0, 3, 6]
    assert len(resample_times(times, 60)) == 60
    assert resample_times(times, None).tolist() == list(range(30))


def dataset(tmp_path, length: int, train: bool) -> ClipDataset:
    video = np.zeros((length, 4, 4, 3), np.uint8)
    video[..., 0] = np.arange(length)[:, None, None]
    np.save(tmp_path / "c.npy", video)
    item = CachedClip(Clip("c", Path("c"), "hi", "s"), tmp_path / "c.npy", length)
    return ClipDataset([item], num_frames=4, train=train)


def test_random_window_in_training_uniform_frames_in_evaluation(tmp_path):
    train = dataset(tmp_path, 20, True)
    starts = {int(train[(0, epoch)]["video"][0, 0, 0, 0]) for epoch in range(30)}
    assert len(starts) > 5 and max(starts) <= 16
    # the window depends on (clip, epoch) only, so a resumed run reads the same frames
    assert torch.equal(train[(0, 3)]["video"], dataset(tmp_path, 20, True)[(0, 3)]["video"])
    window = dataset(tmp_path, 20, True)[0]["video"][0, :, 0, 0].tolist()
    assert window == list(range(window[0], window[0] + 4))
    assert dataset(tmp_path, 19, False)[0]["video"][0, :, 0, 0].tolist() == [0, 6, 12, 18]
    assert dataset(tmp_path, 2, False)[0]["video"][0, :, 0, 0].tolist() == [0, 1, 1, 1]
