"""Sweeps on a Ray cluster: `python train.py -m hydra/launcher=ray_cluster ...` against a
cluster of two Ray nodes started on this machine (tests/ray_cluster.py), a head and a worker
with one CPU each, so that a sweep's two jobs run one on each.

Marked `cluster`, outside the default suite: `python -m pytest -m cluster`; skipped without
the `ray` extra (pip install -e ".[ray]").
"""

from __future__ import annotations

import json
import os
import shlex
import signal

import pytest
import yaml
from conftest import ROOT, TINY
from ray_cluster import RayCluster, missing
from sweeps import finish, hold_at_step, launchers, records, run_alone
from test_golden import GOLDEN, figures
from test_kill_anywhere import LONGER, assert_same_run

pytestmark = [pytest.mark.cluster,
              pytest.mark.skipif(missing() is not None, reason=str(missing()))]

# Ray runs a task of one CPU with OMP_NUM_THREADS=1: torch on one thread
ONE_CPU = ["hydra.launcher.ray.remote.num_cpus=1", "hydra.launcher.ray.remote.num_gpus=0"]


@pytest.fixture(scope="module")
def cluster():
    with RayCluster() as running:
        yield running


@pytest.fixture
def launch():
    with launchers(dict(os.environ)) as start:
        yield start


def sweep_args(cluster: RayCluster, sweep_dir, *overrides: str) -> list[str]:
    return [str(ROOT / "train.py"), "-m", "hydra/launcher=ray_cluster",
            f"hydra.launcher.ray.init.address={cluster.address}", *ONE_CPU, *overrides,
            f"hydra.sweep.dir={sweep_dir}"]


def test_a_sweep_runs_one_job_on_each_node_and_records_them(cluster, launch, tmp_path):
    args = sweep_args(cluster, tmp_path, *TINY, "ema=true,false")
    code, output = finish(launch(args))
    assert code == 0, output[-3000:]
    assert f"sweep {tmp_path}: 2 completed, 0 failed, 0 skipped" in output
    runs = records(tmp_path)
    jobs = [r["provenance"]["scheduler"] for r in runs.values()]
    assert {job["name"] for job in jobs} == {"ray"}
    assert {job["node"] for job in jobs} == set(cluster.node_ids().values())  # both nodes
    assert all(r["provenance"]["command"] == shlex.join(args) for r in runs.values())
    assert figures(tmp_path / "ema-True+scale-tiny") == json.loads(GOLDEN.read_text())["figures"]


def test_a_job_whose_node_dies_is_run_again_by_ray_and_resumes(cluster, launch, tmp_path):
    """The worker node dies with its job at step 3; Ray runs the job again on the head once
    the head's own job is done, and the job resumes from its last checkpoint. (Last: the
    cluster has lost a node.)"""
    worker = cluster.node_ids()["worker"]
    launcher = launch(sweep_args(cluster, tmp_path / "sweep", *LONGER, "ema=true,false"))
    run_dir, holder = hold_at_step(tmp_path / "sweep", 3, launcher,
                                   where=lambda h: h["scheduler"]["node"] == worker)
    cluster.kill_worker()
    os.kill(holder["pid"], signal.SIGKILL)  # a task of the node, in a session of its own
    code, output = finish(launcher)
    assert code == 0, output[-3000:]
    assert "2 completed, 0 failed, 0 skipped" in output
    results = json.loads((run_dir / "results.json").read_text())
    assert results["provenance"]["attempts"][1]["resumed_from"] == "checkpoints/last.ckpt"
    assert results["provenance"]["scheduler"]["node"] == cluster.node_ids()["head"]
    overrides = yaml.safe_load((run_dir / ".hydra" / "overrides.yaml").read_text())
    whole = run_alone(tmp_path / "uninterrupted", overrides, env={"OMP_NUM_THREADS": "1"})
    assert_same_run(run_dir, whole, ("killed", "completed"))
