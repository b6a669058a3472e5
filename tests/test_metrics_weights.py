"""Weight files: configured path, cache, and checksum-verified download (over file:// URLs)."""

from __future__ import annotations

import hashlib

import pytest

from text2sign.metrics import MetricUnavailable
from text2sign.metrics.weights import WeightFile, resolve_weights


@pytest.fixture
def source(tmp_path):
    path = tmp_path / "published.bin"
    path.write_bytes(b"weights" * 100)
    return path


def spec(source, sha256):
    return WeightFile("test weights", "weights.bin", source.as_uri(), sha256, "eval.test.path")


def test_verified_download_lands_in_the_cache(tmp_path, source):
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    path = resolve_weights(spec(source, digest[:8]), cache_dir=tmp_path / "cache", download=True)
    assert path == tmp_path / "cache" / "weights.bin" and path.read_bytes() == source.read_bytes()


def test_checksum_mismatch_keeps_nothing(tmp_path, source):
    with pytest.raises(MetricUnavailable, match="invalid hash value.*eval.test.path"):
        resolve_weights(spec(source, "0" * 64), cache_dir=tmp_path / "cache", download=True)
    assert list((tmp_path / "cache").iterdir()) == []


def test_no_checksum_no_download(tmp_path, source):
    with pytest.raises(MetricUnavailable, match="no published checksum"):
        resolve_weights(spec(source, None), cache_dir=tmp_path / "cache", download=True)
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    path = resolve_weights(spec(source, None), cache_dir=tmp_path / "cache", sha256=digest,
                           download=True)
    assert path.is_file()


def test_a_configured_path_wins(tmp_path, source):
    assert resolve_weights(spec(source, None), path=source, cache_dir=tmp_path) == source
