"""One process at a time holds a run directory: an exclusive flock on `<run_dir>/.lock`.

Standard library only, so that AblationRunner (text2sign/recorder.py) takes the same lock as
train.py without importing Lightning.
"""

from __future__ import annotations

import fcntl
import logging
import os
import platform
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from text2sign.run.record import now_iso

log = logging.getLogger(__name__)

LOCK = ".lock"


class RunDirectoryInUse(RuntimeError):
    """Another live process holds the run directory."""


@contextmanager
def hold_run_directory(run_dir: str | Path) -> Iterator[None]:
    """Hold `run_dir` for this process while the block runs; a second process stops at once.

    An exclusive flock on `<run_dir>/.lock`: the operating system releases it when the process
    ends, however it ends, so the lock of a dead process is free to take over. The file names
    the holder (pid and host) for the message the second process gives.
    """
    path = Path(run_dir) / LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise in_use(run_dir, _holder(fd) or "another process") from None
        if _holder(fd):
            log.warning("taking over run directory %s from %s, which ended without releasing it",
                        run_dir, _holder(fd))
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()} on host {platform.node()} since {now_iso()}\n"
                  .encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # released cleanly: nothing to take over
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def in_use(run_dir: str | Path, holder: str) -> RunDirectoryInUse:
    return RunDirectoryInUse(
        f"run directory {run_dir} is in use by {holder}: two processes must not train one run. "
        "Wait for it to end, or stop it; its run is then resumed here")


def held_by(run_dir: str | Path) -> str | None:
    """Who holds `run_dir` now ("process PID on host HOST since ..."), or None."""
    try:
        fd = os.open(Path(run_dir) / LOCK, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _holder(fd) or "another process"
    finally:
        os.close(fd)  # closing releases a lock this call took
    return None


def _holder(fd: int) -> str:
    return os.pread(fd, 512, 0).decode(errors="replace").strip()
