"""AblationRunner: the run directory train.py writes, recorded from a training loop of your own.

    from text2sign import AblationRunner

    with AblationRunner("baseline", "results", experiment_scale="small", seed=0) as runner:
        for step in range(1, steps + 1):
            ...                                      # your forward, backward, optimizer step
            runner.log_training_step(epoch, step, loss, lr, time.perf_counter() - start)
        runner.log_evaluation(fvd=..., num_parameters_millions=..., bleu=...)
    # results/ablation-baseline+scale-small+seed-0/ holds results.json, metadata.json,
    # training_metrics.csv/.json, tensorboard/ and, with CUDA, gpu_memory.csv

The caller needs plain PyTorch only. The record is written by the code train.py uses
(text2sign/run/record.py, through the results.json schema; text2sign/files.py), so analyze.py
reads these runs like train.py's and mixes both: the factors are `ablation` (config_name),
`scale` (experiment_scale), `seed` and the `factors` given.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch
from torch.utils.tensorboard import SummaryWriter

from text2sign import schema
from text2sign.config import job_dirname
from text2sign.files import CsvLog, atomic_write_json
from text2sign.json_schema import validate
from text2sign.run.lock import hold_run_directory
from text2sign.run.record import RunRecord, one_line
from text2sign.run.step_logs import (
    GB,
    GPU_MEMORY,
    GPU_MEMORY_COLUMNS,
    TRAINING_COLUMNS,
    TRAINING_METRICS,
)

NAMED = ("ablation", "scale", "seed")  # factors given by the constructor's own arguments
NOT_GIVEN = "not given to AblationRunner.log_evaluation"
SECTIONS = ("eval", "model", "train")  # where log_evaluation looks a declared key up, in order


class AblationRunner:
    """Records one run of a user's training loop in `save_dir`/<its factors as a sweep names a
    job>/, e.g. `ablation-baseline+scale-small+seed-0`. Used as a context manager, a run that
    raises is recorded as failed with the reason, and one that ends is saved."""

    def __init__(self, config_name: str, save_dir: str | Path, experiment_scale: str = "small",
                 seed: int = 0, factors: dict[str, Any] | None = None):
        factors = dict(factors or {})
        named = sorted(set(NAMED) & set(factors))
        if named:
            raise ValueError(f"factors={factors}: {', '.join(named)} come from config_name, "
                             "experiment_scale and seed; leave them out of factors")
        for key, value in factors.items():
            if not isinstance(value, (str, int, float, bool, type(None))):
                raise TypeError(f"factors[{key!r}]={value!r}: a factor is a str, number, bool "
                                "or None")
        self.factors = {"ablation": config_name, "scale": experiment_scale, **factors,
                        "seed": seed}
        overrides = ",".join(f"{key}={value}" for key, value in sorted(self.factors.items()))
        self.run_dir = Path(save_dir) / job_dirname(overrides, 0)
        self._lock = ExitStack()  # held until the run ends: a second runner of it stops at once
        self._lock.enter_context(hold_run_directory(self.run_dir))
        if (self.run_dir / schema.NAME).exists():
            self._lock.close()
            status = schema.read_results(self.run_dir / schema.NAME).get("status")
            raise FileExistsError(f"{self.run_dir} holds a run already (status {status}): remove "
                                  "the folder to run it again, or give another save_dir")
        # the run's configuration (metadata.json): what analyze.py groups and matches runs by
        config = {**self.factors, "paths": {"output_dir": str(self.run_dir)}}
        self.record = RunRecord(self.run_dir, config, factors=dict(self.factors))
        self.rows: list[dict[str, Any]] = []
        self._training_log = CsvLog(self.run_dir / TRAINING_METRICS, TRAINING_COLUMNS)
        self._tensorboard = SummaryWriter(self.run_dir / schema.ARTIFACTS["tensorboard"])
        self._gpu_log = None
        if torch.cuda.is_available():
            self._gpu_log = CsvLog(self.run_dir / GPU_MEMORY, GPU_MEMORY_COLUMNS)
            torch.cuda.reset_peak_memory_stats()
            self._allocated = torch.cuda.memory_allocated()
        self._ended = False

    def log_training_step(self, epoch: int, step: int, loss: float, learning_rate: float,
                          elapsed_time: float) -> None:
        """One optimizer step: its loss (a number or a 0-d tensor), learning rate, and the
        training time of the run so far in seconds."""
        self._check_open()
        memory = self._memory(epoch, step)
        row = {"epoch": epoch, "step": step, "loss": _number(loss), "lr": _number(learning_rate),
               "lr_text_encoder": None, "elapsed_s": round(_number(elapsed_time), 3),
               "peak_memory_gb": memory.get("peak_gb"), "avg_memory_gb": memory.get("avg_gb"),
               "timestamp": time.time()}
        self.rows.append(row)
        self._training_log.write_rows([row])
        self._tensorboard.add_scalar("train/loss", row["loss"], step)
        self._tensorboard.add_scalar("lr", row["lr"], step)
        for key in ("peak_gb", "avg_gb"):
            if key in memory:
                self._tensorboard.add_scalar(f"memory/{key}", memory[key], step)

    def log_evaluation(self, fvd: float | None = None, lpips: float | None = None,
                       temporal_consistency: float | None = None,
                       inference_time_ms: float | None = None,
                       inference_memory_gb: float | None = None,
                       num_parameters_millions: float | None = None,
                       **more_metrics: float | None) -> None:
        """Metrics of the trained model; None (the default) leaves one out. A key results.json
        declares goes to its section (`val_loss`, `ssim` to eval, `trainable_parameters_millions`
        to model, `best_val_loss` to train); any other is a metric of your own, a number."""
        self._check_open()
        given = {"fvd": fvd, "lpips": lpips, "temporal_consistency": temporal_consistency,
                 "inference_time_ms": inference_time_ms,
                 "inference_memory_gb": inference_memory_gb,
                 "num_parameters_millions": num_parameters_millions, **more_metrics}
        placed: dict[str, dict[str, Any]] = {section: {} for section in (*SECTIONS, "more")}
        for key, value in given.items():
            if value is not None:
                section, value = _place(key, value)
                placed[section][key] = value
        for section in SECTIONS:
            if placed[section]:
                self.record.update(section, placed[section])
        if placed["more"]:
            self.record.add_more_metrics(placed["more"])
        step = self.rows[-1]["step"] if self.rows else 0
        for key, value in {**placed["eval"], **placed["more"]}.items():
            self._tensorboard.add_scalar(f"eval/{key}", value, step)

    def save_results(self) -> dict[str, Any]:
        """End the run as completed; returns its results.json. Metrics that every ended run
        reports and that were not given are null, with the reason."""
        self._check_open()
        evaluation = self.record.results["eval"]
        missing = [metric for metric in schema.AT_END if metric not in evaluation]
        if missing:
            reasons = {**evaluation.get("unavailable", {}), **dict.fromkeys(missing, NOT_GIVEN)}
            self.record.update("eval", {**dict.fromkeys(missing), "unavailable": reasons})
        self._end("completed")
        return self.record.results

    def __enter__(self) -> AblationRunner:
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if self._ended:
            return
        if error is None:
            self.save_results()
        else:  # recorded, and raised on
            self._end("failed", one_line(error),
                      interrupted=isinstance(error, (KeyboardInterrupt, SystemExit)))

    def _end(self, status: str, error: str | None = None, interrupted: bool = False) -> None:
        self._ended = True
        self._training_log.close()
        if self._gpu_log is not None:
            self._gpu_log.close()
        self._tensorboard.close()
        atomic_write_json(self.run_dir / TRAINING_METRICS.replace(".csv", ".json"), self.rows)
        self.record.update("train", self._summary())
        self.record.update_attempt(train_time_s=self.record.results["train"]["time_s"])
        self.record.finish(status, error, interrupted)
        self._lock.close()

    def _summary(self) -> dict[str, Any]:
        """results.json's train section from the logged steps."""
        if not self.rows:
            return {"steps": 0, "epochs": 0}
        last = self.rows[-1]
        peaks = [row["peak_memory_gb"] for row in self.rows if row["peak_memory_gb"] is not None]
        averages = [row["avg_memory_gb"] for row in self.rows if row["avg_memory_gb"] is not None]
        return {"steps": last["step"], "epochs": len({row["epoch"] for row in self.rows}),
                "final_loss": last["loss"], "time_s": last["elapsed_s"],
                "peak_memory_gb": max(peaks) if peaks else None,
                "avg_memory_gb": sum(averages) / len(averages) if averages else None}

    def _memory(self, epoch: int, step: int) -> dict[str, float]:
        """CUDA memory of the step since the last call (none without CUDA): its peak, and the
        mean of the allocated memory at its start and end."""
        if self._gpu_log is None:
            return {}
        allocated = torch.cuda.memory_allocated()
        memory = {"peak_gb": torch.cuda.max_memory_allocated() / GB,
                  "avg_gb": (self._allocated + allocated) / 2 / GB,
                  "allocated_gb": allocated / GB,
                  "reserved_gb": torch.cuda.memory_reserved() / GB}
        torch.cuda.reset_peak_memory_stats()
        self._allocated = allocated
        self._gpu_log.write_rows([{"epoch": epoch, "step": step, "timestamp": time.time(),
                                   **memory}])
        return memory

    def _check_open(self) -> None:
        if self._ended:
            raise RuntimeError(f"the run in {self.run_dir} has ended: start another "
                               "AblationRunner for another run")


def _number(value: Any) -> float:
    """A Python number from a number or a one-element tensor or array."""
    return value.item() if hasattr(value, "item") else value


def _place(key: str, value: Any) -> tuple[str, Any]:
    """(the results.json section a metric goes to, its value), or ValueError naming the
    metric: a key the schema declares must have its type there, any other is a number."""
    value = _number(value)
    for section in SECTIONS:
        declared = schema.json_schema()["properties"][section]["properties"]
        if key in declared:
            wanted = declared[key]
            break
    else:
        section, wanted = "more", {"type": "number"}
    errors = validate(value, wanted, key)
    if errors:
        raise ValueError(f"log_evaluation({key}={value!r}): {errors[0]}")
    return section, value
