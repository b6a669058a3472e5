"""The run lock on a shared filesystem: a lock another host holds is taken over only once its
heartbeat has been stale for TEXT2SIGN_LOCK_STALE_S, or by the same SLURM job requeued."""

from __future__ import annotations

import json
import logging
import os
import platform
import subprocess
import sys
import time

import pytest

from text2sign.launch.sweep_summary import job_outcome
from text2sign.launch.sweep_summary import main as sweep_summary
from text2sign.rundir.lock import LOCK, STALE_ENV, RunDirectoryInUse, held_by, hold_run_directory

SINCE = "2026-11-25T21:14:19+00:00"


def lock_of_another_host(run_dir, heartbeat_age_s: float, scheduler: dict | None = None):
    """The lock a process on host node7 left, its heartbeat `heartbeat_age_s` old."""
    path = run_dir / LOCK
    path.write_text(json.dumps({"pid": 4242, "host": "node7", "since": SINCE,
                                "scheduler": scheduler}) + "\n")
    beat = time.time() - heartbeat_age_s
    os.utime(path, (beat, beat))
    return path


@pytest.fixture(autouse=True)
def no_scheduler(monkeypatch):
    """As outside any SLURM job (the tests may run inside one)."""
    for name in [n for n in os.environ if n.startswith("SLURM_")]:
        monkeypatch.delenv(name)
    monkeypatch.delenv(STALE_ENV, raising=False)


def test_a_live_heartbeat_of_another_host_keeps_its_lock(tmp_path):
    path = lock_of_another_host(tmp_path, heartbeat_age_s=20)
    before = path.read_text()
    with pytest.raises(RunDirectoryInUse) as refused:
        with hold_run_directory(tmp_path):
            pass
    holder = f"process 4242 on host node7 since {SINCE} (heartbeat 20 s ago"
    assert holder in str(refused.value) and f"{STALE_ENV}=300 s" in str(refused.value)
    assert path.read_text() == before  # nothing of the holder's was touched
    assert held_by(tmp_path).startswith(holder)
    kind, _, reason, done = job_outcome(tmp_path, sweep_started="")
    assert (kind, done) == ("skipped", False) and reason.startswith(f"in use by {holder}")


def test_the_sweep_state_shows_a_job_running_on_another_host(tmp_path, capsys):
    job = tmp_path / "ema-True"
    (job / ".hydra").mkdir(parents=True)
    lock_of_another_host(job, heartbeat_age_s=20)
    assert sweep_summary([str(tmp_path)]) == 1  # not every job has completed
    assert capsys.readouterr().out.splitlines() == [
        f"sweep {tmp_path}: 1 jobs started: 0 completed, 1 running, 0 to resume, 0 failed",
        f"  running   ema-True: in use by process 4242 on host node7 since {SINCE} (heartbeat 20 "
        f"s ago; another host takes it over once the heartbeat has stopped for {STALE_ENV}=300 s)"]


def test_a_stale_heartbeat_of_another_host_is_taken_over_and_said_so(tmp_path, caplog):
    lock_of_another_host(tmp_path, heartbeat_age_s=400)
    assert held_by(tmp_path) is None
    with caplog.at_level(logging.WARNING), hold_run_directory(tmp_path):
        me = json.loads((tmp_path / LOCK).read_text())
        assert (me["pid"], me["host"]) == (os.getpid(), platform.node())
    assert (f"taking over run directory {tmp_path} from process 4242 on host node7 since {SINCE}: "
            f"its heartbeat stopped 400 s ago ({STALE_ENV}=300)") in caplog.text
    assert (tmp_path / LOCK).read_text() == ""  # released


def test_the_stale_time_is_configurable_and_checked(tmp_path, monkeypatch):
    lock_of_another_host(tmp_path, heartbeat_age_s=400)
    monkeypatch.setenv(STALE_ENV, "1000")
    with pytest.raises(RunDirectoryInUse, match=f"{STALE_ENV}=1000 s"):
        with hold_run_directory(tmp_path):
            pass
    monkeypatch.setenv(STALE_ENV, "ten minutes")
    with pytest.raises(ValueError, match=f"{STALE_ENV}='ten minutes' must be a number of seconds"):
        with hold_run_directory(tmp_path):
            pass


def test_the_heartbeat_is_renewed_while_the_run_lives(tmp_path, monkeypatch):
    monkeypatch.setenv(STALE_ENV, "0.5")  # a beat every 0.05 s
    with hold_run_directory(tmp_path):
        os.utime(tmp_path / LOCK, (0, 0))
        time.sleep(0.5)
        assert time.time() - (tmp_path / LOCK).stat().st_mtime < 0.3


def test_the_same_slurm_job_requeued_takes_its_lock_over_at_once(tmp_path, monkeypatch, caplog):
    earlier = {"name": "slurm", "job_id": "77_1", "node": "node7", "restarts": 0}
    lock_of_another_host(tmp_path, heartbeat_age_s=5, scheduler=earlier)
    monkeypatch.setenv("SLURM_JOB_ID", "78")
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "77")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "1")
    with pytest.raises(RunDirectoryInUse, match=r"\(SLURM job 77_1\)"):  # not requeued: another run
        with hold_run_directory(tmp_path):
            pass
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    with caplog.at_level(logging.WARNING), hold_run_directory(tmp_path):
        assert json.loads((tmp_path / LOCK).read_text())["scheduler"]["restarts"] == 1
    assert "SLURM requeued job 77_1, and its earlier run has ended" in caplog.text


def test_the_lock_needs_only_the_standard_library():
    """AblationRunner takes it without Lightning, torch or Hydra (README: Layout)."""
    check = ("import sys\nbefore = set(sys.modules)\nimport text2sign.rundir.lock\n"
             "print(sorted({m.split('.')[0] for m in set(sys.modules) - before}"
             " - set(sys.stdlib_module_names)))")
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "['text2sign']"
