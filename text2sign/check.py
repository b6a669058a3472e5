"""Is this installation ready for the ablation study? `python -m text2sign.check`

    python -m text2sign.check          # 90 s on 2 busy CPU cores; no GPU needed

1. every option of every config group composes (and the generate and bench configs);
2. every job of the shipped sweeps and presets composes and passes the pre-flight checks, and
   so do `python train.py` and `python train.py -m` here (their output folders, caches);
3. two training steps of each named ablation at scale=tiny (`train.py -m ablation=...`, in a
   temporary directory, while 1 and 2 run) write every file of the run-directory contract,
   valid: results.json against the schema, the CSV logs with their columns, TensorBoard
   events, checkpoints that load.

One line per check, PASS or FAIL; the exit status is 1, naming what failed, when anything does
(the temporary directory is then kept, for a look at its files).
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from text2sign.config import CONF, register_configs
from text2sign.run.checkpointing import read_checkpoint
from text2sign.run.preflight import (
    Preflight,
    PreflightFailed,
    job_problems,
    multirun_config,
    reason,
    sweep_jobs,
)
from text2sign.rundir import schema
from text2sign.rundir.step_logs import (
    GPU_MEMORY,
    GPU_MEMORY_COLUMNS,
    TRAINING_COLUMNS,
    TRAINING_METRICS,
)

ARMS = {"baseline": ("frozen", True), "text_finetuned": ("finetuned", True),
        "no_ema": ("frozen", False)}  # the named ablations: (text_encoder, ema)
STEPS = 2
TRAINING = ["-m", f"ablation={','.join(ARMS)}", "scale=tiny", f"trainer.max_steps={STEPS}"]
# the sweeps the README runs; the presets of conf/experiment/ are added to them
SWEEPS = [["text_encoder=frozen,finetuned", "ema=true,false"], [f"ablation={','.join(ARMS)}"]]


class CheckFailed(Exception):
    """What a check found wrong."""


class Checks:
    """Prints one line per check and remembers what failed."""

    def __init__(self) -> None:
        self.passed, self.failed = 0, []

    def run(self, name: str, check: Callable[[], str | None]) -> None:
        """`check` returns what it found (or None) and raises what is wrong."""
        try:
            found = check()
        except Exception as error:  # noqa: BLE001 - every failure is reported, none ends the rest
            message = str(error) if isinstance(error, CheckFailed) else reason(error)
            self.failed.append(name)
            print(f"FAIL {name}: " + message.strip().replace("\n", "\n     "), flush=True)
            return
        self.passed += 1
        print(f"PASS {name}" + (f": {found}" if found else ""), flush=True)


def expect(condition: Any, problem: str) -> None:
    if not condition:
        raise CheckFailed(problem)


# ------------------------------------------------------------------------ 1, 2: composing
def group_options() -> list[tuple[str, str]]:
    """(group, option) for every option file of the groups train.yaml's defaults list names
    (a group chosen by an interpolation, scale_data, follows scale and data), and of hydra/'s
    own groups (the launchers)."""
    found = []
    for entry in yaml.safe_load((CONF / "train.yaml").read_text())["defaults"]:
        if isinstance(entry, str) or "${" in str(*entry.values()):
            continue
        group = next(iter(entry)).removeprefix("optional ").strip()
        groups = [p.relative_to(CONF).as_posix() for p in (CONF / group).iterdir()
                  if p.is_dir()] if group == "hydra" else [group]
        found += [(g, p.stem) for g in groups for p in sorted((CONF / g).glob("*.yaml"))]
    return found


def configs() -> list[tuple[str, list[str]]]:
    """(config name, overrides) of every config to compose: train.yaml with each group
    option, and the configs of generate and bench."""
    return [("train", [f"{group}={option}"]) for group, option in group_options()] + [
        ("generate", []), ("bench", [])]


def sweeps() -> list[list[str]]:
    """The overrides of the README's sweeps and of each preset of conf/experiment/."""
    return [*SWEEPS, *([f"experiment={option}"] for group, option in group_options()
                       if group == "experiment")]


def check_configs(checks: Checks, configs: list[tuple[str, list[str]]],
                  sweeps: list[list[str]]) -> None:
    """Compose each config and each sweep's jobs (call it where Hydra is initialised)."""
    for config_name, overrides in configs:
        checks.run(f"config {' '.join(overrides) or config_name + '.yaml'}",
                   lambda name=config_name, overrides=overrides: _compose(name, overrides))
    for overrides in sweeps:
        checks.run(f"sweep {' '.join(overrides)}", lambda overrides=overrides: _sweep(overrides))


def check_here(checks: Checks) -> None:
    """The pre-flight of a plain run and sweep in this folder, with this environment, where
    training would make them (call it where Hydra is initialised): the training of check 3
    runs in a temporary folder and would not see an output folder that cannot be written."""
    single = compose("train", return_hydra_config=True)
    checks.run("here: python train.py", lambda: _preflight(
        lambda: Preflight().on_run_start(single), single.hydra.run.dir))
    sweep = multirun_config([])
    checks.run("here: python train.py -m", lambda: _preflight(
        lambda: Preflight().on_multirun_start(sweep), sweep.hydra.sweep.dir))


def _preflight(start: Callable[[], None], out: str) -> str:
    try:
        start()
    except PreflightFailed as failed:  # a SystemExit: not what Checks.run catches
        raise CheckFailed(str(failed)) from None
    return f"the pre-flight passes; it would write {out}"


def _compose(config_name: str, overrides: list[str]) -> None:
    compose(config_name, overrides=overrides, return_hydra_config=True)


def _sweep(overrides: list[str]) -> str:
    """Every job composes and passes the pre-flight checks, as a multirun checks them."""
    config = multirun_config(overrides)
    loader = GlobalHydra.instance().config_loader()
    jobs = sweep_jobs(config, loader)
    problems = job_problems(config, jobs, loader)
    expect(not problems, "\n".join(problems))
    return f"{len(jobs)} jobs compose and pass the pre-flight checks"


# ------------------------------------------------------------------- 3: the run directory
def start_training(out: Path) -> subprocess.Popen:
    """`train.py -m ablation=... scale=tiny trainer.max_steps=2` in `out`/sweep, its output in
    `out`/train_output.txt; it runs while the configs are composed."""
    command = [sys.executable, "-m", "text2sign.cli.train", *TRAINING,
               f"hydra.sweep.dir={out / 'sweep'}"]
    env = {**os.environ, "TEXT2SIGN_CACHE": str(out / "cache")}  # nothing written outside `out`
    with open(out / "train_output.txt", "w") as output:
        return subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT, env=env)


def check_training(checks: Checks, out: Path, training: subprocess.Popen) -> None:
    """The training ended well, and every job wrote every file of the contract, valid."""
    status, log = training.wait(), out / "train_output.txt"

    def trained() -> str:
        tail = "".join(log.read_text().splitlines(keepends=True)[-15:])
        expect(status == 0, f"exit status {status}; the end of its output ({log}):\n{tail}")
        return f"python train.py {' '.join(TRAINING)}: {len(ARMS)} jobs"

    checks.run("training", trained)
    for arm in ARMS:
        job = out / "sweep" / f"ablation-{arm}+scale-tiny+trainer.max_steps-{STEPS}"
        for name, check in CONTRACT.items():
            checks.run(f"{arm}: {name}", lambda check=check: check(job, arm))


def _results(job: Path, arm: str) -> str:
    results = schema.read_results(job / schema.NAME)
    problems = schema.problems(results)
    expect(not problems, "; ".join(problems))
    expect(results["status"] == "completed", f"status {results['status']}: {results['error']}")
    text_encoder, ema = ARMS[arm]
    factors = results["factors"]
    expect((factors.get("ablation"), factors.get("text_encoder"), factors.get("ema")) ==
           (arm, text_encoder, ema), f"factors {factors} are not those of ablation={arm}")
    expect(results["train"]["steps"] == STEPS, f"train.steps is {results['train']['steps']}")
    expect(results["eval"]["weights"] == ("ema" if ema else "raw"),
           f"eval.weights is {results['eval']['weights']}")
    return (f"completed, follows the schema; text_encoder={text_encoder} ema={ema}, "
            f"{STEPS} steps")


def _metadata(job: Path, arm: str) -> str:
    metadata = json.loads((job / "metadata.json").read_text())
    expect({"config", "provenance", "model", "train"} <= set(metadata),
           f"metadata.json holds {sorted(metadata)}")
    expect(metadata["config"]["trainer"]["max_steps"] == STEPS, "not the config that ran")
    return "config, provenance, model, train"


def _csv(name: str, columns: tuple[str, ...]) -> Callable[[Path, str], str]:
    def check(job: Path, arm: str) -> str:
        with open(job / name, newline="") as f:
            rows = list(csv.DictReader(f))
        expect(rows and tuple(rows[0]) == columns, f"columns {list(rows[0]) if rows else []}, "
               f"expected {list(columns)}")
        steps = [int(row["step"]) for row in rows]
        expect(steps == list(range(1, STEPS + 1)), f"steps {steps}")
        return f"{len(columns)} columns, steps 1-{STEPS}"
    return check


def _training_json(job: Path, arm: str) -> str:
    rows = json.loads((job / TRAINING_METRICS.replace(".csv", ".json")).read_text())
    expect([row.get("step") for row in rows] == list(range(1, STEPS + 1)),
           f"{len(rows)} rows")
    return f"{len(rows)} steps"


def _evaluation(job: Path, arm: str) -> str:
    history = json.loads((job / "evaluation_metrics.json").read_text())
    expect(history and history[-1]["step"] == STEPS, f"no evaluation at step {STEPS}")
    with open(job / "evaluation_metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    expect(len(rows) == len(history), "the CSV and the JSON differ")
    return f"{len(history[-1])} entries, CSV and JSON"


def _json(name: str, keys: set[str]) -> Callable[[Path, str], str]:
    def check(job: Path, arm: str) -> str:
        data = json.loads((job / name).read_text())
        expect(keys <= set(data), f"holds {sorted(data)}, expected {sorted(keys)}")
        return ", ".join(sorted(keys))
    return check


def _samples(job: Path, arm: str) -> str:
    index = json.loads((job / "samples" / "index.json").read_text())
    files = [entry[kind] for entry in index["prompts"] for kind in ("gif", "mp4")]
    missing = [name for name in [*files, index["grid"]] if not (job / "samples" / name).is_file()]
    expect(not missing, f"missing {missing}")
    return f"{len(index['prompts'])} prompts, grid"


def _checkpoints(job: Path, arm: str) -> str:
    for name in ("last", "best", "final"):
        checkpoint = read_checkpoint(job / "checkpoints" / f"{name}.ckpt")
        expect(checkpoint["global_step"] == STEPS,
               f"{name}.ckpt is at step {checkpoint['global_step']}")
    return f"last, best and final load, at step {STEPS}"


def _tensorboard(job: Path, arm: str) -> str:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(job / schema.ARTIFACTS["tensorboard"]))
    scalars = set(events.Reload().Tags()["scalars"])
    wanted = {"train/loss", "val/loss", "lr", "eval/temporal_consistency"}
    expect(wanted <= scalars, f"scalars {sorted(scalars)} lack {sorted(wanted - scalars)}")
    return ", ".join(sorted(wanted))


def _log(job: Path, arm: str) -> str:
    expect((job / ".hydra" / "config.yaml").is_file(), ".hydra/config.yaml is missing")
    last = (job / "train.log").read_text().strip().splitlines()[-1]
    expect("run completed:" in last, f"train.log ends with {last!r}")
    return "ends with the run's status"


CONTRACT: dict[str, Callable[[Path, str], str]] = {  # docs/outputs.md
    "results.json": _results,
    "metadata.json": _metadata,
    "training_metrics.csv": _csv(TRAINING_METRICS, TRAINING_COLUMNS),
    "training_metrics.json": _training_json,
    "gpu_memory.csv": _csv(GPU_MEMORY, GPU_MEMORY_COLUMNS),
    "data_report.json": _json("data_report.json", {"name", "splits", "skipped"}),
    "evaluation_metrics.json/.csv": _evaluation,
    "samples/": _samples,
    "checkpoints/": _checkpoints,
    "tensorboard/": _tensorboard,
    "csv/version_0/metrics.csv": lambda job, arm: _exists(job / "csv" / "version_0" /
                                                          "metrics.csv"),
    ".hydra/, train.log": _log,
}


def _exists(path: Path) -> str:
    expect(path.is_file() and path.stat().st_size, f"{path} is missing or empty")
    return "written"


def main() -> int:
    start = time.perf_counter()
    checks = Checks()
    out = Path(tempfile.mkdtemp(prefix="text2sign-check-"))
    training = start_training(out)
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        check_configs(checks, configs(), sweeps())
        check_here(checks)
    check_training(checks, out, training)
    took = f"in {time.perf_counter() - start:.0f} s"
    if checks.failed:
        print(f"{len(checks.failed)} of {len(checks.failed) + checks.passed} checks FAILED "
              f"{took}: {', '.join(checks.failed)}\nthe runs are kept in {out}", file=sys.stderr)
        return 1
    shutil.rmtree(out)
    print(f"all {checks.passed} checks passed {took}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
