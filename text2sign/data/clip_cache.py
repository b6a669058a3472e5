"""The decode-once cache: each clip decoded and resized once into a memory-mapped .npy file.

An entry is keyed by the file (path, size, modification time; for a frame folder, every
frame's) and by every setting that changes the decoded frames, so a changed file or setting
is a new key and a stale entry is never read. Entries are written to a temporary file and
renamed into place, so jobs of a sweep that start together may decode the same clip twice
but never read a half-written one; no locks are needed. A clip that cannot be decoded is
cached as a `.err` file holding the reason, so later runs report it without retrying.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Optional

import av
import numpy as np

from text2sign.data.clips import Clip, DataError
from text2sign.data.frame_fit import fit_frame, resample_times
from text2sign.data.video_io import EmptyWindow, read_clip
from text2sign.rundir.files import atomic_file

CACHE_VERSION = 1  # bump when the decoding itself changes (the PyAV version is in the key too)


@dataclass(frozen=True)
class DecodeSettings:
    image_size: int
    fit: str
    fps: Optional[float]  # None: keep the decoded frame rate
    frames_fps: float  # the frame rate of a folder of frames


class ClipCache:
    def __init__(self, root: str | Path, settings: DecodeSettings):
        self.root, self.settings = Path(root).expanduser(), settings
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise self._unwritable(err) from err

    def key(self, clip: Clip) -> str:
        fingerprint = {"version": CACHE_VERSION, "av": av.__version__,
                       "settings": asdict(self.settings), "file": _file_fingerprint(clip.path),
                       "start": clip.start, "end": clip.end}
        return hashlib.sha1(json.dumps(fingerprint, default=str).encode()).hexdigest()

    def load(self, clip: Clip) -> Path:
        """The .npy entry of `clip` (T, S, S, 3) uint8, decoded now on a miss.

        Raises ValueError with the reason when the clip cannot be decoded.
        """
        key = self.key(clip)
        entry, error = self.root / f"{key}.npy", self.root / f"{key}.err"
        if entry.exists():
            return entry
        if error.exists():
            raise ValueError(error.read_text())
        try:
            frames = self._decode(clip)
        except EmptyWindow as err:  # the video is fine, the clip's start/end are not
            reason = str(err)
        except Exception as err:  # any decoder failure is a property of the file
            reason = f"unreadable video: {type(err).__name__}: {str(err).strip()[:200]}"
        else:
            self._write(entry, lambda f: np.save(f, frames), "wb")
            return entry
        self._write(error, lambda f: f.write(reason))
        raise ValueError(reason)

    def _write(self, path: Path, write, mode: str = "w") -> None:
        """An atomic write into the cache; a cache that cannot be written is a DataError."""
        try:
            with atomic_file(path, mode) as f:
                write(f)
        except OSError as err:
            raise self._unwritable(err) from err

    def _unwritable(self, err: OSError) -> DataError:
        return DataError(f"data.cache_dir={self.root} cannot be written ({err.strerror or err}): "
                         "set data.cache_dir to a writable folder with free space")

    def _decode(self, clip: Clip) -> np.ndarray:
        s = self.settings
        frames, times = read_clip(clip.path, clip.start, clip.end, s.frames_fps)
        return np.stack([fit_frame(frames[i], s.image_size, s.fit)
                         for i in resample_times(times, s.fps)])


def _file_fingerprint(path: Path) -> list:
    stat = path.stat()
    if not path.is_dir():
        return [str(path.resolve()), stat.st_size, stat.st_mtime_ns]
    files = sorted(path.iterdir())
    return [str(path.resolve())] + [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files]
