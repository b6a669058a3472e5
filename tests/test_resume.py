"""Fault tolerance: a killed run resumes exactly, a re-run sweep skips what is done, and a
non-finite loss is skipped or stops the run, as configured."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import ROOT, TINY, compose_config, run_train
from text2sign.module import TextToSignModule
from text2sign.train import run

# 4 batches per epoch, last.ckpt every 2 steps, validation mid-epoch: a kill lands mid-epoch
LONGER = [*TINY, "trainer.max_steps=12", "data.num_train=16", "trainer.val_check_interval=3",
          "eval.enabled=false"]


def train_rows(run_dir) -> int:
    path = run_dir / "training_metrics.csv"
    return sum(1 for _ in path.open()) - 1 if path.exists() else 0


def kill_after(steps: int, run_dir) -> None:
    """Start the run and SIGKILL it once `steps` steps are logged (a checkpoint is behind)."""
    process = subprocess.Popen([sys.executable, str(ROOT / "train.py"), *LONGER,
                                f"hydra.run.dir={run_dir}"], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while train_rows(run_dir) < steps and process.poll() is None:
        assert time.monotonic() < deadline, "the run never reached the step to kill it at"
        time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    process.wait()


def max_difference(a: dict, b: dict) -> float:
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def test_sigkill_then_restart_ends_with_the_weights_of_an_uninterrupted_run(tmp_path):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    assert run_train(*LONGER, f"hydra.run.dir={whole}").returncode == 0
    kill_after(7, killed)
    interrupted = json.loads((killed / "results.json").read_text())
    assert interrupted["status"] == "running" and 7 <= train_rows(killed) < 12
    restarted = run_train(*LONGER, f"hydra.run.dir={killed}")  # the same command again
    assert restarted.returncode == 0, restarted.stderr[-3000:]
    assert "resuming from" in restarted.stdout + restarted.stderr

    a = torch.load(whole / "checkpoints" / "final.ckpt", weights_only=True)
    b = torch.load(killed / "checkpoints" / "final.ckpt", weights_only=True)
    assert a["global_step"] == b["global_step"] == 12
    assert max_difference(a["state_dict"], b["state_dict"]) <= 1e-4
    ema = next(k for k in a["callbacks"] if k.startswith("EMA"))
    assert max_difference(a["callbacks"][ema]["shadow"], b["callbacks"][ema]["shadow"]) <= 1e-4
    assert a["lr_schedulers"] == b["lr_schedulers"]  # the learning rate goes on, not reset
    for x, y in zip(a["optimizer_states"][0]["state"].values(),
                    b["optimizer_states"][0]["state"].values()):
        assert max_difference(x, y) <= 1e-4
    # the log has each step once, with the uninterrupted run's losses
    rows = [(r.split(",")[1], r.split(",")[2]) for r in
            (killed / "training_metrics.csv").read_text().splitlines()[1:]]
    expected = [(r.split(",")[1], r.split(",")[2]) for r in
                (whole / "training_metrics.csv").read_text().splitlines()[1:]]
    assert rows == expected
    results = json.loads((killed / "results.json").read_text())
    assert results["status"] == "completed" and results["provenance"]["attempt"] == 2
    assert not list(killed.rglob(".*.tmp"))  # no half-written file is left behind


def test_a_sweep_run_again_skips_what_is_done_and_retries_failures_when_asked(tmp_path):
    sweep = tmp_path / "sweep"
    command = ["-m", *TINY, "eval.enabled=false", "callbacks.ema.decay=0.9,1.5",
               f"hydra.sweep.dir={sweep}"]
    assert run_train(*command).returncode == 0
    done = sweep / "callbacks.ema.decay=0.9,eval.enabled=False,scale=tiny"
    failed = sweep / "callbacks.ema.decay=1.5,eval.enabled=False,scale=tiny"
    first = {d: (d / "results.json").read_text() for d in (done, failed)}
    assert json.loads(first[failed])["status"] == "failed"

    again = run_train(*command)
    assert again.returncode == 0
    said = again.stdout + again.stderr
    assert "completed earlier: skipped" in said and "retry_failed=true" in said
    assert {d: (d / "results.json").read_text() for d in first} == first  # untouched

    retried = run_train(*command, "retry_failed=true")
    assert retried.returncode == 0
    assert (done / "results.json").read_text() == first[done]
    results = json.loads((failed / "results.json").read_text())
    assert results["status"] == "failed" and results["provenance"]["attempt"] == 2
    assert "retry_failed" not in results["factors"]


def test_another_config_in_a_used_run_directory_is_a_new_job(tmp_path):
    run(compose_config(TINY, tmp_path))
    other = run(compose_config([*TINY, "ema=false", "eval.enabled=false"], tmp_path))
    assert other["status"] == "completed" and other["eval"]["weights"] == "raw"
    assert other["train"]["steps"] == 4 and other["provenance"]["attempt"] == 2


@pytest.fixture
def nan_at_third_batch(monkeypatch):
    """The loss of the third training batch is NaN."""
    loss = TextToSignModule.diffusion_loss

    def poisoned(self, *args):
        value = loss(self, *args)
        return value * float("nan") if self.training and self.micro_batches == 3 else value

    monkeypatch.setattr(TextToSignModule, "diffusion_loss", poisoned)


def test_a_nan_loss_stops_the_run_with_the_step(nan_at_third_batch, tmp_path):
    with pytest.raises(FloatingPointError, match="at step 2"):
        run(compose_config(TINY, tmp_path))
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["status"] == "failed" and "nan at step 2" in results["error"]
    assert "model.nonfinite_loss=skip" in results["error"] and not results["interrupted"]


def test_a_nan_loss_is_skipped_and_counted(nan_at_third_batch, tmp_path):
    results = run(compose_config([*TINY, "model.nonfinite_loss=skip"], tmp_path))
    assert results["status"] == "completed" and results["train"]["skipped_steps"] == 1
    assert results["train"]["steps"] == 4
    losses = [r.split(",")[2] for r in
              (tmp_path / "training_metrics.csv").read_text().splitlines()[1:]]
    assert "nan" not in losses and all(float(x) > 0 for x in losses)
    final = torch.load(tmp_path / "checkpoints" / "final.ckpt", weights_only=True)
    assert all(torch.isfinite(t).all() for t in final["state_dict"].values())


def test_old_step_checkpoints_are_pruned(tmp_path):
    run(compose_config([*TINY, "callbacks.step_checkpoints.every_n_train_steps=1",
                        "eval.enabled=false"], tmp_path))
    kept = sorted(p.name for p in (tmp_path / "checkpoints").glob("step*.ckpt"))
    assert kept == ["step0000003.ckpt", "step0000004.ckpt"]  # save_top_k=2: the newest two
