"""results.json and metadata.json: the run directory's summary files, written as the run goes.

results.json (its schema: text2sign/rundir/schema.py) is the one file analyze.py needs. It is written
atomically when the run starts (status "running") and again when it ends ("completed" or
"failed" with the reason), so a crashed run still says what happened.
"""

from __future__ import annotations

import math
import platform
import subprocess
import time
from collections.abc import Sequence
from datetime import datetime, timezone
from enum import Enum
from pathlib import Path
from typing import Any

from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf

from text2sign.rundir import schema
from text2sign.rundir.factors import HydraRuntime, run_factors
from text2sign.rundir.faults import kill_point
from text2sign.rundir.files import atomic_write_json
from text2sign.rundir.scheduler import command, scheduler

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def plain(value: Any) -> Any:
    """A config value as plain JSON data (containers, enums)."""
    if isinstance(value, (DictConfig,)) or OmegaConf.is_list(value):
        return OmegaConf.to_container(value, resolve=True, enum_to_str=True)
    return value.value if isinstance(value, Enum) else value


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=PROJECT_ROOT, capture_output=True, text=True,
                             timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def provenance(runtime: HydraRuntime) -> dict[str, Any]:
    commit = _git("rev-parse", "HEAD")
    dirty = _git("status", "--porcelain", "--untracked-files=no")
    return {
        "git_commit": commit,
        "git_dirty": None if commit is None or dirty is None else bool(dirty),
        **_torch_facts(),
        "python": platform.python_version(),
        "hostname": platform.node(),
        "started_at": now_iso(),
        "finished_at": None,
        "command": command(),
        "scheduler": scheduler(),
        "overrides": list(runtime.overrides),
    }


def _torch_facts() -> dict[str, str]:
    """torch's version and the device it computes on. Imported here, by the producer that
    writes a record (torch is loaded by then), so that a reader of run directories needs no
    torch."""
    import torch
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "cpu"
    return {"torch": torch.__version__, "device": device}


def one_line(error: BaseException) -> str:
    """The reason recorded for a failed run; Hydra's instantiation wrapper is unwrapped."""
    if isinstance(error, InstantiationException) and error.__cause__ is not None:
        error = error.__cause__
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")


def _diverged(what: str) -> str:
    """eval.unavailable's reason for a metric that diverged (`what` it was: nan, inf, ...)."""
    return what if what.startswith("diverged") else f"diverged: it was {what}, not a finite number"


class RunRecord:
    """The results.json of one run, rewritten atomically at every update.

    `provenance.attempts` lists every attempt at the run (an interrupted or killed run is
    resumed by another): its start and end, status, training time, the checkpoint it resumed
    from and notes such as checkpoints passed over. `train.time_s` is their training time summed;
    `wall_s`, an attempt's wall time from its start to its end (null for a killed one), summed
    in `provenance.wall_s` (null unless every attempt's is known).
    """

    def __init__(self, run_dir: str | Path, cfg: DictConfig | dict[str, Any], attempt: int = 1,
                 write: bool = True, earlier: Sequence[dict[str, Any]] = (),
                 resumed_from: str | None = None, notes: Sequence[str] = (),
                 runtime: HydraRuntime = HydraRuntime(), factors: dict[str, Any] | None = None):
        self.run_dir, self.write = Path(run_dir), write  # write=False: a DDP rank other than 0
        about = provenance(runtime)
        self.started = time.perf_counter()
        self.attempt = {**schema.empty(schema.Attempt), "attempt": attempt, "status": "running",
                        "started_at": about["started_at"], "resumed_from": resumed_from,
                        "notes": list(notes)}
        self.earlier_train_time_s = sum(a.get("train_time_s") or 0.0 for a in earlier)
        config = plain(cfg)
        self.results: dict[str, Any] = {
            "schema_version": schema.SCHEMA_VERSION,
            "status": "running",
            "error": None,
            "interrupted": False,
            "diverged": {},
            "factors": run_factors(runtime, config) if factors is None else factors,
            "train": {**schema.empty(schema.Train), "time_s": round(self.earlier_train_time_s, 3)},
            "model": schema.empty(schema.Model),
            "data": schema.empty(schema.Data),
            # the weights the run reports, decided here once: samples and evaluation read it
            "eval": {"weights": "ema" if cfg.get("ema") else "raw"},
            "provenance": {**about, "wall_s": None, "attempt": attempt,
                           "attempts": [*earlier, self.attempt]},
            "artifacts": {},
        }
        self.metadata = {
            "config": config,
            "provenance": self.results["provenance"],
        }
        self._write()

    def update(self, section: str, values: dict[str, Any]) -> None:
        """Set keys of `section`; a key the schema does not declare, or a value of another
        type, raises SchemaError and changes nothing. A NaN or infinite number is recorded as
        null, and what it was under `diverged` (strict JSON has neither)."""
        for key in values:
            schema.declared(schema.SECTIONS[section], key)
        self._set(section, values)

    def add_more_metrics(self, values: dict[str, float | None],
                         diverged: dict[str, str] | None = None) -> None:
        """eval metrics the schema does not declare (a user's own loop), each a number or
        null; listed in eval.more_metrics. `diverged`: those that diverged, with what they
        were (null)."""
        listed = sorted({*self.results["eval"].get("more_metrics", []), *values, *(diverged or {})})
        self._set("eval", {**values, "more_metrics": listed}, diverged)

    def diverge(self, section: str, what: dict[str, str]) -> None:
        """Record keys of `section` as diverged: null, with what each was (e.g. the loss a
        user's loop reports as diverged)."""
        self._set(section, {}, what)

    def _set(self, section: str, values: dict[str, Any],
             diverged: dict[str, str] | None = None) -> None:
        diverged = {**(diverged or {}), **{key: str(value) for key, value in values.items()
                                           if isinstance(value, float) and not math.isfinite(value)}}
        before = {name: self.results[name] for name in (section, "diverged")}
        gone = {f"{section}.{key}" for key, value in values.items()  # measured again
                if value is not None} & before["diverged"].keys()
        new = {**before[section], **values, **dict.fromkeys(diverged)}
        if section == "eval" and (diverged or gone):
            reasons = {k: v for k, v in new.get("unavailable", {}).items()
                       if f"eval.{k}" not in gone}
            new["unavailable"] = {**reasons, **{key: _diverged(what) for key, what in diverged.items()}}
        self.results[section] = new  # new objects: a refused value leaves the old ones
        self.results["diverged"] = {
            **{k: v for k, v in before["diverged"].items() if k not in gone},
            **{f"{section}.{key}": what for key, what in diverged.items()}}
        try:
            self._write()
        except schema.SchemaError:
            self.results.update(before)
            raise

    def describe(self, key: str, value: Any) -> None:
        """Add `key` to metadata.json (what the run is made of, e.g. its parameter groups)."""
        self.metadata[key] = value
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
        for metric in schema.AT_END:
            if metric not in evaluation:
                evaluation[metric] = None
                unavailable[metric] = f"not evaluated: {not_run}"
        self.results["artifacts"] = {name: rel for name, rel in schema.ARTIFACTS.items()
                                     if (self.run_dir / rel).exists()}
        kill_point("finish")
        self._write()

    def _write(self) -> None:
        if not self.write:
            return
        schema.write_results(self.run_dir, self.results)  # first: it checks the record
        self.metadata["model"] = self.results["model"]
        self.metadata["train"] = self.results["train"]
        atomic_write_json(self.run_dir / schema.ARTIFACTS["metadata"], self.metadata)
