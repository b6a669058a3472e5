"""The GPU memory monitor's arithmetic, with CUDA's counters stubbed (CI has no GPU)."""

from __future__ import annotations

import csv
from types import SimpleNamespace

import torch

from text2sign.callbacks.gpu_memory import GB, GPUMemoryMonitor


def test_records_peak_and_average_per_step(monkeypatch, tmp_path):
    allocated = iter([1 * GB, 3 * GB, 3 * GB, 2 * GB, 4 * GB, 4 * GB])  # start/end of each step
    peaks = iter([5 * GB, 6 * GB])
    resets = []
    monkeypatch.setattr(torch.cuda, "memory_allocated", lambda device=None: next(allocated))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: next(peaks))
    monkeypatch.setattr(torch.cuda, "memory_reserved", lambda device=None: 8 * GB)
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: resets.append(1))
    logged = []
    module = SimpleNamespace(device=torch.device("cuda", 0))
    logger = SimpleNamespace(log_metrics=lambda metrics, step: logged.append((step, metrics)))
    trainer = SimpleNamespace(global_step=0, current_epoch=0, default_root_dir=str(tmp_path),
                              is_global_zero=True, log_every_n_steps=1, loggers=[logger])

    monitor = GPUMemoryMonitor()
    monitor.on_train_start(trainer, module)
    for step in (1, 2):
        monitor.on_train_batch_start(trainer, module, None, step)
        trainer.global_step = step
        monitor.on_train_batch_end(trainer, module, None, None, step)

    assert len(resets) == 3  # at the start of the job, then after every step
    assert monitor.summary() == {"peak_memory_gb": 6.0, "avg_memory_gb": 2.5}  # mean of 2 and 3
    assert logged == [(1, {"memory/peak_gb": 5.0, "memory/avg_gb": 2.0}),
                      (2, {"memory/peak_gb": 6.0, "memory/avg_gb": 3.0})]
    with open(tmp_path / "gpu_memory.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(r["step"], float(r["peak_gb"]), float(r["reserved_gb"])) for r in rows] == [
        ("1", 5.0, 8.0), ("2", 6.0, 8.0)]


def test_without_cuda_every_figure_is_none(tmp_path):
    module = SimpleNamespace(device=torch.device("cpu"))
    trainer = SimpleNamespace(global_step=0, current_epoch=0, default_root_dir=str(tmp_path),
                              is_global_zero=True)
    monitor = GPUMemoryMonitor()
    monitor.on_train_start(trainer, module)
    monitor.on_train_batch_start(trainer, module, None, 0)
    trainer.global_step = 1
    monitor.on_train_batch_end(trainer, module, None, None, 0)
    assert monitor.summary() == {"peak_memory_gb": None, "avg_memory_gb": None}
    assert monitor.last == {"peak_gb": None, "avg_gb": None}
