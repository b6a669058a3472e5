"""Small real-format clips written by the tests: GIF (Pillow), MP4 (PyAV), PNG frame folders.

Frame t of a clip is one flat colour whose red value is `10 * t`, so tests can tell which
frames an item holds; `signer` sets green, so clips differ between signers.
"""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from PIL import Image


def frames(num_frames: int, height: int = 24, width: int = 32, green: int = 0) -> np.ndarray:
    video = np.zeros((num_frames, height, width, 3), np.uint8)
    video[..., 0] = (10 * np.arange(num_frames))[:, None, None]
    video[..., 1] = green
    return video


def write_gif(path: Path, num_frames: int = 6, fps: int = 10, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    images = [Image.fromarray(f) for f in frames(num_frames, **kw)]
    images[0].save(path, save_all=True, append_images=images[1:], duration=1000 // fps, loop=0)
    return path


def write_video(path: Path, num_frames: int = 6, fps: int = 10, **kw) -> Path:
    """MP4 (H.264) or, for a .webm path, WebM (VP8)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    video = frames(num_frames, **kw)
    codec = "libvpx" if path.suffix == ".webm" else "libx264"
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.height, stream.width = video.shape[1:3]
        stream.pix_fmt = "yuv420p"
        for frame in video:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode())
    return path


def write_frame_folder(folder: Path, num_frames: int = 6, **kw) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for t, frame in enumerate(frames(num_frames, **kw)):
        Image.fromarray(frame).save(folder / f"images{t + 1:04d}.png")
    return folder


def truncate(path: Path) -> Path:
    """Cut a file to a third of its size, as an interrupted copy would."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    return path


def write_gif_folder(root: Path, signers: int = 4, clips_per_signer: int = 3, num_frames: int = 6
                     ) -> Path:
    """<signer>_<n>.gif + .txt pairs, every clip good."""
    for s in range(signers):
        for n in range(clips_per_signer):
            write_gif(root / f"s{s}_{n}.gif", num_frames, green=40 * s)
            (root / f"s{s}_{n}.txt").write_text(f"signer {s} says sentence {n}\n")
    return root


def plant_gif_faults(root: Path) -> dict[str, str]:
    """One of each fault; returns file name -> a fragment of the reason it must be listed with."""
    write_gif(root / "s0_nocaption.gif")
    write_gif(root / "s0_empty.gif")
    (root / "s0_empty.txt").write_text("  \n")
    (root / "s1_novideo.txt").write_text("a caption without its clip")
    truncate(write_gif(root / "s1_truncated.gif", num_frames=12))
    (root / "s2_garbage.gif").write_bytes(b"this is not a gif")
    (root / "s2_garbage.txt").write_text("hello")
    (root / "s1_truncated.txt").write_text("hello")
    write_gif(root / "s3_short.gif", num_frames=2)
    (root / "s3_short.txt").write_text("a short clip")
    return {"s0_nocaption.gif": "no caption", "s0_empty.gif": "empty caption",
            "s1_novideo.txt": "no video", "s1_truncated.gif": "unreadable",
            "s2_garbage.gif": "unreadable", "s3_short.gif": "too short"}
