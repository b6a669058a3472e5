"""The figures of a `scale=tiny` run at a fixed seed, bit for bit, as the code of the commit
named in golden_tiny_run.json computed them: a refactoring that changes what is trained or
measured fails here. Timings and the process's memory are left out (they are the machine's),
and of eval.unavailable only the names of the metrics (the reasons' wording is the machine's and
may improve)."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from conftest import TINY, compose_config

from text2sign.run.job import run

GOLDEN = Path(__file__).with_name("golden_tiny_run.json")
OVERRIDES = [*TINY, "seed=0"]
MACHINE = {"time_s", "clips_per_s", "inference_time_ms", "eval_time_s", "peak_rss_gb"}


def figures(run_dir: Path) -> dict[str, Any]:
    """Every figure of the run but its timings: the loss curve and what results.json says."""
    results = json.loads((run_dir / "results.json").read_text())
    with open(run_dir / "training_metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    evaluation = {k: v for k, v in results["eval"].items() if k not in MACHINE}
    evaluation["retrieval"] = {k: v for k, v in evaluation["retrieval"].items() if k not in MACHINE}
    evaluation["unavailable"] = sorted(evaluation["unavailable"])  # which; the wording may change
    return {
        "steps": [int(row["step"]) for row in rows],
        "loss": [float(row["loss"]) for row in rows],
        "lr": [float(row["lr"]) for row in rows],
        "train": {k: v for k, v in results["train"].items() if k not in MACHINE},
        "model": results["model"],
        "data": results["data"],
        "eval": evaluation,
    }


def test_a_tiny_run_computes_what_it_computed_before(tmp_path):
    golden = json.loads(GOLDEN.read_text())
    run(compose_config(OVERRIDES, tmp_path))
    assert figures(tmp_path) == golden["figures"]
