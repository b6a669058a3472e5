"""Where a job runs, for its record: the cluster scheduler (SLURM, Ray) and the user's command.

A launcher that runs jobs in other processes (submitit's sbatch, a Ray task) leaves its own
command line in `sys.argv` (submitit's `_submit.py`); train.py therefore passes the user's
command to its jobs in the environment (`COMMAND`): sbatch exports the submitting shell's
environment, the Ray launcher config sets it in the tasks' runtime environment. Standard
library only: Ray is asked only where a Ray worker has imported it.
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

COMMAND = "TEXT2SIGN_COMMAND"


@contextmanager
def command_for_jobs() -> Iterator[None]:
    """While the entry point runs the block, this process's command line is its jobs'."""
    before = os.environ.get(COMMAND)
    os.environ[COMMAND] = shlex.join(sys.argv)
    try:
        yield
    finally:
        if before is None:
            del os.environ[COMMAND]
        else:
            os.environ[COMMAND] = before


def command() -> str:
    """The command line that started the job."""
    return os.environ.get(COMMAND) or shlex.join(sys.argv)


def scheduler() -> dict[str, Any] | None:
    """{"name", "job_id", "node", "restarts"} of the scheduler running this process, or None:
    SLURM's job id (ARRAYJOB_TASK for an array job, as squeue and submitit write it), node name
    and the times the job was requeued before; Ray's task id and node id."""
    env = os.environ
    if "SLURM_JOB_ID" in env:
        array = env.get("SLURM_ARRAY_JOB_ID")
        job_id = f"{array}_{env['SLURM_ARRAY_TASK_ID']}" if array else env["SLURM_JOB_ID"]
        return {"name": "slurm", "job_id": job_id, "node": env.get("SLURMD_NODENAME"),
                "restarts": int(env.get("SLURM_RESTART_COUNT", 0))}
    ray = sys.modules.get("ray")
    if ray is not None and ray.is_initialized():
        context = ray.get_runtime_context()
        if context.worker.mode == ray.WORKER_MODE:  # a task, not the driver
            return {"name": "ray", "job_id": context.get_task_id(),
                    "node": context.get_node_id(), "restarts": None}
    return None
