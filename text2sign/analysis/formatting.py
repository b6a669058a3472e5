"""How numbers read in the tables and the report: blank when undefined, better/worse in words."""

from __future__ import annotations

import math
import re

from text2sign.analysis.metrics import Metric
from text2sign.analysis.stats import Summary


def num(value: float, digits: int = 4) -> str:
    return "" if math.isnan(value) else f"{value:.{digits}g}"


def mean_ci(summary: Summary, pm: str = "±") -> str:
    """`0.0432 ± 0.0021`, the mean alone when there is no interval (one seed), or how many
    seeds diverged (then there is no mean)."""
    if summary.diverged:
        return diverged_count(summary)
    if math.isnan(summary.ci95):
        return num(summary.mean)
    return f"{num(summary.mean)} {pm} {num(summary.ci95, 2)}"


def mean_ci_change(summary: Summary, baseline: bool) -> str:
    """`140.3 ± 25 (+33.7%)`: mean_ci and the change from the baseline's mean (none in the
    baseline's own row, nor where there is no mean)."""
    if baseline or summary.diverged or math.isnan(summary.delta_pct):
        return mean_ci(summary)
    return f"{mean_ci(summary)} ({summary.delta_pct:+.1f}%)"


def verdict(metric: Metric, delta: float) -> str:
    """better/worse when the metric's direction is known, else higher/lower."""
    if math.isnan(delta):
        return ""
    if delta == 0:
        return "same"
    if metric.direction == 0:
        return "higher" if delta > 0 else "lower"
    return "better" if delta * metric.direction > 0 else "worse"


def diverged_count(summary: Summary) -> str:
    return f"diverged in {len(summary.diverged)} of {summary.n + len(summary.diverged)} seeds"


def change(metric: Metric | None, summary: Summary | None) -> str:
    """`+12.3% (worse)`, or `n/a` when either mean is missing."""
    if summary is not None and summary.diverged:
        return diverged_count(summary)
    if metric is None or summary is None or math.isnan(summary.delta_pct):
        return "n/a"
    return f"{summary.delta_pct:+.1f}% ({verdict(metric, summary.delta_pct)})"


def arrow(metric: Metric) -> str:
    return {1: "↑", -1: "↓"}.get(metric.direction, "")


def text_table(header: list[str], rows: list[list[str]]) -> list[str]:
    """A fixed-width table for the plain-text report."""
    widths = [max(len(row[k]) for row in [header, *rows]) for k in range(len(header))]
    lines = [" | ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
             for row in [header, *rows]]
    return [lines[0], "-+-".join("-" * w for w in widths), *lines[1:]]


# characters markdown (CommonMark, GitHub's tables) would read as markup or HTML; an underscore
# only where it can open or close emphasis (text_encoder reads as it is)
MD_SPECIAL = re.compile(r"[\\`*\[\]<>|~&#]|(?<!\w)_|_(?!\w)")


def md_text(text: str) -> str:
    """A value (a setting, a path, an error) as markdown shows it literally, on one line."""
    return MD_SPECIAL.sub(lambda found: "\\" + found.group(0), " ".join(str(text).split()))


def md_table(header: list[str], rows: list[list[str]], escape: bool = True) -> list[str]:
    """A markdown table of values (`escape=False`: cells already written as markdown)."""
    cells = [[md_text(cell) if escape else cell for cell in row] for row in [header, *rows]]
    lines = ["| " + " | ".join(row) + " |" for row in cells]
    return [lines[0], "|" + " --- |" * len(header), *lines[1:]]
