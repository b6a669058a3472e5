"""Writing generated clips: GIF (Pillow), MP4 (PyAV, H.264) and captioned PNG grids.

Clips are uint8 tensors (C, T, H, W). Small clips are enlarged with nearest-neighbour
sampling so that they can be seen, and to the even frame sizes that H.264 requires.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image, ImageDraw

VIEW_SIZE = 128  # clips are enlarged to at least this many pixels for viewing


def to_frames(clip: torch.Tensor, min_size: int = VIEW_SIZE) -> list[np.ndarray]:
    """(C, T, H, W) uint8 -> T arrays (H', W', 3), enlarged by an integer factor to an even size."""
    frames = clip.permute(1, 2, 3, 0).cpu().numpy()
    factor = max(1, -(-min_size // max(frames.shape[1:3])))
    if factor % 2 and (frames.shape[1] % 2 or frames.shape[2] % 2):
        factor += 1
    return [f.repeat(factor, axis=0).repeat(factor, axis=1) for f in frames]


def write_gif(path: str | Path, clip: torch.Tensor, fps: int = 8) -> None:
    images = [Image.fromarray(f) for f in to_frames(clip)]
    images[0].save(path, save_all=True, append_images=images[1:], duration=round(1000 / fps),
                   loop=0)


def write_mp4(path: str | Path, clip: torch.Tensor, fps: int = 8) -> None:
    frames = to_frames(clip)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.height, stream.width = frames[0].shape[:2]
        stream.pix_fmt = "yuv420p"
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())  # flush the encoder


def read_gif(path: str | Path) -> np.ndarray:
    """All frames of a GIF as (T, H, W, 3) uint8."""
    with Image.open(path) as image:
        frames = []
        for index in range(image.n_frames):
            image.seek(index)
            frames.append(np.asarray(image.convert("RGB")))
    return np.stack(frames)


def caption_grid(clips: torch.Tensor, captions: list[str], min_size: int = 64) -> Image.Image:
    """A PNG-ready grid: one row per clip (frames across), its caption above the row."""
    rows = [np.concatenate(to_frames(clip, min_size), axis=1) for clip in clips]
    label_h, gap = 14, 2
    width = max(r.shape[1] for r in rows)
    height = sum(r.shape[0] + label_h + gap for r in rows)
    grid = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(grid)
    y = 0
    for row, caption in zip(rows, captions):
        draw.text((2, y + 1), caption, fill="black")
        grid.paste(Image.fromarray(row), (0, y + label_h))
        y += row.shape[0] + label_h + gap
    return grid
