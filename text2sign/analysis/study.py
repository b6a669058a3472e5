"""Completed runs, each counted once, grouped by the configuration that ran, with statistics
against a baseline."""

from __future__ import annotations

from dataclasses import dataclass, field

from text2sign.analysis import AnalysisError
from text2sign.analysis.collect import DIVERGED, Run
from text2sign.analysis.grouping import ABLATION, Group, group_runs
from text2sign.analysis.identity import Copies, deduplicate, describe
from text2sign.analysis.levels import Level, level
from text2sign.analysis.metrics import Metric, default_quality, discover
from text2sign.analysis.stats import NAN, Summary, delta_pct, holm, summarize, t_test


def counts(run: Run) -> bool:
    """Whether a run is a seed of its group: it completed, or it failed and its configuration
    says which group it is of (one that failed diverging is a finding, a diverged seed; any
    other failure a seed without figures: a group of failed runs is shown, not left out)."""
    return run.status == "completed" or run.status == "failed" and run.config is not None


# the baseline unless --baseline says otherwise: the first of these that a group matches
BASELINES = ({ABLATION: level("baseline")}, {"text_encoder": level("frozen"), "ema": level(True)})


@dataclass
class Study:
    runs: list[Run]  # every run found, whatever its status
    groups: list[Group]  # the baseline first, then in sorted order of the factor values
    factors: list[str]  # factors that vary across groups: the table columns
    common: dict[str, str]  # named settings with one value in every run used
    metrics: list[Metric]  # the metrics tabled (--metrics)
    summaries: dict[str, list[Summary]]  # metric name -> one Summary per group
    quality: Metric | None  # the primary quality metric
    baseline_note: str  # how the baseline was chosen
    found: list[Metric] = field(default_factory=list)  # every metric, each with summaries
    copies: list[Copies] = field(default_factory=list)  # runs found more than once
    not_factors: dict[str, str] = field(default_factory=dict)  # named settings, why not
    by_config: bool = True  # grouped by metadata.json's configuration, else by the factors

    def label(self, group: Group) -> str:
        return group.label(self.factors)

    def with_status(self, status: str) -> list[Run]:
        return [run for run in self.runs if run.status == status]

    @property
    def diverged(self) -> list[Run]:
        """The runs of the groups that diverged."""
        return [run for group in self.groups for run in group.runs if run.diverged]

    def has_numbers(self, metric: Metric) -> bool:
        return any(summary.n for summary in self.summaries[metric.name])

    def metric(self, name: str) -> Metric | None:
        return next((metric for metric in self.found if metric.name == name), None)

    @property
    def family(self) -> list[Metric]:
        """The metrics whose tests the report shows: Holm runs over all their comparisons."""
        return list(dict.fromkeys([*self.metrics, *([self.quality] if self.quality else [])]))


def build_study(runs: list[Run], baseline: dict[str, Level] | None = None,
                metric_names: list[str] | None = None, quality: str | None = None,
                on_conflict: str = "error") -> Study:
    counted = [run for run in runs if counts(run)]
    by_config = all(run.config is not None for run in counted)
    used, copies = deduplicate(counted, describe(counted, by_config), on_conflict)
    grouping = group_runs(used, describe(used, by_config))
    groups = grouping.groups
    if groups:
        groups, note = _baseline_first(groups, baseline, grouping.factors, grouping.common)
    else:
        note = "none: no completed run"
    found = discover([run.results for run in used])
    tabled = _select(found, metric_names, "--metrics")
    summaries = _summaries(groups, found)
    if quality:
        primary = _select(found, [quality], "--quality")[0]
    else:
        primary = default_quality(found, {name for name, sums in summaries.items()
                                          if any(s.n for s in sums)})
    study = Study(runs, groups, grouping.factors, grouping.common, tabled, summaries, primary,
                  note, found, copies, grouping.not_factors, by_config)
    every = [summary for metric in study.family for summary in summaries[metric.name]]
    for summary, p_holm in zip(every, holm([summary.p_value for summary in every])):
        summary.p_holm = p_holm
    return study


def _baseline_first(groups: list[Group], wanted: dict[str, Level] | None, factors: list[str],
                    common: dict[str, str]) -> tuple[list[Group], str]:
    def matching(spec: dict[str, Level]) -> list[Group]:
        return [g for g in groups if all(g.settings.get(k) == v for k, v in spec.items())]

    spec = wanted or next((spec for spec in BASELINES if matching(spec)), BASELINES[-1])
    matches = matching(spec)
    text = " ".join(f"{k}={v[2]}" for k, v in spec.items())
    if wanted and not matches:
        shared = " ".join(f"{k}={v}" for k, v in common.items() if k != "seed")
        raise AnalysisError(f"--baseline {text} matches no group. Groups:\n  "
                            + "\n  ".join(group.label(factors) for group in groups)
                            + (f"\nand in every group: {shared}" if shared else ""))
    if matches:
        note = f"{'given by --baseline' if wanted else 'the default'} {text}"
        if len(matches) > 1:
            note += f"; {len(matches)} groups match, the first in sorted order is used"
    else:
        note = f"the first group in sorted order (no group has {text})"
    baseline = (matches or groups)[0]
    return [baseline, *(g for g in groups if g is not baseline)], note


def _select(metrics: list[Metric], names: list[str] | None, option: str) -> list[Metric]:
    if not names:
        return metrics
    by_name = {metric.name: metric for metric in metrics}
    unknown = [name for name in names if name not in by_name]
    if unknown:
        raise AnalysisError(f"{option}: unknown metric(s) {', '.join(unknown)}; available: "
                            + ", ".join(by_name))
    return [by_name[name] for name in dict.fromkeys(names)]


def _summaries(groups: list[Group], metrics: list[Metric]) -> dict[str, list[Summary]]:
    """Per metric and group: mean, std, CI; deltas and tests against groups[0]. A group with
    a diverged seed has no mean, and no test calls it (or others, against it as baseline)
    better on the seeds that are left."""
    summaries = {}
    for metric in metrics:
        outcomes = [[(level(run.seed), outcome(metric, run)) for run in group.runs]
                    for group in groups]
        values = [[(seed, v) for seed, v in found if isinstance(v, float)] for found in outcomes]
        sums = [summarize([v for _, v in group_values]) for group_values in values]
        for summary, found in zip(sums, outcomes):
            summary.diverged = [seed[2] for seed, v in found if v == DIVERGED]
            if summary.diverged:
                summary.mean = summary.std = summary.ci95 = NAN
        for summary, group_values in zip(sums, values):
            summary.delta_pct = delta_pct(summary.mean, sums[0].mean)
            if summary is sums[0]:
                continue
            if summary.diverged or sums[0].diverged:
                summary.why = diverged_text(summary, sums[0])
                continue
            test = t_test(group_values, values[0])
            summary.p_value, summary.test, summary.mde, summary.seeds, summary.why = (
                test.p, test.name, test.mde, test.seeds, test.why)
        summaries[metric.name] = sums
    return summaries


def outcome(metric: Metric, run: Run) -> float | str | None:
    """The run's number for `metric`; DIVERGED where it diverged (every metric of a run that
    failed diverging: its figures are those of a run cut short); None where it has none (a run
    that failed otherwise has none)."""
    if run.status == "failed":
        return DIVERGED if run.diverged else None
    return DIVERGED if f"{metric.section}.{metric.key}" in run.diverged else metric.value(
        run.results)


def diverged_text(summary: Summary, base: Summary) -> str:
    """Why a comparison is not made: the seeds that diverged, here or in the baseline."""
    def seeds(s: Summary) -> str:
        return (f"{len(s.diverged)} of {s.n + len(s.diverged)} seeds diverged (seed "
                f"{', '.join(s.diverged)})")
    where = [f"{seeds(s)} {place}" for s, place in ((summary, "here"), (base, "in the baseline"))
             if s.diverged]
    return "not compared: " + " and ".join(where) + "; a mean of the others would hide it"
