"""Nothing lost, wherever a run is killed: SIGKILLed at any phase and started again with the
same command, a run ends with the record of an uninterrupted run (timings aside)."""

from __future__ import annotations

import csv
import json
import os
import random
import signal
import subprocess
import sys
import time

import pytest
import torch
from conftest import ROOT, TINY
from entry_points import command, train

# 4 batches an epoch, last.ckpt every 2 steps, validation (2 batches) after steps 3, 6, 9, 12
LONGER = [*TINY, "trainer.max_steps=12", "data.num_train=16", "trainer.val_check_interval=3"]
# what differs by nature: the clock, the process's memory, which attempt this is, the run
# directory in the command, the scheduler's job that ran it
TIMINGS = {"train": {"time_s", "clips_per_s", "peak_rss_gb"},
           "eval": {"inference_time_ms", "eval_time_s", "retrieval.time_s"},
           "provenance": {"started_at", "finished_at", "wall_s", "attempt", "attempts",
                          "command", "scheduler"}}

# TEXT2SIGN_KILL_AT (text2sign/rundir/faults.py): the process SIGKILLs itself there; the restarted
# run resumes from the checkpoint named (docs/resuming.md)
PHASES = {
    "training": ("step@7", "last.ckpt (step 6)"),
    "validation mid-run": ("validation@3", "last.ckpt (step 4)"),  # after step 6
    "last validation": ("validation@7", "last.ckpt (step 10)"),  # after step 12
    "checkpoint write": ("write:last.ckpt@3", "last.ckpt (step 4)"),  # step 6's, not renamed
    "final checkpoint write": ("write:final.ckpt", "last.ckpt (step 12)"),
    "evaluation": ("write:evaluation_metrics.csv", "final.ckpt (step 12)"),  # JSON written
    "samples": ("write:index.json", "final.ckpt (step 12)"),  # the clips written
    "results write": ("finish", "final.ckpt (step 12)"),
}
FAST = {"evaluation"}  # the others: -m slow


def start(run_dir, kill_at: str | None = None, output=subprocess.PIPE) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "TEXT2SIGN_KILL_AT"}
    if kill_at:
        env["TEXT2SIGN_KILL_AT"] = kill_at
    return subprocess.Popen([sys.executable, str(ROOT / "train.py"), *LONGER,
                             f"hydra.run.dir={run_dir}"], cwd=ROOT, env=env, text=True,
                            stdout=output, stderr=subprocess.STDOUT)


def finish(process: subprocess.Popen) -> tuple[int, str]:
    output, _ = process.communicate(timeout=300)
    return process.returncode, output


def restart(capfd, run_dir) -> str:
    """The same command again, run in this process (the killed one was a process of its own,
    `start`); what it printed."""
    again = train(capfd, *LONGER, f"hydra.run.dir={run_dir}")
    output = again.stdout + again.stderr
    assert again.returncode == 0, output[-3000:]
    return output


def read_csv(path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def without(record: dict, skip: dict, prefix: str = "") -> dict:
    """The record without the keys (dotted below a section: retrieval.time_s) in `skip`."""
    kept = {}
    for key, value in record.items():
        path = f"{prefix}{key}"
        if any(path == f"{section}.{name}" for section, names in skip.items() for name in names):
            continue
        kept[key] = without(value, skip, f"{path}.") if isinstance(value, dict) else value
    return kept


def validation_losses(run_dir) -> dict[str, str]:
    """val/loss by logged step, over the CSV logger's versions (one per attempt)."""
    losses: dict[str, str] = {}
    for path in sorted(run_dir.glob("csv/version_*/metrics.csv")):
        for row in read_csv(path):  # an attempt killed before its first validation has no column
            if row.get("val/loss"):
                assert losses.setdefault(row["step"], row["val/loss"]) == row["val/loss"]
    return losses


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The same command, never killed, run in this process (`start` without the import time)."""
    run_dir = tmp_path_factory.mktemp("uninterrupted")
    assert command("train.py", *LONGER, f"hydra.run.dir={run_dir}") is None
    return run_dir


def assert_same_run(run_dir, whole, attempts_ended=("killed", "completed")) -> None:
    """Every figure of the record, the training log, the evaluation and the samples equal an
    uninterrupted run's; training time is summed over the attempts, which ended as given."""
    results = json.loads((run_dir / "results.json").read_text())
    expected = json.loads((whole / "results.json").read_text())
    assert results["status"] == "completed", results["error"]
    got, want = without(results, TIMINGS), without(expected, TIMINGS)
    for section in want:  # one section at a time, for a readable failure
        assert got[section] == want[section], section

    attempts = results["provenance"]["attempts"]
    assert [a["status"] for a in attempts] == list(attempts_ended)
    assert results["provenance"]["attempt"] == len(attempts_ended)
    assert results["train"]["time_s"] == pytest.approx(sum(a["train_time_s"] for a in attempts),
                                                       abs=0.01)

    rows = read_csv(run_dir / "training_metrics.csv")
    want_rows = read_csv(whole / "training_metrics.csv")
    assert [r["step"] for r in rows] == [str(s) for s in range(1, 13)]  # each step once
    same = ("epoch", "step", "loss", "lr")
    assert [{k: r[k] for k in same} for r in rows] == [{k: r[k] for k in same} for r in want_rows]

    assert validation_losses(run_dir) == validation_losses(whole)

    evaluations = json.loads((run_dir / "evaluation_metrics.json").read_text())
    want_evaluations = json.loads((whole / "evaluation_metrics.json").read_text())
    assert [without({"e": e}, {"e": TIMINGS["eval"]}) for e in evaluations] == [
        without({"e": e}, {"e": TIMINGS["eval"]}) for e in want_evaluations]
    for clip in (whole / "samples").iterdir():
        assert (run_dir / "samples" / clip.name).read_bytes() == clip.read_bytes(), clip.name

    a = torch.load(whole / "checkpoints" / "final.ckpt", weights_only=True)
    b = torch.load(run_dir / "checkpoints" / "final.ckpt", weights_only=True)
    assert a["global_step"] == b["global_step"] == 12
    assert all(torch.equal(a["state_dict"][k], b["state_dict"][k]) for k in a["state_dict"])
    assert not list(run_dir.rglob(".*.tmp"))  # no half-written file is left behind


@pytest.mark.parametrize("phase", [
    pytest.param(phase, marks=[] if phase in FAST else [pytest.mark.slow]) for phase in PHASES])
def test_killed_in_any_phase_and_restarted_a_run_ends_with_the_uninterrupted_record(
        phase, uninterrupted, tmp_path, capfd):
    kill_at, resume_point = PHASES[phase]
    code, output = finish(start(tmp_path, kill_at))
    assert code == -signal.SIGKILL, f"not killed at {kill_at}:\n{output[-3000:]}"
    assert json.loads((tmp_path / "results.json").read_text())["status"] == "running"
    again = restart(capfd, tmp_path)
    assert f"resuming from checkpoints/{resume_point}" in again
    assert_same_run(tmp_path, uninterrupted)


@pytest.mark.slow  # over 10 s: the default suite keeps under 5 minutes
def test_sigkill_from_outside_at_a_random_step(uninterrupted, tmp_path, capfd):
    step = random.Random().randint(3, 11)  # last.ckpt of step 2 is written before row 3
    process = start(tmp_path, output=subprocess.DEVNULL)  # not read while it runs
    log = tmp_path / "training_metrics.csv"
    deadline = time.monotonic() + 240
    while not (log.exists() and len(log.read_text().splitlines()) - 1 >= step):
        assert process.poll() is None, f"the run ended before step {step}"
        assert time.monotonic() < deadline, f"the run never reached step {step}"
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    assert process.wait() == -signal.SIGKILL
    assert "resuming from checkpoints/last.ckpt" in restart(capfd, tmp_path), f"killed at {step}"
    assert_same_run(tmp_path, uninterrupted)
