"""A sweep run the way a user runs it on a cluster, for tests/test_slurm.py and test_ray.py:
`python train.py -m ...` in a process of its own, a job held at a step, the records."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from conftest import ROOT


@contextmanager
def launchers(env: dict[str, str]) -> Iterator[Callable[[list[str]], subprocess.Popen]]:
    """Start `python train.py ARGS`s (ARGS from train.py on) that submit their jobs and wait
    for them; any still running at the end (a failed test's) is stopped."""
    started: list[subprocess.Popen] = []

    def launch(args: list[str]) -> subprocess.Popen:
        started.append(subprocess.Popen([sys.executable, *args], cwd=ROOT, env=env, text=True,
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
        return started[-1]

    try:
        yield launch
    finally:
        for launcher in started:
            if launcher.poll() is None:
                launcher.kill()
                launcher.communicate()


def finish(launcher: subprocess.Popen, timeout_s: float = 600) -> tuple[int, str]:
    output, _ = launcher.communicate(timeout=timeout_s)
    return launcher.returncode, output


def hold_at_step(sweep_dir: Path, step: int, launcher: subprocess.Popen, job: str = "*",
                 where: Callable[[dict], bool] = lambda holder: True) -> tuple[Path, dict]:
    """Wait for a job of the sweep (its directory matching `job`, its lock's record of its
    process `where`) to log `step`, then stop its process there (SIGSTOP); its run directory
    and that record (pid, host, scheduler job)."""
    deadline = time.monotonic() + 300
    while True:
        for log in sweep_dir.glob(f"{job}/training_metrics.csv"):
            if len(log.read_text().splitlines()) - 1 >= step:
                holder = json.loads((log.parent / ".lock").read_text())
                if where(holder):
                    os.kill(holder["pid"], signal.SIGSTOP)
                    return log.parent, holder
        assert launcher.poll() is None, launcher.communicate()[0][-3000:]
        assert time.monotonic() < deadline, f"no job of {sweep_dir} reached step {step}"
        time.sleep(0.01)


def records(sweep_dir: Path) -> dict[str, dict]:
    """results.json of each job of the sweep, by its directory's name."""
    return {p.parent.name: json.loads(p.read_text()) for p in sweep_dir.glob("*/results.json")}


def run_alone(run_dir: Path, overrides: list[str], env: dict[str, str] | None = None,
              one_cpu: bool = False) -> Path:
    """`python train.py OVERRIDES` in `run_dir`, never stopped, as a job runs it: in its
    environment, on one CPU (the number of threads changes how sums round and what the video
    encoder writes)."""
    cpu = min(os.sched_getaffinity(0))
    done = subprocess.run([sys.executable, str(ROOT / "train.py"), *overrides,
                           f"hydra.run.dir={run_dir}"], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env={**os.environ, **(env or {})},
                          preexec_fn=(lambda: os.sched_setaffinity(0, {cpu})) if one_cpu else None)
    assert done.returncode == 0, done.stderr[-3000:]
    return run_dir
