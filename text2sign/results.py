"""results.json (schema_version 1) and metadata.json: the run directory's summary files.

results.json is the one file analyze.py needs. It is written atomically when the run starts
(status "running") and again when it ends ("completed" or "failed" with the reason), so a
crashed run still says what happened.
"""

from __future__ import annotations

import platform
import shlex
import subprocess
import sys
import time
from datetime import datetime, timezone
from enum import Enum
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf
from torch import nn

from text2sign.faults import kill_point
from text2sign.files import atomic_write_json

SCHEMA_VERSION = 1
PROJECT_ROOT = Path(__file__).resolve().parents[1]
# Always present in results.json: null, with the reason, when the evaluation did not run.
EVAL_METRICS = ("fvd", "lpips", "temporal_consistency", "inference_time_ms", "inference_memory_gb")
ARTIFACTS = {
    "last_checkpoint": "checkpoints/last.ckpt",
    "best_checkpoint": "checkpoints/best.ckpt",
    "final_checkpoint": "checkpoints/final.ckpt",
    "training_metrics": "training_metrics.csv",
    "gpu_memory": "gpu_memory.csv",
    "metadata": "metadata.json",
    "data_report": "data_report.json",
    "tensorboard": "tensorboard",
}


# Overrides that say how to run, not what is compared: never a factor of the analysis.
NOT_FACTORS = {"retry_failed"}


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def plain(value: Any) -> Any:
    """A config value as plain JSON data (containers, enums)."""
    if isinstance(value, (DictConfig,)) or OmegaConf.is_list(value):
        return OmegaConf.to_container(value, resolve=True, enum_to_str=True)
    return value.value if isinstance(value, Enum) else value


def run_factors(cfg: DictConfig) -> dict[str, Any]:
    """Every group choice, `ema`, `seed` and every overridden key, from Hydra's runtime."""
    factors: dict[str, Any] = {}
    if HydraConfig.initialized():
        hydra_cfg = HydraConfig.get()
        factors.update({group: choice for group, choice in hydra_cfg.runtime.choices.items()
                        if group.split("/")[0] != "hydra" and choice is not None})
        for override in OverridesParser.create().parse_overrides(list(hydra_cfg.overrides.task)):
            key = override.key_or_group
            if key not in factors and key not in NOT_FACTORS and not override.is_delete():
                factors[key] = plain(OmegaConf.select(cfg, key))
    factors.update(ema=cfg.ema, seed=cfg.seed)
    return factors


def parameter_counts(module: nn.Module) -> dict[str, float]:
    total = sum(p.numel() for p in module.parameters())
    trainable = sum(p.numel() for p in module.parameters() if p.requires_grad)
    return {
        "num_parameters_millions": round(total / 1e6, 4),
        "trainable_parameters_millions": round(trainable / 1e6, 4),
    }


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def provenance() -> dict[str, Any]:
    commit = _git("rev-parse", "HEAD")
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    overrides = list(HydraConfig.get().overrides.task) if HydraConfig.initialized() else []
    return {
        "git_commit": commit,
        "git_dirty": None if commit is None or dirty is None else bool(dirty),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu",
        "hostname": platform.node(),
        "started_at": now_iso(),
        "finished_at": None,
        "command": " ".join(shlex.quote(a) for a in sys.argv),
        "overrides": overrides,
    }


def one_line(error: BaseException) -> str:
    """The reason recorded for a failed run; Hydra's instantiation wrapper is unwrapped."""
    if isinstance(error, InstantiationException) and error.__cause__ is not None:
        error = error.__cause__
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")


class RunRecord:
    """The results.json of one run, rewritten atomically at every update.

    `provenance.attempts` lists every attempt at the run (an interrupted or killed run is
    resumed by another): its start and end, status, training time, the checkpoint it resumed
    from and notes such as checkpoints passed over. `train.time_s` is their training time summed;
    `wall_s`, an attempt's wall time from its start to its end (null for a killed one), summed
    in `provenance.wall_s` (null unless every attempt's is known).
    """

    def __init__(self, run_dir: str | Path, cfg: DictConfig, attempt: int = 1, write: bool = True,
                 earlier: Sequence[dict[str, Any]] = (), resumed_from: str | None = None,
                 notes: Sequence[str] = (), factors: dict[str, Any] | None = None):
        self.run_dir, self.write = Path(run_dir), write  # write=False: a DDP rank other than 0
        about = provenance()
        self.started = time.perf_counter()
        self.attempt = {"attempt": attempt, "status": "running", "started_at": about["started_at"],
                        "finished_at": None, "train_time_s": None, "wall_s": None,
                        "resumed_from": resumed_from, "notes": list(notes), "error": None}
        self.earlier_train_time_s = sum(a.get("train_time_s") or 0.0 for a in earlier)
        self.results: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "status": "running",
            "error": None,
            "interrupted": False,
            "factors": run_factors(cfg) if factors is None else factors,
            "train": {**dict.fromkeys(("steps", "epochs", "final_loss", "best_val_loss", "time_s",
                                       "peak_memory_gb", "avg_memory_gb", "clips_per_s",
                                       "skipped_steps")),
                      "time_s": round(self.earlier_train_time_s, 3)},
            "model": dict.fromkeys(("num_parameters_millions", "trainable_parameters_millions")),
            "data": dict.fromkeys(("name", "num_train", "num_val", "num_skipped", "num_padded")),
            "eval": {"weights": "ema" if cfg.ema else "raw"},
            "provenance": {**about, "wall_s": None, "attempt": attempt,
                           "attempts": [*earlier, self.attempt]},
            "artifacts": {},
        }
        self.metadata = {
            "config": plain(cfg),
            "provenance": self.results["provenance"],
        }
        self._write()

    def update(self, section: str, values: dict[str, Any]) -> None:
        self.results[section].update(values)
        self._write()

    def update_attempt(self, **values: Any) -> None:
        """This attempt's entry of provenance.attempts (e.g. its train_time_s)."""
        self.attempt.update(values)
        self._write()

    def finish(self, status: str, error: str | None = None, interrupted: bool = False) -> None:
        """`interrupted`: stopped from outside (Ctrl+C, SIGTERM, preemption): resumable."""
        self.results["status"], self.results["error"] = status, error
        self.results["interrupted"] = interrupted
        self.results["provenance"]["finished_at"] = now_iso()
        self.attempt.update(status="interrupted" if interrupted else status, error=error,
                            finished_at=self.results["provenance"]["finished_at"],
                            wall_s=round(time.perf_counter() - self.started, 3))
        walls = [a.get("wall_s") for a in self.results["provenance"]["attempts"]]
        self.results["provenance"]["wall_s"] = (None if None in walls
                                                else round(sum(walls), 3))
        evaluation = self.results["eval"]
        unavailable = evaluation.setdefault("unavailable", {})
        not_run = unavailable.get("evaluation", "the run ended before its evaluation")
        for metric in EVAL_METRICS:
            if metric not in evaluation:
                evaluation[metric] = None
                unavailable[metric] = f"not evaluated: {not_run}"
        self.results["artifacts"] = {name: rel for name, rel in ARTIFACTS.items()
                                     if (self.run_dir / rel).exists()}
        kill_point("finish")
        self._write()

    def _write(self) -> None:
        if not self.write:
            return
        self.metadata["model"] = self.results["model"]
        self.metadata["train"] = self.results["train"]
        atomic_write_json(self.run_dir / "metadata.json", self.metadata)
        atomic_write_json(self.run_dir / "results.json", self.results)
