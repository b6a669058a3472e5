"""Video I/O: decoding clips (PyAV for video files and GIFs, Pillow for frame folders), and
writing generated clips as GIF, MP4 (H.264) and captioned PNG grids.

Generated clips are uint8 tensors (C, T, H, W). For viewing they are enlarged with
nearest-neighbour sampling, to the even frame sizes that H.264 requires.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import torch
from PIL import Image, ImageDraw

from text2sign.data.fonts import caption_font

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


def caption_grid(clips: torch.Tensor, captions: list[str], min_size: int = 64) -> Image.Image:
    """A PNG-ready grid: one row per clip (frames across), its caption above the row (in a
    font that has its characters: text2sign/data/fonts.py)."""
    rows = [np.concatenate(to_frames(clip, min_size), axis=1) for clip in clips]
    label_h, gap = 14, 2
    width = max(r.shape[1] for r in rows)
    height = sum(r.shape[0] + label_h + gap for r in rows)
    grid = Image.new("RGB", (width, height), "white")
    draw = ImageDraw.Draw(grid)
    y = 0
    for row, caption in zip(rows, captions):
        draw.text((2, y + 1), caption, fill="black", font=caption_font(caption))
        grid.paste(Image.fromarray(row), (0, y + label_h))
        y += row.shape[0] + label_h + gap
    return grid


FRAME_SUFFIXES = (".png", ".jpg", ".jpeg")


class EmptyWindow(ValueError):
    """A readable video without a frame in the requested [start, end): the window is wrong."""


def read_clip(path: str | Path, start: float | None = None, end: float | None = None,
              frames_fps: float = 25.0) -> tuple[np.ndarray, np.ndarray]:
    """Decode a video file (PyAV: mp4, webm, gif, ...) or a folder of frames (Pillow).

    Returns frames (T, H, W, 3) uint8 and their times in seconds; `start`/`end` (seconds)
    keep only the frames in [start, end). A folder's frames are sorted by name and shown
    at `frames_fps`. Raises on an unreadable file; an empty result is a ValueError.
    """
    path = Path(path)
    frames, times = _read_folder(path, frames_fps) if path.is_dir() else _read_video(path)
    keep = np.ones(len(times), bool)
    if start is not None:
        keep &= times >= start - 1e-6
    if end is not None:
        keep &= times < end - 1e-6
    if not len(times):
        raise ValueError("no frames decoded")
    if not keep.any():
        length = times[-1] + (times[1] - times[0] if len(times) > 1 else 0)
        window = f"[{start or 0:g}, {'its end' if end is None else format(end, 'g')})"
        raise EmptyWindow(f"no frame in the window {window} s: the video has {len(times)} "
                          f"frames, {length:.2f} s")
    return np.stack([f for f, k in zip(frames, keep) if k]), times[keep]


def _read_video(path: Path) -> tuple[list[np.ndarray], np.ndarray]:
    frames, times = [], []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = float(stream.average_rate or 25)
        for frame in container.decode(stream):
            times.append(frame.time if frame.time is not None else len(frames) / rate)
            frames.append(frame.to_ndarray(format="rgb24"))
        if stream.frames and len(frames) < stream.frames:  # the decoder stopped early
            raise ValueError(f"truncated: decoded {len(frames)} of {stream.frames} frames")
    if path.suffix.lower() == ".gif" and not _ends_with(path, b"\x3b"):
        raise ValueError(f"truncated GIF: {len(frames)} frames decoded, then the file ends")
    return frames, np.asarray(times, float)


def _ends_with(path: Path, tail: bytes) -> bool:
    with open(path, "rb") as f:
        f.seek(-len(tail), 2)
        return f.read() == tail


def _read_folder(path: Path, fps: float) -> tuple[list[np.ndarray], np.ndarray]:
    files = sorted(p for p in path.iterdir() if p.suffix.lower() in FRAME_SUFFIXES)
    frames = []
    for file in files:
        with Image.open(file) as image:
            frames.append(np.asarray(image.convert("RGB")))
    return frames, np.arange(len(frames)) / fps
