"""Locate metric weights: a configured path, the cache directory, or a verified download."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from text2sign.metrics.errors import MetricUnavailable

DEFAULT_CACHE_DIR = "~/.cache/text2sign"


@dataclass(frozen=True)
class WeightFile:
    """A weight file a metric needs and where it officially comes from.

    sha256 is the expected digest or a prefix of it (torchvision names its files by the
    first 8 hex digits); None where no checksum is published, in which case only a
    user-supplied checksum allows a download.
    """

    description: str
    filename: str
    url: str
    sha256: str | None
    config_key: str  # the key that sets a local path, named in every error message


def cache_path(cache_dir: str | Path | None, filename: str) -> Path:
    return Path(cache_dir or DEFAULT_CACHE_DIR).expanduser() / filename


def resolve_weights(spec: WeightFile, path: str | Path | None = None,
                    cache_dir: str | Path | None = None,
                    download: bool = False, sha256: str | None = None) -> Path:
    """The local file for ``spec``: ``path`` if given, else the cached copy, else (only with
    ``download``: eval.download=true) a download.

    A download goes to the cache directory and is kept only if its sha256 matches
    (``sha256`` overrides ``spec.sha256``). Raises MetricUnavailable, naming
    ``spec.config_key``, when none of these yields the file.
    """
    if path is not None:
        if Path(path).expanduser().is_file():
            return Path(path).expanduser()
        raise MetricUnavailable(f"{spec.config_key}={path} does not exist; point it at "
                                f"{spec.description} ({spec.filename}, from {spec.url})")
    cached = cache_path(cache_dir, spec.filename)
    if cached.is_file():
        return cached
    how = f"download {spec.url} and set {spec.config_key} to the file, or save it as {cached}"
    expected = sha256 or spec.sha256
    if expected is None:
        raise MetricUnavailable(f"{spec.description} not found, and no published checksum to "
                                f"verify a download: {how} (or supply its sha256 to allow one)")
    if not download:
        raise MetricUnavailable(f"{spec.description} not found and downloads are off "
                                f"(eval.download=false): {how}, or set eval.download=true to "
                                "fetch it and check its sha256")
    cached.parent.mkdir(parents=True, exist_ok=True)
    try:  # torch.hub writes a temporary file beside `cached` and moves it there once verified
        torch.hub.download_url_to_file(spec.url, str(cached), hash_prefix=expected.lower())
    except (OSError, RuntimeError) as error:  # URLError is an OSError; a wrong sha256 a RuntimeError
        raise MetricUnavailable(f"{spec.description} not found and the download failed ({error}): "
                                f"{how}") from error
    return cached
