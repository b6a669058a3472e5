"""One GPU per job when a sweep runs several jobs at once on one machine.

The parallel launcher (joblib) runs each job in a worker process. Before a job touches CUDA,
its process takes a GPU of its own with an exclusive lock file, keeps it for its lifetime and
sees only that device (CUDA_VISIBLE_DEVICES). Locks are per machine, so two sweeps started
side by side never share a GPU either; a process finding every GPU taken waits for one.
"""

from __future__ import annotations

import fcntl
import logging
import os
import tempfile
import time
from pathlib import Path

import torch

log = logging.getLogger(__name__)

LOCK_DIR = Path(tempfile.gettempdir()) / f"text2sign-gpus-{os.getuid()}"
_held: dict[str, int] = {}  # device id -> open lock file descriptor, kept until the process ends


def visible_gpus() -> list[str]:
    """The physical ids of the GPUs this process may use."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [d.strip() for d in listed.split(",") if d.strip()]
    return [str(i) for i in range(torch.cuda.device_count())]


def claim_gpu(gpus: list[str], lock_dir: Path = LOCK_DIR, poll_s: float = 5.0) -> str:
    """Lock one of `gpus` for this process (waiting while all are taken) and return its id."""
    if _held:
        return next(iter(_held))
    lock_dir.mkdir(parents=True, exist_ok=True)
    waiting = False
    while True:
        for gpu in gpus:
            fd = os.open(lock_dir / f"gpu{gpu}.lock", os.O_CREAT | os.O_RDWR, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            _held[gpu] = fd
            return gpu
        if not waiting:
            log.info("all %d GPUs are taken by other jobs: waiting for one", len(gpus))
            waiting = True
        time.sleep(poll_s)


def share_cpu(jobs_at_once: int) -> None:
    """Jobs running side by side split the CPU cores instead of oversubscribing them."""
    if jobs_at_once > 1 and "OMP_NUM_THREADS" not in os.environ:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // jobs_at_once))


def use_own_gpu(devices_per_job: object) -> None:
    """In a sweep on a machine with several GPUs, give this single-GPU job a GPU of its own."""
    gpus = visible_gpus()
    if len(gpus) < 2 or devices_per_job != 1 or torch.cuda.is_initialized():
        return
    gpu = claim_gpu(gpus)
    os.environ["CUDA_VISIBLE_DEVICES"] = gpu
    log.info("this job runs on GPU %s alone", gpu)
