"""Training-loss curves: each run's training_metrics.csv, seeds of a group aligned on step."""

from __future__ import annotations

import csv
from dataclasses import dataclass

import numpy as np

from text2sign.analysis.collect import Run
from text2sign.analysis.stats import t_quantile


@dataclass
class Band:
    """Mean loss per step over a group's seeds, and the 95% CI (NaN where one seed has it)."""

    steps: np.ndarray
    mean: np.ndarray
    half_width: np.ndarray


def read_curve(run: Run) -> tuple[np.ndarray, np.ndarray] | None:
    """(steps, loss) from the run's training_metrics.csv; None when missing or unreadable."""
    name = (run.results.get("artifacts") or {}).get("training_metrics", "training_metrics.csv")
    try:
        with open(run.path / name, newline="") as f:
            reader = csv.reader(f)
            header = next(reader)
            step, loss = header.index("step"), header.index("loss")
            rows = [(r[step], r[loss]) for r in reader if len(r) > max(step, loss) and r[loss]]
        values = np.array(rows, dtype=float).reshape(-1, 2)
    except (OSError, StopIteration, ValueError):
        return None
    return (values[:, 0], values[:, 1]) if len(values) else None


def group_band(curves: list[tuple[np.ndarray, np.ndarray]]) -> Band | None:
    if not curves:
        return None
    steps = np.unique(np.concatenate([s for s, _ in curves]))
    table = np.full((len(curves), len(steps)), np.nan)
    for row, (s, loss) in zip(table, curves):
        row[np.searchsorted(steps, s)] = loss  # a step logged twice keeps its last value
    count = (~np.isnan(table)).sum(axis=0)
    mean = np.nansum(table, axis=0) / count
    with np.errstate(divide="ignore", invalid="ignore"):
        var = np.nansum((table - mean) ** 2, axis=0) / (count - 1)
        half = t_quantile(np.maximum(count - 1, 1)) * np.sqrt(var / count)
    return Band(steps, mean, np.where(count >= 2, half, np.nan))
