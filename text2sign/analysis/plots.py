"""PNG plots, one figure per kind: loss curves, metric bars, quality vs cost, GPU memory, and
one per numeric factor: each quality metric against the factor's value.

Figures are built with matplotlib's object API (no pyplot, no global backend state) and
rendered by Agg, so it runs headless.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from text2sign.analysis.curves import group_band, read_curve
from text2sign.analysis.levels import Level
from text2sign.analysis.metrics import NO_GPU, Metric
from text2sign.analysis.study import Study

MAX_POINTS = 2000  # a 100k-step curve is thinned for drawing; the statistics use every step
MEMORY = ("peak_memory_gb", "avg_memory_gb", "inference_memory_gb")
DIRECTION = {1: " (higher is better)", -1: " (lower is better)", 0: ""}


def training_loss(study: Study, out: Path) -> Path | str:
    fig = Figure(figsize=(7, 4.5), layout="constrained")
    ax = fig.add_subplot()
    drawn, lowest = 0, np.inf
    for i, group in enumerate(study.groups):
        band = group_band([curve for run in group.completed if (curve := read_curve(run))])
        if band is None:
            continue
        keep = np.unique(np.linspace(0, len(band.steps) - 1, MAX_POINTS).astype(int))
        steps, mean, half = band.steps[keep], band.mean[keep], band.half_width[keep]
        ax.plot(steps, mean, color=f"C{i % 10}", lw=1.2,
                label=f"{i + 1}: {study.label(group)} (n={group.size})")
        ax.fill_between(steps, mean - half, mean + half, color=f"C{i % 10}", alpha=0.2, lw=0)
        drawn, lowest = drawn + 1, min(lowest, np.nanmin(mean - np.nan_to_num(half)))
    if not drawn:
        return "no training_metrics.csv with losses in any completed run"
    if lowest > 0:  # losses span decades
        ax.set_yscale("log")
    ax.set(xlabel="step", ylabel="training loss", title="Training loss (mean, 95% CI over seeds)")
    ax.legend(fontsize="small")
    return _save(fig, out / "training_loss.png")


def metric_bars(study: Study, out: Path) -> Path | str:
    shown = [metric for metric in study.metrics if study.has_numbers(metric)]
    if not shown:
        return "no metric has a number in any completed run"
    return _bar_grid(study, shown, "Metrics per group (mean, 95% CI over seeds)",
                     out / "metric_bars.png")


def quality_vs_cost(study: Study, out: Path) -> Path | str:
    cost = study.metric("train_time_h")
    if study.quality is None or cost is None or not study.has_numbers(cost):
        return "needs a quality metric and train_time_h"
    fig = Figure(figsize=(6.5, 4.5), layout="constrained")
    ax = fig.add_subplot()
    pairs = zip(study.summaries[cost.name], study.summaries[study.quality.name])
    for i, (group, (x, y)) in enumerate(zip(study.groups, pairs)):
        ax.errorbar(x.mean, y.mean, xerr=x.ci95, yerr=y.ci95, fmt="o", capsize=3,
                    color=f"C{i % 10}", label=f"{i + 1}: {study.label(group)}")
    ax.set(xlabel="training time (h)", ylabel=study.quality.name + DIRECTION[
        study.quality.direction], title="Quality against training cost")
    ax.legend(fontsize="small")
    return _save(fig, out / "quality_vs_cost.png")


def gpu_memory(study: Study, out: Path) -> Path | str:
    shown = [m for m in study.metrics if m.name in MEMORY and study.has_numbers(m)]
    if not shown:
        return NO_GPU
    return _bar_grid(study, shown, "GPU memory per group (GB; mean, 95% CI over seeds)",
                     out / "gpu_memory.png")


def numeric_factors(study: Study, out: Path) -> list[Path] | str:
    """One PNG per factor that takes numbers (a learning rate, a decay, a width): each quality
    metric against the value, mean and 95% CI over seeds, a line per setting of the other
    factors; a log axis where the values span more than a decade."""
    factors = [name for name in study.factors if len(numeric_values(study, name)) > 1]
    if not factors:
        return "no factor takes two or more numeric values"
    quality = [m for m in study.metrics if not m.is_cost and study.has_numbers(m)]
    if not quality:
        return "no quality metric has a number in any completed run"
    paths = []
    for name in factors:
        safe = re.sub(r"[^A-Za-z0-9_.-]+", "_", name)
        paths.append(_save(factor_figure(study, name, quality), out / f"factor_{safe}.png"))
    return paths


def numeric_values(study: Study, factor: str) -> set[float]:
    """The numbers a factor takes across the groups (not null, true/false or text)."""
    return {group.levels[factor][1] for group in study.groups if _is_number(group.levels[factor])}


def factor_figure(study: Study, factor: str, metrics: list[Metric]) -> Figure:
    values = numeric_values(study, factor)
    others = [name for name in study.factors if name != factor]
    lines: dict[tuple, list[tuple[float, int]]] = {}  # other factors' levels -> (value, group)
    for i, group in enumerate(study.groups):
        if _is_number(group.levels[factor]):
            key = tuple(group.levels[name] for name in others)
            lines.setdefault(key, []).append((group.levels[factor][1], i))
    cols = min(3, len(metrics))
    rows = math.ceil(len(metrics) / cols)
    fig = Figure(figsize=(4 * cols, 2.8 * rows + 0.9), layout="constrained")
    log = min(values) > 0 and max(values) / min(values) > 10
    for k, metric in enumerate(metrics):
        ax = fig.add_subplot(rows, cols, k + 1)
        for n, (key, points) in enumerate(sorted(lines.items())):
            points.sort()
            sums = [study.summaries[metric.name][i] for _, i in points]
            label = " ".join(f"{name}={level[2]}" for name, level in zip(others, key))
            ax.errorbar([x for x, _ in points], [s.mean for s in sums], capsize=3,
                        yerr=[s.ci95 for s in sums], fmt="o-", color=f"C{n % 10}",
                        label=label or None)  # a NaN interval (one seed) draws no error bar
        if log:
            ax.set_xscale("log")
        ax.set_xlabel(factor, fontsize=8)
        ax.set_title(metric.name + DIRECTION[metric.direction], fontsize=9)
    left_out = sorted({g.levels[factor][2] for g in study.groups if not _is_number(g.levels[factor])})
    fig.suptitle(f"Quality against {factor} (mean, 95% CI over seeds)"
                 + (f"; not drawn: {', '.join(left_out)}" if left_out else ""))
    if others:
        fig.legend(*fig.axes[0].get_legend_handles_labels(), loc="outside lower center",
                   ncols=min(3, len(lines)), fontsize="x-small", frameon=False)
    return fig


def _is_number(level: Level) -> bool:
    return level[0] == 2  # levels.level: rank 2 holds ints and floats, not booleans


PLOTS: dict[str, Callable[[Study, Path], Path | list[Path] | str]] = {
    "training loss curves": training_loss, "metric bars": metric_bars,
    "quality vs training cost": quality_vs_cost, "GPU memory": gpu_memory,
    "quality against numeric factors": numeric_factors,
}


def _bar_grid(study: Study, metrics: list[Metric], title: str, path: Path) -> Path:
    """One bar chart per metric, groups numbered on the x axes and named once, below.

    Fixed margins instead of a layout engine, which costs a second on a dozen axes.
    """
    cols = min(3, len(metrics))
    rows = math.ceil(len(metrics) / cols)
    key_height = 0.6 + 0.2 * math.ceil(len(study.groups) / cols)  # inches
    height = 2.6 * rows + key_height + 0.8
    fig = Figure(figsize=(4 * cols, height))
    x = np.arange(len(study.groups))
    colors = [f"C{i % 10}" for i in x]
    for k, metric in enumerate(metrics):
        ax = fig.add_subplot(rows, cols, k + 1)
        sums = study.summaries[metric.name]
        ax.bar(x, [s.mean for s in sums], yerr=[s.ci95 for s in sums], capsize=3,
               color=colors)  # a NaN interval (one seed) draws no error bar
        ax.set_xticks(x, [str(i + 1) for i in x], fontsize=7)
        ax.set_title(metric.name + DIRECTION[metric.direction], fontsize=9)
    fig.suptitle(title)
    fig.legend([Patch(color=c) for c in colors],
               [f"{i + 1}: {study.label(group)}" for i, group in enumerate(study.groups)],
               loc="lower center", ncols=cols, fontsize="x-small", frameon=False)
    fig.subplots_adjust(left=0.08, right=0.97, top=1 - 0.8 / height, hspace=0.55, wspace=0.3,
                        bottom=(key_height + 0.1) / height)
    return _save(fig, path)


def _save(fig: Figure, path: Path) -> Path:
    fig.savefig(path, dpi=110)
    return path
