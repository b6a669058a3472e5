"""Scale out: DDP on 2 CPU processes, the launcher configs, GPU claims and resumable batches."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch
from conftest import TINY, compose_hydra
from entry_points import train
from hydra.utils import instantiate
from omegaconf import OmegaConf

from text2sign.config import job_dirname
from text2sign.data.sampler import ResumableBatchSampler
from text2sign.launch.gpu_pool import claim_gpu
from text2sign.launch.sweep_summary import SweepSummary
from text2sign.run.checkpointing import AtomicCheckpointIO


def all_batches(sampler: ResumableBatchSampler, epochs: int) -> list:
    return [batch for _ in range(epochs) for batch in sampler]


def test_batches_resume_mid_epoch_exactly():
    whole = all_batches(ResumableBatchSampler(20, 4, seed=3), epochs=3)  # 5 batches an epoch
    assert [i for i, _ in whole[0]] != [i for i, _ in whole[5]]  # each epoch reshuffles
    assert sorted(i for b in whole[:5] for i, _ in b) == list(range(20))
    resumed = ResumableBatchSampler(20, 4, seed=3)
    resumed.consumed = 7  # as after global step 7: the 3rd batch of the 2nd epoch comes next
    assert all_batches(resumed, epochs=2)[:8] == whole[7:]


def test_ranks_read_disjoint_shares_of_each_epoch():
    ranks = [list(ResumableBatchSampler(21, 2, seed=0, rank=r, world_size=2)) for r in (0, 1)]
    assert len(ranks[0]) == len(ranks[1]) == 5  # 21 clips: 20 used, in 5 steps of 2 x 2
    seen = [i for batches in ranks for batch in batches for i, _ in batch]
    assert len(seen) == len(set(seen)) == 20


def test_a_batch_larger_than_the_data_says_so():
    with pytest.raises(ValueError, match="data.batch_size"):
        ResumableBatchSampler(6, 4, seed=0, world_size=2)


def test_checkpoints_are_written_atomically_and_load_as_plain_data(tmp_path):
    path = tmp_path / "checkpoints" / "last.ckpt"
    AtomicCheckpointIO().save_checkpoint({"state_dict": {"w": torch.ones(2)}, "step": 3}, path)
    assert torch.load(path, weights_only=True)["step"] == 3
    assert [p.name for p in path.parent.iterdir()] == ["last.ckpt"]


def test_two_processes_never_claim_the_same_gpu(tmp_path):
    holder = subprocess.Popen(
        [sys.executable, "-c", ("import time; from pathlib import Path; "
                                "from text2sign.launch.gpu_pool import claim_gpu; "
                                f"print(claim_gpu(['0', '1'], Path({str(tmp_path)!r})), "
                                "flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "0"
        assert claim_gpu(["0", "1"], tmp_path) == "1"
    finally:
        holder.kill()


def test_the_launcher_configs_compose():
    parallel = compose_hydra(["hydra/launcher=parallel"]).hydra.launcher
    assert parallel._target_.endswith("JoblibLauncher")
    assert parallel.n_jobs == (torch.cuda.device_count() or 2)
    cfg = compose_hydra(["hydra/launcher=slurm"])
    slurm = cfg.hydra.launcher
    assert slurm._target_.endswith("SlurmLauncher")
    assert slurm.max_num_timeout > 0  # requeued after the time limit, then resumed
    # a job stopped at its limit has saved a timed last.ckpt before the warning comes
    interval = instantiate(cfg.callbacks.timed_checkpoint.train_time_interval)
    assert interval.total_seconds() < slurm.timeout_min * 60 - slurm.signal_delay_s
    assert slurm.tasks_per_node == slurm.gpus_per_node  # one process per GPU (DDP)
    from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher
    assert hasattr(SlurmLauncher, "checkpoint")  # what submitit calls to requeue a job


def test_the_ray_launcher_config_composes_and_without_the_extra_says_what_to_install(
        monkeypatch):
    ray = compose_hydra(["hydra/launcher=ray_cluster"]).hydra.launcher
    assert ray._target_ == "hydra_plugins.text2sign_ray_cluster.RayClusterLauncher"
    assert OmegaConf.is_missing(ray.ray.init, "address")  # a running cluster's: no default
    assert ray.ray.init.object_store_memory is None  # ray.init refuses one for a running cluster
    monkeypatch.setitem(sys.modules, "hydra_plugins.hydra_ray_launcher.ray_launcher", None)
    from hydra_plugins.text2sign_ray_cluster import RayClusterLauncher
    with pytest.raises(ImportError, match=r'hydra/launcher=ray_cluster needs hydra-ray-launcher '
                                          r'.*: pip install -e "\.\[ray\]"'):
        RayClusterLauncher(ray=ray.ray)


@pytest.mark.slow  # over 10 s: the default suite keeps under 5 minutes
def test_ddp_on_two_cpu_processes_writes_each_file_once(tmp_path, capfd, monkeypatch):
    """A 2-job sweep of 2-process runs; the job with a huge learning rate hits a NaN loss.
    Rank 0 is this process (Lightning starts rank 1 by running train.py again)."""
    sweep = tmp_path / "sweep"
    monkeypatch.chdir(tmp_path)
    result = train(capfd, "-m", *TINY, "trainer=ddp", "trainer.devices=2",
                   "optimizer.lr=1e-3,1e30", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 1, result.stderr[-3000:]  # one job failed
    assert f"sweep {sweep}: 1 completed, 1 failed, 0 skipped" in result.stdout + result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sweep"]  # no stray output dirs
    assert result.stdout.count("Launching 2 jobs") == 1  # the workers did not restart the sweep
    healthy, diverged = (sweep / job_dirname(f"optimizer.lr={lr},scale=tiny,trainer.devices=2,"
                                              "trainer=ddp", 0) for lr in ("0.001", "1e+30"))
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == [healthy.name, diverged.name]

    results = json.loads((healthy / "results.json").read_text())
    assert results["status"] == "completed", results["error"]
    # 32 clips / (4 a batch x 2 ranks) = 4 steps = one epoch, each rank its own half
    assert results["train"]["steps"] == 4 and results["train"]["epochs"] == 1
    steps = [line.split(",")[1] for line in
             (healthy / "training_metrics.csv").read_text().splitlines()[1:]]
    assert steps == ["1", "2", "3", "4"]  # rank 0 alone logs
    assert [p.name for p in (healthy / "csv").iterdir()] == ["version_0"]
    assert results["eval"]["num_videos"] == 4

    results = json.loads((diverged / "results.json").read_text())
    assert results["status"] == "failed" and "nan at step 3" in results["error"]


@pytest.mark.slow  # over 10 s: the default suite keeps under 5 minutes
def test_the_parallel_launcher_runs_jobs_side_by_side(tmp_path, capfd):
    sweep = tmp_path / "sweep"
    result = train(capfd, "-m", "hydra/launcher=parallel", "hydra.launcher.n_jobs=2", *TINY,
                       "eval.enabled=false", "seed=0,1", f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-3000:]
    runs = [json.loads(p.read_text()) for p in sorted(sweep.glob("*/results.json"))]
    assert [r["status"] for r in runs] == ["completed", "completed"]
    first, second = (r["provenance"] for r in runs)
    assert first["started_at"] <= second["finished_at"] and second["started_at"] <= first["finished_at"]
    assert first["hostname"] == second["hostname"]


def test_a_sweep_whose_jobs_left_no_directory_in_it_fails(tmp_path, caplog):
    """As jobs that ran in another working directory with a relative hydra.sweep.dir."""
    with pytest.raises(SystemExit) as exited:
        SweepSummary().on_multirun_end(OmegaConf.create({"hydra": {"sweep": {"dir": str(tmp_path)}}}))
    assert exited.value.code == 1
    assert f"sweep {tmp_path}: no job directory in it" in caplog.text
