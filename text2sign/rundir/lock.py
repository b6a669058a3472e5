"""One process at a time holds a run directory: `<run_dir>/.lock`.

On one host an exclusive flock decides: the operating system releases it when its process
ends, however it ends. On a cluster the run directories live on a shared filesystem and the
jobs of a sweep run on several hosts, where a flock may not reach (that depends on the
filesystem). So the lock file also names its holder (process, host, scheduler job), and its
modification time is a heartbeat, renewed every tenth of the stale time while the run lives.
A lock that names another host is taken over only once its heartbeat has been stale for
`TEXT2SIGN_LOCK_STALE_S` seconds (300 by default; the hosts' clocks must agree to well within
that, as NTP keeps them), or at once by the same SLURM job requeued (SLURM starts it again only
after its earlier run has ended).

Standard library only, so that AblationRunner (text2sign/recorder.py) takes the same lock as
train.py without importing Lightning.
"""

from __future__ import annotations

import fcntl
import json
import logging
import math
import os
import platform
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from text2sign.rundir.scheduler import scheduler

log = logging.getLogger(__name__)

LOCK = ".lock"
STALE_ENV = "TEXT2SIGN_LOCK_STALE_S"
DEFAULT_STALE_S = 300.0


class RunDirectoryInUse(RuntimeError):
    """Another live process holds the run directory."""


def stale_after_s() -> float:
    """How long another host's heartbeat must have stopped before its lock is taken over."""
    raw = os.environ.get(STALE_ENV)
    if raw is None:
        return DEFAULT_STALE_S
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise ValueError(f"{STALE_ENV}={raw!r} must be a number of seconds above 0, e.g. "
                         f"{STALE_ENV}={DEFAULT_STALE_S:g}")
    return value


@contextmanager
def hold_run_directory(run_dir: str | Path) -> Iterator[None]:
    """Hold `run_dir` for this process while the block runs, with a heartbeat; a second
    process stops at once with RunDirectoryInUse, naming the holder."""
    stale_s = stale_after_s()
    path = Path(run_dir) / LOCK
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise in_use(run_dir, _live_holder(fd, stale_s) or "another process") from None
        _take(fd, run_dir, stale_s)
        try:
            with _heartbeat(fd, stale_s / 10):
                yield
        finally:
            os.ftruncate(fd, 0)  # released cleanly: nothing to take over
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def held_by(run_dir: str | Path) -> str | None:
    """Who holds `run_dir` now ("process PID on host HOST since ..."), or None."""
    try:
        fd = os.open(Path(run_dir) / LOCK, os.O_RDONLY)
    except (FileNotFoundError, NotADirectoryError):  # no lock, or no directory to hold one
        return None
    stale_s = stale_after_s()
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _live_holder(fd, stale_s) or "another process"
        holder = _holder(fd)  # flock free: only another host's live heartbeat holds it
        if holder and _why_free(holder, _heartbeat_age(fd), stale_s) is None:
            return _live_holder(fd, stale_s)
        return None
    finally:
        os.close(fd)  # closing releases a lock this call took


def _take(fd: int, run_dir: str | Path, stale_s: float) -> None:
    """Write this process into the lock this process flocked, unless the holder it names may
    still be alive on another host (RunDirectoryInUse)."""
    holder = _holder(fd)
    if holder:
        why = _why_free(holder, _heartbeat_age(fd), stale_s)
        if why is None:
            raise in_use(run_dir, _live_holder(fd, stale_s))
        log.warning("taking over run directory %s from %s: %s", run_dir, _describe(holder), why)
    me = {"pid": os.getpid(), "host": platform.node(), "since": _iso(time.time()),
          "scheduler": scheduler()}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)


def _why_free(holder: dict[str, Any], age_s: float, stale_s: float) -> str | None:
    """Why the holder a free flock's file names has let go, or None if it may live on."""
    if holder.get("host") == platform.node():
        return "it ended without releasing it"  # on this host the flock would still be held
    mine, theirs = scheduler(), holder.get("scheduler") or {}
    if (mine and mine["name"] == "slurm" and theirs.get("name") == "slurm"
            and theirs.get("job_id") == mine["job_id"]
            and (theirs.get("restarts") or 0) < mine["restarts"]):
        return f"SLURM requeued job {mine['job_id']}, and its earlier run has ended"
    if age_s >= stale_s:
        return f"its heartbeat stopped {age_s:.0f} s ago ({STALE_ENV}={stale_s:g})"
    return None


def in_use(run_dir: str | Path, holder: str) -> RunDirectoryInUse:
    return RunDirectoryInUse(
        f"run directory {run_dir} is in use by {holder}: two processes must not train one run. "
        "Wait for it to end, or stop it; its run is then resumed here")


def _live_holder(fd: int, stale_s: float) -> str:
    """The holder named in the file, with its heartbeat when it is on another host."""
    holder = _holder(fd)
    if not holder or holder.get("host") == platform.node():
        return _describe(holder)
    return (f"{_describe(holder)} (heartbeat {_heartbeat_age(fd):.0f} s ago; another host takes "
            f"it over once the heartbeat has stopped for {STALE_ENV}={stale_s:g} s)")


@contextmanager
def _heartbeat(fd: int, every_s: float) -> Iterator[None]:
    """Touch the lock file every `every_s` seconds while the block runs."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(every_s):
            try:
                os.utime(fd)
            except OSError as err:  # e.g. the shared filesystem away for a moment: beat on
                log.warning("cannot renew the run lock's heartbeat: %s", err)

    thread = threading.Thread(target=beat, name="run-lock-heartbeat", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def _heartbeat_age(fd: int) -> float:
    return max(0.0, time.time() - os.fstat(fd).st_mtime)


def _holder(fd: int) -> dict[str, Any]:
    """What the lock file says of its holder; {} when free. A file of an older version (one
    line of text) names no host, so it counts as another host's."""
    text = os.pread(fd, 4096, 0).decode(errors="replace").strip()
    if not text:
        return {}
    try:
        holder = json.loads(text)
    except ValueError:
        return {"text": text}
    return holder if isinstance(holder, dict) else {"text": text}


def _describe(holder: dict[str, Any]) -> str:
    if "pid" not in holder:
        return holder.get("text", "another process")
    job = holder.get("scheduler") or {}
    in_job = f" ({job.get('name', '').upper()} job {job.get('job_id')})" if job else ""
    return f"process {holder['pid']} on host {holder.get('host')}{in_job} since {holder.get('since')}"


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat(timespec="seconds")
