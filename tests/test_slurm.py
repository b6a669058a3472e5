"""Sweeps through a real SLURM scheduler: `python train.py -m hydra/launcher=slurm ...` on a
one-node cluster started on this machine (tests/slurm_cluster.py), submitted by submitit.

Marked `cluster`, outside the default suite: `python -m pytest -m cluster`, as root, with
Debian's SLURM packages (.ci/run installs them); skipped without them. Where a test needs a job
in the middle of training, it stops the job's process at a step (SIGSTOP): SLURM sends a SIGCONT
with each signal it sends a job (a requeue's or a cancel's SIGTERM, the time limit's warning),
and the job goes on to handle it.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, TINY
from slurm_cluster import PARTITION, SlurmCluster, missing
from sweeps import finish, hold_at_step, launchers, records, run_alone
from test_golden import GOLDEN, figures
from test_kill_anywhere import LONGER, assert_same_run

pytestmark = [pytest.mark.cluster,
              pytest.mark.skipif(missing() is not None, reason=str(missing()))]

# one CPU and 2 GB a job: the node runs as many jobs at once as it has CPUs
RESOURCES = [f"hydra.launcher.partition={PARTITION}", "hydra.launcher.gpus_per_node=0",
             "hydra.launcher.cpus_per_task=1", "hydra.launcher.mem_gb=2"]


@pytest.fixture(scope="module")
def cluster():
    with SlurmCluster() as running:
        yield running


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The LONGER run, never stopped, on one CPU as a job."""
    return run_alone(tmp_path_factory.mktemp("uninterrupted"), LONGER, one_cpu=True)


@pytest.fixture
def launch(cluster):
    with launchers(cluster.env()) as start:
        yield start


def sweep_args(sweep_dir: Path, *overrides: str, timeout_min: int = 5) -> list[str]:
    return [str(ROOT / "train.py"), "-m", "hydra/launcher=slurm", *RESOURCES,
            f"hydra.launcher.timeout_min={timeout_min}", *overrides,
            f"hydra.sweep.dir={sweep_dir}"]


def test_a_sweep_runs_through_the_scheduler_and_records_its_jobs(cluster, launch, tmp_path):
    args = sweep_args(tmp_path, *TINY, "ema=true,false")
    code, output = finish(launch(args))
    assert code == 0, output[-3000:]
    assert f"sweep {tmp_path}: 2 completed, 0 failed, 0 skipped" in output
    assert "sacct" not in output  # submitit follows the jobs through accounting, silently
    runs = records(tmp_path)
    assert sorted(runs) == ["ema-False+scale-tiny", "ema-True+scale-tiny"]
    states = cluster.job_states()
    for results in runs.values():
        provenance = results["provenance"]
        assert provenance["command"] == shlex.join(args)  # the user's, not submitit's
        job = provenance["scheduler"]
        assert (job["name"], job["node"], job["restarts"]) == ("slurm", cluster.host, 0)
        assert states[job["job_id"]] == "COMPLETED"
    assert {r["provenance"]["scheduler"]["job_id"].split("_")[1] for r in runs.values()} == {"0", "1"}
    # a job the scheduler ran computes what a run in this process computes, bit for bit
    assert figures(tmp_path / "ema-True+scale-tiny") == json.loads(GOLDEN.read_text())["figures"]


def test_a_job_requeued_mid_training_resumes_and_ends_with_the_uninterrupted_record(
        cluster, launch, tmp_path, uninterrupted):
    launcher = launch(sweep_args(tmp_path, *LONGER))
    run_dir, holder = hold_at_step(tmp_path, 3, launcher)
    cluster.run("scontrol", "requeue", holder["scheduler"]["job_id"])
    code, output = finish(launcher)
    assert code == 0, output[-3000:]
    results = json.loads((run_dir / "results.json").read_text())
    first, second = results["provenance"]["attempts"]
    assert first["error"] == "SIGTERMException"  # SLURM's SIGTERM, at the end of the step
    assert second["resumed_from"] == "checkpoints/last.ckpt"
    assert results["provenance"]["scheduler"]["restarts"] == 1
    assert_same_run(run_dir, uninterrupted, ("interrupted", "completed"))


def test_a_job_at_its_time_limit_is_requeued_by_submitit_and_completes(
        launch, tmp_path, uninterrupted):
    """SLURM warns the job (SIGUSR2) signal_delay_s before its limit, give or take 30 s;
    submitit then saves the job and requeues it, and the job resumes from its checkpoint."""
    launcher = launch(sweep_args(tmp_path, *LONGER, "hydra.launcher.signal_delay_s=90",
                                 timeout_min=3))
    run_dir, holder = hold_at_step(tmp_path, 3, launcher)  # until SLURM warns it
    code, output = finish(launcher)
    assert code == 0, output[-3000:]
    job_id = holder["scheduler"]["job_id"]
    submitit_log = (tmp_path / ".submitit" / job_id / f"{job_id}_0_log.out").read_text()
    assert "this job is timed-out" in submitit_log and f"Requeued job {job_id}" in submitit_log
    results = json.loads((run_dir / "results.json").read_text())
    ended = [a["status"] for a in results["provenance"]["attempts"]]
    assert len(ended) >= 2 and set(ended[:-1]) == {"interrupted"}  # a slow attempt: warned again
    assert_same_run(run_dir, uninterrupted, ended)


def test_a_cancelled_sweep_run_again_skips_its_finished_jobs_and_completes_the_rest(
        cluster, launch, tmp_path):
    args = sweep_args(tmp_path, *LONGER, "seed=0,1", "hydra.launcher.array_parallelism=1")
    launcher = launch(args)
    run_dir, holder = hold_at_step(tmp_path, 3, launcher, job="*seed-1*")  # seed 0 is done
    cluster.run("scancel", holder["scheduler"]["job_id"].split("_")[0])  # the whole array
    code, output = finish(launcher)
    assert code == 1 and "CANCELLED" in output, output[-3000:]
    cancelled = json.loads((run_dir / "results.json").read_text())
    assert cancelled["status"] == "failed" and cancelled["interrupted"]
    done = {name: r["provenance"]["finished_at"] for name, r in records(tmp_path).items()
            if r["status"] == "completed"}
    assert len(done) == 1
    state = subprocess.run([sys.executable, "-m", "text2sign.launch.sweep_summary", str(tmp_path)],
                           capture_output=True, text=True, timeout=120)
    assert state.returncode == 1
    assert "2 jobs started: 1 completed, 0 running, 1 to resume, 0 failed" in state.stdout

    code, output = finish(launch(args))
    assert code == 0, output[-3000:]
    assert f"sweep {tmp_path}: 1 completed, 0 failed, 1 skipped" in output
    runs = records(tmp_path)
    assert all(r["status"] == "completed" for r in runs.values())
    assert {name: runs[name]["provenance"]["finished_at"] for name in done} == done  # untouched
    attempts = runs[run_dir.name]["provenance"]["attempts"]
    assert [a["status"] for a in attempts] == ["interrupted", "completed"]
    assert attempts[1]["resumed_from"] == "checkpoints/last.ckpt"
