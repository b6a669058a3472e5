"""Statistics over seeds: mean, sample std, Student-t confidence interval, t-tests, Holm."""

from __future__ import annotations

import math
from collections.abc import Hashable
from dataclasses import dataclass, field
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
    why: str = ""  # why there is no test (p_value is NaN)
    diverged: list[str] = field(default_factory=list)  # seeds whose run diverged: no mean


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
    why: str = ""  # why there is no test (p is NaN)


NO_SPREAD = 1e-6  # values this close, relative to their size, are equal (float32 rounding)
EXACT_LIMIT = 2 ** 16  # arrangements enumerated by an exact permutation test; beyond: sampled


def t_test(group: list[tuple[Hashable, float]], baseline: list[tuple[Hashable, float]]) -> TTest:
    """A test of `group` against `baseline`, given as (seed, value) pairs: paired over the
    seeds both have, Welch's test when they share fewer than two or a seed repeats, no test
    (NaN, with why) with fewer than two runs on a side. Without spread (the differences, or
    both groups' values, equal up to rounding) a t statistic is infinite and its p-value 0
    means nothing: an exact permutation test takes its place, and identical values get none."""
    by_seed, base_by_seed = dict(group), dict(baseline)
    unique = len(by_seed) == len(group) and len(base_by_seed) == len(baseline)
    common = [seed for seed in base_by_seed if seed in by_seed]
    if unique and len(common) >= 2:
        x = np.array([by_seed[s] for s in common])
        y = np.array([base_by_seed[s] for s in common])
        n = len(common)
        if _spread(x - y, x, y) == 0:
            return _exact(x, y, "samples", f"exact sign-flip test over {n} seeds (every seed "
                          "differs by the same amount)", f"{n} seeds")
        return TTest(float(stats.ttest_rel(x, y).pvalue), f"paired t-test over {n} seeds",
                     mde(float(np.std(x - y, ddof=1)) / math.sqrt(n), n - 1), f"{n} seeds")
    if len(group) >= 2 and len(baseline) >= 2:
        x, y = np.array([v for _, v in group]), np.array([v for _, v in baseline])
        seeds = f"{len(x)} and {len(y)} seeds"
        if _spread(x, x, y) == _spread(y, x, y) == 0:
            return _exact(x, y, "independent", "exact permutation test (no spread between the "
                          "seeds of either group)", seeds)
        result = stats.ttest_ind(x, y, equal_var=False)
        return TTest(float(result.pvalue), "Welch's t-test", welch_mde(x, y), seeds)
    return TTest(why="one seed: more seeds needed for a test")


def _spread(values: np.ndarray, *scale: np.ndarray) -> float:
    """The range of `values`, 0 when within rounding noise of numbers the size of `scale`."""
    spread = float(np.ptp(values))
    return 0.0 if spread <= NO_SPREAD * max(float(np.abs(v).max()) for v in scale) else spread


def _exact(x: np.ndarray, y: np.ndarray, kind: str, name: str, seeds: str) -> TTest:
    """scipy's permutation test of the difference of means, exact up to EXACT_LIMIT
    arrangements (`samples`: the signs of the pairs' differences flipped; `independent`: the
    seeds shuffled between the groups); no test when the two sides are the same."""
    if _spread(np.array([x.mean(), y.mean()]), x, y) == 0:
        return TTest(why="the same in every seed: nothing to test")
    arrangements = 2.0 ** len(x) if kind == "samples" else special.comb(len(x) + len(y), len(x))
    result = stats.permutation_test(
        (x, y), lambda a, b, axis: np.mean(a, axis=axis) - np.mean(b, axis=axis),
        permutation_type=kind, vectorized=True, random_state=0,
        n_resamples=np.inf if arrangements <= EXACT_LIMIT else EXACT_LIMIT)
    return TTest(float(result.pvalue), name, NAN, seeds)


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
