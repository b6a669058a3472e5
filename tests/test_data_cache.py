"""The decode-once cache: hits, invalidation by file and setting, concurrent first use."""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from data_fixtures import write_gif

import text2sign.data.clip_cache as clip_cache
from text2sign.data.clip_cache import ClipCache, DecodeSettings
from text2sign.data.clips import Clip

SETTINGS = DecodeSettings(image_size=16, fit="crop", fps=None, frames_fps=25.0)


@pytest.fixture
def counted(monkeypatch):
    """Counts the decoder's calls."""
    calls = []
    real = clip_cache.read_clip

    def read_clip(*args, **kwargs):
        calls.append(args[0])
        return real(*args, **kwargs)

    monkeypatch.setattr(clip_cache, "read_clip", read_clip)
    return calls


def clip(path: Path) -> Clip:
    return Clip(path.stem, path, "hello", "s0")


def test_second_read_is_a_hit_from_a_memory_map(tmp_path, counted):
    video = clip(write_gif(tmp_path / "a.gif"))
    cache = ClipCache(tmp_path / "cache", SETTINGS)
    entry = cache.load(video)
    assert cache.load(video) == entry
    assert ClipCache(tmp_path / "cache", SETTINGS).load(video) == entry  # a later run
    assert len(counted) == 1
    frames = np.load(entry, mmap_mode="r")
    assert isinstance(frames, np.memmap) and frames.shape == (6, 16, 16, 3)


def test_changed_file_or_setting_is_decoded_again(tmp_path, counted):
    path = write_gif(tmp_path / "a.gif")
    cache = ClipCache(tmp_path / "cache", SETTINGS)
    first = cache.load(clip(path))
    write_gif(path, num_frames=8)
    os.utime(path, ns=(1, 1))  # a different mtime even within the clock's resolution
    second = cache.load(clip(path))
    assert second != first and np.load(second).shape[0] == 8
    bigger = ClipCache(tmp_path / "cache", DecodeSettings(32, "crop", None, 25.0)).load(clip(path))
    padded = ClipCache(tmp_path / "cache", DecodeSettings(16, "pad", None, 25.0)).load(clip(path))
    assert np.load(bigger).shape == (8, 32, 32, 3) and padded not in (first, second)
    assert len(counted) == 4


def test_an_unreadable_file_is_remembered_with_its_reason(tmp_path, counted):
    path = tmp_path / "bad.gif"
    path.write_bytes(b"junk")
    cache = ClipCache(tmp_path / "cache", SETTINGS)
    for _ in range(2):
        with pytest.raises(ValueError, match="unreadable video"):
            cache.load(clip(path))
    assert len(counted) == 1


def _load(args: tuple[str, str]) -> str:
    video, root = args
    return str(ClipCache(root, SETTINGS).load(clip(Path(video))))


def test_concurrent_first_use_gives_one_complete_entry(tmp_path):
    video = write_gif(tmp_path / "a.gif", num_frames=30, height=64, width=64)
    with ProcessPoolExecutor(4) as pool:
        entries = set(pool.map(_load, [(str(video), str(tmp_path / "cache"))] * 8))
    assert len(entries) == 1
    assert np.load(entries.pop()).shape == (30, 16, 16, 3)
    assert [p.name for p in (tmp_path / "cache").iterdir() if p.suffix != ".npy"] == []


def test_prepare_fills_the_cache_ahead_of_training(tmp_path, counted):
    from data_fixtures import write_gif_folder

    from text2sign.cli.prepare import prepare

    root = write_gif_folder(tmp_path / "gifs")
    overrides = ["data=gif_folder", f"data.root={root}", f"data.cache_dir={tmp_path / 'cache'}",
                 "data.batch_size=2"]
    report = prepare(overrides)
    assert sum(s["clips"] for s in report["splits"].values()) == 12 and len(counted) == 12
    assert prepare(overrides)["split_ids"] == report["split_ids"] and len(counted) == 12
