"""Writing sample clips: GIF, MP4 and the captioned grid."""

from __future__ import annotations

import av
import numpy as np
import torch

from text2sign.data.synthetic import SyntheticSignDataset
from text2sign.data.video_io import caption_grid, read_clip, to_frames, write_gif, write_mp4


def clip() -> torch.Tensor:
    return SyntheticSignDataset("val", num_clips=1, num_frames=6, image_size=16)[0]["video"]


def test_frames_are_enlarged_by_an_integer_factor_to_an_even_size():
    frames = to_frames(torch.zeros(3, 2, 15, 15, dtype=torch.uint8), min_size=64)
    assert frames[0].shape == (90, 90, 3)  # factor 6: >= 64 px and even
    video = clip()
    enlarged = to_frames(video)[0]
    assert np.array_equal(enlarged[::8, ::8], video[:, 0].permute(1, 2, 0).numpy())


def test_gif_keeps_every_frame(tmp_path):
    video = clip()
    write_gif(tmp_path / "a.gif", video)
    frames, _ = read_clip(tmp_path / "a.gif")
    assert frames.shape == (6, 128, 128, 3)
    original = np.stack(to_frames(video))
    # GIF quantises to 256 colours: close, not identical
    assert np.abs(frames.astype(int) - original.astype(int)).mean() < 4


def test_mp4_is_h264_with_every_frame(tmp_path):
    write_mp4(tmp_path / "a.mp4", clip())
    with av.open(str(tmp_path / "a.mp4")) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        assert stream.codec_context.name == "h264"
    assert len(frames) == 6 and frames[0].shape == (128, 128, 3)


def test_grid_has_a_row_per_clip():
    videos = torch.stack([clip(), clip()])
    grid = caption_grid(videos, ["hello", "thank you"], min_size=64)
    assert grid.size == (6 * 64, 2 * (64 + 14 + 2))
