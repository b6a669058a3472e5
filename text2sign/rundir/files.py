"""File writing that never leaves a half-written file behind."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

# Called with a file's name once it is complete beside its destination, before the rename
# (faults.py's test hook kills the process there).
BEFORE_RENAME: list[Callable[[str], None]] = []


@contextmanager
def atomic_file(path: str | Path, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside `path`; on success it is renamed over `path`, on any
    error it is removed, so readers never see a partly written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; results are meant to be shared
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        for hook in BEFORE_RENAME:
            hook(path.name)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def unwritable(path: str | Path, create_only: bool = False) -> str | None:
    """Why a folder cannot be made and written at `path`, or None when it can. `create_only`:
    an existing folder passes even if it is read-only."""
    path = Path(path).expanduser().absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        return f"{existing} is a file"
    if create_only and existing == path:
        return None
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None


def atomic_write_text(path: str | Path, text: str) -> None:
    with atomic_file(path) as f:
        f.write(text)


def atomic_write_json(path: str | Path, data: Any) -> None:
    """Strict JSON: a NaN or infinite number, which strict readers refuse, is written as null
    (results.json records what it was: text2sign/rundir/record.py)."""
    atomic_write_text(path, json.dumps(strict(data), indent=2, default=str, allow_nan=False)
                      + "\n")


def strict(data: Any) -> Any:
    """`data` with every NaN or infinite float, at any depth, replaced by None."""
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, dict):
        return {key: strict(value) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [strict(value) for value in data]
    return data


class CsvLog:
    """An append-only CSV file with a fixed header, flushed after every row.

    Opening an existing file keeps the rows for which `keep(row)` is true, so a resumed run
    drops the rows it is about to redo instead of duplicating them.
    """

    def __init__(self, path: str | Path, columns: Sequence[str], keep=lambda row: True):
        self.path, self.columns = Path(path), list(columns)
        kept = [row for row in self.read() if keep(row)] if self.path.exists() else []
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, self.columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(kept)
        atomic_write_text(self.path, buffer.getvalue())
        self._file = open(self.path, "a", newline="")
        self._writer = csv.DictWriter(self._file, self.columns)

    def read(self) -> list[dict[str, str]]:
        with open(self.path, newline="") as f:
            return list(csv.DictReader(f))

    def write_rows(self, rows: Iterable[dict[str, Any]]) -> None:
        for row in rows:
            self._writer.writerow({k: "" if row.get(k) is None else row[k] for k in self.columns})
        self._file.flush()

    def close(self) -> None:
        self._file.close()
