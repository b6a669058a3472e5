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
(text2sign/rundir/: record.py, through the results.json schema; files.py), so analyze.py
reads these runs like train.py's and mixes both: the factors are `ablation` (config_name),
`scale` (experiment_scale), `seed` and the `factors` given.
"""

from __future__ import annotations

import math
import numbers
import re
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import torch
from torch.utils.tensorboard import SummaryWriter

from text2sign.config import job_dirname
from text2sign.rundir import schema
from text2sign.rundir.factors import parse_value
from text2sign.rundir.files import CsvLog, atomic_write_json
from text2sign.rundir.identity import RUN_LOCAL
from text2sign.rundir.json_schema import validate
from text2sign.rundir.lock import hold_run_directory
from text2sign.rundir.record import RunRecord, one_line
from text2sign.rundir.step_logs import (
    GB,
    GPU_MEMORY,
    GPU_MEMORY_COLUMNS,
    TRAINING_COLUMNS,
    TRAINING_METRICS,
)

NAMED = ("ablation", "scale", "seed")  # factors given by the constructor's own arguments
DIVERGED = "diverged"  # a loss or metric that is no number: the run diverged
KEY = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", re.ASCII)  # a factor's name: a config key
NOT_GIVEN = "not given to AblationRunner.log_evaluation"
SECTIONS = ("eval", "model", "train")  # where log_evaluation looks a declared key up, in order


class AblationRunner:
    """Records one run of a user's training loop in `save_dir`/<its factors as a sweep names a
    job>/, e.g. `ablation-baseline+scale-small+seed-0`. Used as a context manager, a run that
    raises is recorded as failed with the reason, and one that ends is saved."""

    def __init__(self, config_name: str, save_dir: str | Path, experiment_scale: str = "small",
                 seed: int = 0, factors: dict[str, Any] | None = None):
        self.factors = _checked_factors(config_name, experiment_scale, seed, factors)
        overrides = ",".join(f"{key}={_override_value(value)}"
                             for key, value in sorted(self.factors.items()))
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

    def log_training_step(self, epoch: int, step: int, loss: float | str, learning_rate: float,
                          elapsed_time: float) -> None:
        """One optimizer step: its loss (a number, a 0-d tensor, or "diverged"), learning rate,
        and the training time of the run so far in seconds. A value that cannot be recorded
        (a NaN loss, a step that does not follow the last) raises ValueError at once."""
        self._check_open()
        last = self.rows[-1] if self.rows else {"epoch": 0, "step": 0, "elapsed_s": 0}
        epoch = _count("epoch", epoch, last["epoch"], "the last one logged")
        step = _count("step", step, last["step"] + 1, "the step after the last one logged")
        loss = _finite("loss", loss, diverged_ok=True)
        learning_rate = _finite("learning_rate", learning_rate, minimum=0)
        elapsed = _finite("elapsed_time", elapsed_time, minimum=last["elapsed_s"])
        memory = self._memory(epoch, step)
        row = {"epoch": epoch, "step": step, "loss": None if loss == DIVERGED else loss,
               "lr": learning_rate, "lr_text_encoder": None, "elapsed_s": round(elapsed, 3),
               "peak_memory_gb": memory.get("peak_gb"), "avg_memory_gb": memory.get("avg_gb"),
               "timestamp": time.time()}
        self.rows.append(row)
        self._training_log.write_rows([row])
        if row["loss"] is not None:
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
        placed = {section: {} for section in (*SECTIONS, "more")}
        diverged = {section: {} for section in placed}
        for key, value in given.items():
            if value is None:
                continue
            section, value = _place(key, value)
            if value == DIVERGED:
                diverged[section][key] = f"{DIVERGED} (log_evaluation)"
            else:
                placed[section][key] = value
        for section in SECTIONS:
            if placed[section]:
                self.record.update(section, placed[section])
            if diverged[section]:
                self.record.diverge(section, diverged[section])
        if placed["more"] or diverged["more"]:
            self.record.add_more_metrics(placed["more"], diverged["more"])
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
        if self.rows and self.rows[-1]["loss"] is None:  # the run ended with a diverged loss
            step = self.rows[-1]["step"]
            self.record.diverge("train", {"final_loss": f"{DIVERGED} at step {step} "
                                                        "(log_training_step)"})
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


def _checked_factors(config_name: str, experiment_scale: str, seed: int,
                     factors: dict[str, Any] | None) -> dict[str, Any]:
    """The run's factors, or the error naming the argument that cannot be one: a name that
    is not a config key or that the constructor's own arguments give, a value that is not a
    str, finite number, bool or None."""
    for name, value in (("config_name", config_name), ("experiment_scale", experiment_scale)):
        if not isinstance(value, str) or not value:
            raise TypeError(f"AblationRunner({name}={value!r}): {name} must be a non-empty str")
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"AblationRunner(seed={seed!r}): the seed must be an int, e.g. seed=0")
    factors = dict(factors or {})
    named = sorted(set(NAMED) & set(factors))
    if named:
        raise ValueError(f"factors={factors}: {', '.join(named)} come from config_name, "
                         "experiment_scale and seed; leave them out of factors")
    for key, value in factors.items():
        if not isinstance(key, str) or not KEY.fullmatch(key) or key.split(".")[0] in RUN_LOCAL:
            raise ValueError(f"factors[{key!r}]: a factor's name is a config key (letters, "
                             "digits, _ and dots, e.g. 'ema' or 'optimizer.lr'), and not one of "
                             f"{', '.join(RUN_LOCAL)} (they say where a run ran)")
        if not isinstance(value, (str, int, float, bool, type(None))) or (
                isinstance(value, float) and not math.isfinite(value)):
            raise TypeError(f"factors[{key!r}]={value!r}: a factor is a str, finite number, "
                            "bool or None")
    return {"ablation": config_name, "scale": experiment_scale, **factors, "seed": int(seed)}


def _override_value(value: Any) -> str:
    """A factor's value as a sweep's override writes it, one text per value: a str that
    would read as another type (`True`, `1`, `null`) or holds `=` or `,` is quoted (so its
    directory gets a hash of its own, see config.job_dirname)."""
    if value is None:
        return "null"
    if isinstance(value, str) and (parse_value(value) != value or {"=", ","} & set(value)):
        return repr(value)
    return str(value)


def _count(name: str, value: Any, minimum: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"log_training_step({name}={value!r}): {name} must be an int >= "
                         f"{minimum} ({what})")
    return int(value)


def _finite(name: str, value: Any, minimum: float | None = None,
            diverged_ok: bool = False) -> float | str:
    """A finite number (from a number or a one-element tensor or array), or DIVERGED where
    `diverged_ok`; ValueError naming the argument otherwise."""
    if diverged_ok and isinstance(value, str) and value == DIVERGED:
        return value
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(
            value) or (minimum is not None and value < minimum):
        wanted = "a finite number" + (f" >= {minimum}" if minimum is not None else "")
        hint = f', or "{DIVERGED}" for a run that diverged' if diverged_ok else ""
        raise ValueError(f"log_training_step({name}={value!r}): {name} must be {wanted}{hint}")
    return float(value)


def _place(key: str, value: Any) -> tuple[str, Any]:
    """(the results.json section a metric goes to, its value: a number or DIVERGED), or
    ValueError naming the metric: a key the schema declares must have its type there, any
    other is a finite number; either may be "diverged"."""
    for section in SECTIONS:
        declared = schema.json_schema()["properties"][section]["properties"]
        if key in declared:
            wanted = declared[key]
            break
    else:
        section, wanted = "more", {"type": "number"}
    if isinstance(value, str) and value == DIVERGED and "number" in str(wanted.get("type")):
        return section, value
    value = value.item() if hasattr(value, "item") else value
    errors = validate(value, wanted, key)
    if errors:
        raise ValueError(f"log_evaluation({key}={value!r}): {errors[0]}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"log_evaluation({key}={value!r}): {key} must be a finite number, or "
                         f'"{DIVERGED}" for a run that diverged')
    return section, value
