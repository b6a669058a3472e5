"""Statistics over seeds: mean, sample std, Student-t confidence interval, t-tests, Holm."""

from __future__ import annotations

import math
import warnings
from collections.abc import Hashable
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import optimize, special, stats

NAN = float("nan")
ALPHA = 0.05
POWER = 0.8  # of the minimum detectable difference


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
    mde: float = NAN  # the difference that test would detect with 80% power (stats.mde)
    seeds: str = ""  # the seeds the test saw


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


@dataclass
class TTest:
    p: float = NAN
    name: str = ""  # which test, e.g. "paired t-test over 3 seeds"
    mde: float = NAN  # minimum detectable difference, see mde()
    seeds: str = ""  # the seeds it saw: "3 seeds" (pairs) or "3 and 2 seeds"


def t_test(group: list[tuple[Hashable, float]], baseline: list[tuple[Hashable, float]]) -> TTest:
    """A test of `group` against `baseline`, given as (seed, value) pairs: paired over the
    seeds both have, Welch's test when they share fewer than two or a seed repeats, no test
    (NaN) with fewer than two runs on a side."""
    by_seed, base_by_seed = dict(group), dict(baseline)
    unique = len(by_seed) == len(group) and len(base_by_seed) == len(baseline)
    common = [seed for seed in base_by_seed if seed in by_seed]
    with warnings.catch_warnings():  # identical values give NaN with a warning; NaN is the answer
        warnings.simplefilter("ignore", RuntimeWarning)
        if unique and len(common) >= 2:
            x = np.array([by_seed[s] for s in common])
            y = np.array([base_by_seed[s] for s in common])
            n = len(common)
            return TTest(float(stats.ttest_rel(x, y).pvalue), f"paired t-test over {n} seeds",
                         mde(float(np.std(x - y, ddof=1)) / math.sqrt(n), n - 1), f"{n} seeds")
        if len(group) >= 2 and len(baseline) >= 2:
            x, y = np.array([v for _, v in group]), np.array([v for _, v in baseline])
            result = stats.ttest_ind(x, y, equal_var=False)
            return TTest(float(result.pvalue), "Welch's t-test", welch_mde(x, y),
                         f"{len(x)} and {len(y)} seeds")
    return TTest()


def mde(se: float, dof: float) -> float:
    """The minimum detectable difference: the smallest true difference of means that a
    two-sided t-test at level ALPHA finds with probability POWER, given the standard error of
    the difference and the degrees of freedom (NaN when se is 0: no test is possible)."""
    return se * _noncentrality(dof) if se > 0 else NAN


def welch_mde(x: np.ndarray, y: np.ndarray) -> float:
    """mde() for Welch's test: se² = s_x²/n_x + s_y²/n_y, Welch-Satterthwaite dof."""
    vx, vy = np.var(x, ddof=1) / len(x), np.var(y, ddof=1) / len(y)
    if vx + vy == 0:
        return NAN
    dof = (vx + vy) ** 2 / (vx ** 2 / (len(x) - 1) + vy ** 2 / (len(y) - 1))
    return mde(math.sqrt(vx + vy), float(dof))


@lru_cache(maxsize=256)
def _noncentrality(dof: float) -> float:
    """δ/se at which |T| > t(1 - ALPHA/2, dof) has probability POWER, T ~ noncentral t."""
    critical = special.stdtrit(dof, 1 - ALPHA / 2)

    def shortfall(nc: float) -> float:  # nctdtr gives NaN where the CDF underflows: 0
        below = np.nan_to_num(special.nctdtr(dof, nc, [-critical, critical]))
        return below[0] + 1 - below[1] - POWER

    return optimize.brentq(shortfall, 0.0, 100.0)  # dof = 1 needs about 16


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
