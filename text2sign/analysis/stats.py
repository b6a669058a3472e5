"""Statistics over seeds: mean, sample std, Student-t confidence interval, t-tests, Holm."""

from __future__ import annotations

import math
import warnings
from collections.abc import Hashable
from dataclasses import dataclass

import numpy as np
from scipy import stats

NAN = float("nan")
ALPHA = 0.05


@dataclass
class Summary:
    """One metric of one group; NaN where there is too little data."""

    n: int
    mean: float = NAN
    std: float = NAN  # sample std, ddof=1
    ci95: float = NAN  # half-width of the 95% interval, Student's t with n-1 df
    delta_pct: float = NAN  # against the baseline group's mean
    p_value: float = NAN
    p_holm: float = NAN
    test: str = ""  # which test gave p_value


def summarize(values: list[float]) -> Summary:
    n = len(values)
    if n == 0:
        return Summary(0)
    if n == 1:
        return Summary(1, values[0])
    if min(values) == max(values):  # parameter counts: exact, without rounding noise (3e-16)
        return Summary(n, values[0], 0.0, 0.0)
    std = float(np.std(values, ddof=1))
    return Summary(n, float(np.mean(values)), std, float(t_quantile(n - 1)) * std / math.sqrt(n))


def t_quantile(dof: int | np.ndarray) -> float | np.ndarray:
    """The two-sided 95% Student-t quantile."""
    return stats.t.ppf(0.975, dof)


def delta_pct(mean: float, baseline: float) -> float:
    """Relative change in percent; undefined against a zero or missing baseline."""
    if not math.isfinite(baseline) or baseline == 0:
        return NAN
    return (mean - baseline) / abs(baseline) * 100


def t_test(group: list[tuple[Hashable, float]],
           baseline: list[tuple[Hashable, float]]) -> tuple[float, str]:
    """(p, test name) from (seed, value) pairs: a paired test over the seeds both groups have,
    Welch's test when they share fewer than two or a seed repeats, (NaN, "") with too few runs.
    """
    by_seed, base_by_seed = dict(group), dict(baseline)
    unique = len(by_seed) == len(group) and len(base_by_seed) == len(baseline)
    common = [seed for seed in base_by_seed if seed in by_seed]
    with warnings.catch_warnings():  # identical values give NaN with a warning; NaN is the answer
        warnings.simplefilter("ignore", RuntimeWarning)
        if unique and len(common) >= 2:
            result = stats.ttest_rel([by_seed[s] for s in common],
                                     [base_by_seed[s] for s in common])
            return float(result.pvalue), f"paired t-test over {len(common)} seeds"
        if len(group) >= 2 and len(baseline) >= 2:
            result = stats.ttest_ind([v for _, v in group], [v for _, v in baseline],
                                     equal_var=False)
            return float(result.pvalue), "Welch's t-test"
    return NAN, ""


def holm(p_values: list[float]) -> list[float]:
    """Holm-Bonferroni step-down adjustment; NaN entries are not counted and stay NaN."""
    adjusted = [NAN] * len(p_values)
    order = sorted((p, i) for i, p in enumerate(p_values) if math.isfinite(p))
    running = 0.0
    for rank, (p, i) in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * p))
        adjusted[i] = running
    return adjusted


def significant(summary: Summary) -> bool | None:
    """Whether the Holm-corrected p-value is below ALPHA; None when there was no test."""
    return None if math.isnan(summary.p_holm) else summary.p_holm < ALPHA
