"""Fault tolerance: a re-run sweep skips what is done, one process per run directory, damaged
checkpoints and failed writes survived, a SIGTERM recorded, and a non-finite loss skipped or
fatal, as configured. (A run killed anywhere is tests/test_kill_anywhere.py.)"""

from __future__ import annotations

import errno
import json
import os
import platform
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import ROOT, TINY, compose_config, run_train
from data_fixtures import truncate
from entry_points import train

from text2sign.callbacks.training_log import TrainingLog
from text2sign.launch.sweep_summary import job_outcome
from text2sign.module import TextToSignModule
from text2sign.run.attempts import plan_attempt
from text2sign.run.checkpointing import AtomicCheckpointIO
from text2sign.run.job import run
from text2sign.rundir.lock import RunDirectoryInUse
from text2sign.rundir.record import plain
from text2sign.rundir.schema import problems


def summary(result) -> list[str]:
    """The lines the sweep ended with: counts, then one line per job."""
    lines = next(out for out in (result.stdout, result.stderr) if "] sweep " in out).splitlines()
    start = max(i for i, line in enumerate(lines) if "] sweep " in line)
    jobs = [line.strip() for line in lines[start + 1:] if line.startswith("  ")]
    return [lines[start].split("] ", 1)[1], *jobs]


@pytest.mark.slow  # over 10 s: the default suite keeps under 5 minutes
def test_a_failing_job_does_not_stop_the_sweep_and_a_sweep_run_again_skips_what_is_done(
        tmp_path, capfd):
    """A job that fails is recorded and the sweep goes on; run again, the sweep skips what is
    done and retries the failed job only when asked."""
    sweep = tmp_path / "sweep"  # the loss of lr=1e30 turns NaN: no check can see it coming
    command = ["-m", *TINY, "eval.enabled=false", "optimizer.lr=0.001,1e30",
               f"hydra.sweep.dir={sweep}"]
    first_run = train(capfd, *command)
    assert first_run.returncode == 1  # a job failed
    done = sweep / "eval.enabled-False+optimizer.lr-0.001+scale-tiny"
    failed = next(sweep.glob("eval.enabled-False+optimizer.lr-1e+30+scale-tiny_*"))
    reason = json.loads((failed / "results.json").read_text())["error"]
    assert reason.startswith("NonFiniteLossError: training loss is nan at step ")
    assert summary(first_run) == [
        f"sweep {sweep}: 1 completed, 1 failed, 0 skipped",
        f"completed {done.name}: attempt 1",
        f"failed    {failed.name}: {reason}"]
    first = {d: (d / "results.json").read_text() for d in (done, failed)}
    records = {d.name: json.loads(text) for d, text in first.items()}
    assert [r["status"] for r in records.values()] == ["completed", "failed"]
    assert [problems(r) for r in records.values()] == [[], []]
    factors = records[failed.name]["factors"]  # from Hydra's runtime
    assert {k: factors[k] for k in ("scale", "data", "text_encoder", "optimizer.lr",
                                    "ema", "seed")} == {
        "scale": "tiny", "data": "synthetic", "text_encoder": "frozen",
        "optimizer.lr": 1e30, "ema": True, "seed": 0}
    assert not {"experiment", "hydra/launcher", "hydra.sweep.dir"} & set(factors)

    again = train(capfd, *command)
    assert again.returncode == 1
    said = again.stdout + again.stderr
    assert "completed earlier: skipped" in said and "retry_failed=true" in said
    assert summary(again) == [
        f"sweep {sweep}: 0 completed, 0 failed, 2 skipped",
        f"skipped   {done.name}: completed earlier",
        f"skipped   {failed.name}: failed earlier ({reason}); retry_failed=true runs it again"]
    assert {d: (d / "results.json").read_text() for d in first} == first  # untouched

    retried = train(capfd, *command, "retry_failed=true")
    assert retried.returncode == 1
    assert summary(retried)[0] == f"sweep {sweep}: 0 completed, 1 failed, 1 skipped"
    assert (done / "results.json").read_text() == first[done]
    results = json.loads((failed / "results.json").read_text())
    assert results["status"] == "failed" and results["provenance"]["attempt"] == 2
    assert [a["status"] for a in results["provenance"]["attempts"]] == ["failed", "failed"]
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
    with pytest.raises(FloatingPointError, match="at step 3"):  # the third optimizer step
        run(compose_config(TINY, tmp_path))
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["status"] == "failed" and "nan at step 3" in results["error"]
    assert "model.nonfinite_loss=skip" in results["error"] and not results["interrupted"]


def test_a_nan_loss_is_skipped_and_counted(nan_at_third_batch, tmp_path):
    results = run(compose_config([*TINY, "model.nonfinite_loss=skip"], tmp_path))
    assert results["status"] == "completed" and results["train"]["skipped_steps"] == 1
    assert results["train"]["steps"] == 4
    losses = [r.split(",")[2] for r in
              (tmp_path / "training_metrics.csv").read_text().splitlines()[1:]]
    assert losses[2] == "" and all(float(x) > 0 for x in losses[:2] + losses[3:])  # no loss: skipped
    final = torch.load(tmp_path / "checkpoints" / "final.ckpt", weights_only=True)
    assert all(torch.isfinite(t).all() for t in final["state_dict"].values())


def test_old_step_checkpoints_are_pruned(tmp_path):
    run(compose_config([*TINY, "callbacks.step_checkpoints.every_n_train_steps=1",
                        "eval.enabled=false"], tmp_path))
    kept = sorted(p.name for p in (tmp_path / "checkpoints").glob("step*.ckpt"))
    assert kept == ["step0000003.ckpt", "step0000004.ckpt"]  # save_top_k=2: the newest two


def hold(run_dir) -> subprocess.Popen:
    """Another process that holds `run_dir`, as a run training there would."""
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         "from text2sign.rundir.lock import hold_run_directory\n"
         "with hold_run_directory(sys.argv[1]):\n"
         "    print('held', flush=True)\n"
         "    time.sleep(120)\n", str(run_dir)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_second_process_stops_at_once_and_a_dead_holder_is_taken_over(tmp_path, caplog):
    holder = hold(tmp_path)
    try:
        with pytest.raises(RunDirectoryInUse) as refused:
            run(compose_config(TINY, tmp_path))
        assert str(refused.value).startswith(
            f"run directory {tmp_path} is in use by process {holder.pid} on host "
            f"{platform.node()} since ")
        assert not (tmp_path / "results.json").exists()  # nothing of the holder's was touched
        (tmp_path / "results.json").write_text('{"status": "running"}')  # as the holder's
        kind, _, reason, done = job_outcome(tmp_path, sweep_started="")
        assert (kind, done) == ("skipped", False)  # what a sweep's summary says of the job
        assert reason.startswith(f"in use by process {holder.pid} on host {platform.node()}")
    finally:
        holder.kill()  # SIGKILL: its lock file still names it
        holder.wait()
    results = run(compose_config([*TINY, "eval.enabled=false"], tmp_path))
    assert results["status"] == "completed"
    assert f"taking over run directory {tmp_path} from process {holder.pid}" in caplog.text


def damaged_run(run_dir, *checkpoints: str) -> None:
    """As a run killed before the end of training, whose `checkpoints` were cut short."""
    (run_dir / "checkpoints" / "final.ckpt").unlink()
    for name in checkpoints:
        truncate(run_dir / "checkpoints" / name)
    results = json.loads((run_dir / "results.json").read_text())
    (run_dir / "results.json").write_text(json.dumps({**results, "status": "running"}))


@pytest.mark.slow  # over 10 s: the default suite keeps under 5 minutes
def test_a_damaged_last_checkpoint_is_passed_over_and_with_none_intact_the_run_starts_over(
        tmp_path, caplog):
    overrides = [*TINY, "callbacks.step_checkpoints.every_n_train_steps=1", "eval.enabled=false"]
    whole = run(compose_config(overrides, tmp_path))
    same = ("steps", "epochs", "final_loss", "best_val_loss", "skipped_steps")

    (tmp_path / "checkpoints" / "step0000004.ckpt").unlink()
    damaged_run(tmp_path, "last.ckpt")
    resumed = run(compose_config(overrides, tmp_path))
    assert resumed["status"] == "completed"
    assert {k: resumed["train"][k] for k in same} == {k: whole["train"][k] for k in same}
    attempt = resumed["provenance"]["attempts"][-1]
    assert attempt["resumed_from"] == "checkpoints/step0000003.ckpt"
    assert attempt["notes"] == ["checkpoints/last.ckpt is damaged (RuntimeError: PytorchStream"
                                "Reader failed reading zip archive: failed finding central "
                                "directory)"]
    assert "checkpoints/last.ckpt is damaged" in caplog.text

    damaged_run(tmp_path, "last.ckpt", "step0000003.ckpt", "step0000004.ckpt")
    plan = plan_attempt(tmp_path, False, plain(compose_config(overrides, tmp_path)))
    assert plan.action == "start" and "starting over" in plan.reason and len(plan.notes) == 3
    again = run(compose_config(overrides, tmp_path))
    assert {k: again["train"][k] for k in same} == {k: whole["train"][k] for k in same}
    assert again["provenance"]["attempts"][-1]["resumed_from"] is None
    assert [a["status"] for a in again["provenance"]["attempts"]] == ["killed", "killed",
                                                                       "completed"]
    rows = (tmp_path / "training_metrics.csv").read_text().splitlines()[1:]
    assert [r.split(",")[1] for r in rows] == ["1", "2", "3", "4"]


@pytest.mark.parametrize("disk_full", [False, True], ids=["write fails", "disk full"])
def test_a_failed_checkpoint_write_keeps_the_previous_one_and_fails_the_run(
        monkeypatch, tmp_path, disk_full):
    """last.ckpt of step 4 fails half-written with ENOSPC (with disk_full, so does every
    write after it): last.ckpt of step 2 and a readable results.json remain."""
    def no_space(*args):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def write_half(checkpoint, f):
        f.write(b"\0" * 1000)
        if disk_full:
            monkeypatch.setattr(os, "fsync", no_space)
        no_space()

    save = AtomicCheckpointIO.save_checkpoint

    def failing_save(self, checkpoint, path, storage_options=None):
        if str(path).endswith("last.ckpt") and checkpoint["global_step"] == 4:
            monkeypatch.setattr(torch, "save", write_half)
        save(self, checkpoint, path, storage_options)

    monkeypatch.setattr(AtomicCheckpointIO, "save_checkpoint", failing_save)
    with pytest.raises(OSError, match="No space left on device"):
        run(compose_config([*TINY, "eval.enabled=false"], tmp_path))
    monkeypatch.undo()
    last = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["global_step"] == 2
    assert not list(tmp_path.rglob(".*.tmp"))
    results = json.loads((tmp_path / "results.json").read_text())
    if disk_full:  # the failure could not be written: the run is resumed as if killed
        assert results["status"] == "running"
    else:
        assert results["status"] == "failed" and not results["interrupted"]
        assert results["error"] == "OSError: [Errno 28] No space left on device"


def test_sigterm_stops_the_run_with_exit_status_143_and_it_resumes(monkeypatch, tmp_path):
    step_end = TrainingLog.on_step_end

    def terminated_at_step_3(self, trainer, pl_module):  # last.ckpt is step 2's
        step_end(self, trainer, pl_module)
        if trainer.global_step == 3:
            os.kill(os.getpid(), signal.SIGTERM)  # as a scheduler's preemption would

    monkeypatch.setattr(TrainingLog, "on_step_end", terminated_at_step_3)
    cfg = compose_config([*TINY, "eval.enabled=false"], tmp_path)
    with pytest.raises(SystemExit) as stopped:
        run(cfg)
    assert stopped.value.code == 128 + signal.SIGTERM
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["status"] == "failed" and results["interrupted"]
    assert results["provenance"]["attempts"][-1]["status"] == "interrupted"
    assert results["train"]["steps"] == 3
    plan = plan_attempt(tmp_path, False, plain(cfg))
    assert plan.action == "resume" and plan.ckpt_path.name == "last.ckpt"


# long enough to still be training when a second process has started (eval adds nothing here)
MANY_STEPS = [*TINY, "trainer.max_steps=400", "trainer.val_check_interval=100",
              "callbacks.last_checkpoint.every_n_train_steps=100", "eval.enabled=false"]


def start_training(run_dir, *overrides: str) -> subprocess.Popen:
    """`python train.py` in the background, returned once it has logged its first step."""
    process = subprocess.Popen([sys.executable, str(ROOT / "train.py"), *overrides,
                                f"hydra.run.dir={run_dir}"], cwd=ROOT, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    log = run_dir / "training_metrics.csv"
    deadline = time.monotonic() + 240
    while not (log.exists() and len(log.read_text().splitlines()) > 1):
        assert process.poll() is None, process.communicate()[0][-3000:]
        assert time.monotonic() < deadline, "the run never started training"
        time.sleep(0.05)
    return process


@pytest.mark.slow
def test_two_runs_on_one_directory_the_second_stops_and_the_first_is_unaffected(tmp_path):
    first = start_training(tmp_path, *MANY_STEPS)
    second = run_train(*MANY_STEPS, f"hydra.run.dir={tmp_path}")
    assert first.poll() is None, "the first run ended before the second was refused"
    assert second.returncode == 1
    assert (f"run directory {tmp_path} is in use by process {first.pid} on host "
            f"{platform.node()}") in second.stdout + second.stderr
    output, _ = first.communicate(timeout=600)
    assert first.returncode == 0, output[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["status"] == "completed" and results["train"]["steps"] == 400
    assert [a["status"] for a in results["provenance"]["attempts"]] == ["completed"]
    steps = [r.split(",")[1] for r in
             (tmp_path / "training_metrics.csv").read_text().splitlines()[1:]]
    assert steps == [str(s) for s in range(1, 401)]


@pytest.mark.slow
def test_sigterm_from_outside_exits_nonzero_with_the_run_recorded_as_interrupted(tmp_path):
    process = start_training(tmp_path, *MANY_STEPS)
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 128 + signal.SIGTERM, output[-3000:]
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["status"] == "failed" and results["interrupted"], results["error"]
    assert results["train"]["steps"] < 400
