"""ABLATION_RESULTS_REPORT.txt (everything, plain text) and report.md (tables and plots)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

from text2sign.analysis.collect import STATUSES
from text2sign.analysis.formatting import (
    change,
    md_table,
    md_text,
    mean_ci,
    num,
    text_table,
    verdict,
)
from text2sign.analysis.identity import version_text
from text2sign.analysis.levels import level
from text2sign.analysis.metrics import MEMORY, Metric
from text2sign.analysis.preference import Preferences, report_lines
from text2sign.analysis.stats import ALPHA, POWER, delta_pct, significant
from text2sign.analysis.study import Study

MORE_SEEDS = "python train.py -m experiment=ablation_seeds"


@dataclass
class Figures:
    """What the plot and sample stages produced: a file, or the reason there is none."""

    plots: dict[str, Path | list[Path] | str] = field(default_factory=dict)
    samples: list[Path] | str = "no completed run"


def text_report(study: Study, results_dirs: list[str], figures: Figures,
                not_searched: str | None = None, human: Preferences | None = None) -> str:
    lines = ["ABLATION RESULTS REPORT", "=======================",
             *overview(study, results_dirs, not_searched)]
    if study.groups:
        lines += ["", "Findings against the baseline"]
        lines += text_table(findings_header(study), findings(study))
        lines += ["", "Groups (every factor but the seed)"]
        lines += text_table(*groups_table(study))
        for metric in study.metrics:
            if study.has_numbers(metric):
                lines += ["", _title(metric), *text_table(*metric_rows(study, metric))]
    if human is not None:
        lines += ["", *report_lines(human)]
    lines += ["", "Plots and samples"]
    lines += [f"  {name}: {_where(result)}" for name, result in figures.plots.items()]
    lines.append(f"  sample comparison: {_where(figures.samples)}")
    for title, entries in excluded(study) + [("Notes", notes(study))]:
        if entries:
            lines += ["", title, *(f"  {entry}" for entry in entries)]
    return "\n".join(lines) + "\n"


def markdown_report(study: Study, results_dirs: list[str], figures: Figures,
                    comparison: str, not_searched: str | None = None,
                    human: Preferences | None = None) -> str:
    lines = ["# Ablation results", "",
             *(f"- {md_text(line)}" for line in overview(study, results_dirs, not_searched))]
    if study.groups:
        lines += ["", "## Findings against the baseline", "",
                  *md_table(findings_header(study), findings(study)),
                  "", "## Comparison table", "", comparison, *_per_metric(study)]
    if human is not None:
        lines += [*report_lines(human, markdown=True), ""]
    lines += ["## Plots", ""]
    for name, result in figures.plots.items():
        if isinstance(result, str):
            lines.append(f"- {name}: {md_text(result)}")
        elif isinstance(result, Path):
            lines.append(_image(name, result))
        else:  # one figure per factor
            lines += [_image(f"{name}: {path.stem}", path) for path in result]
    lines += ["", "## Samples", ""]
    samples = figures.samples
    lines += ([f"- {md_text(samples)}"] if isinstance(samples, str)
              else [_image(path.stem, path) for path in samples])
    for title, entries in excluded(study) + [("Notes", notes(study))]:
        if entries:
            lines += ["", f"## {title}", "", *(f"- {md_text(entry)}" for entry in entries)]
    return "\n".join(lines) + "\n"


def _per_metric(study: Study) -> list[str]:
    """Every metric's statistics: the comparison table shows only the headline ones."""
    lines = ["## Per metric", ""]
    for metric in study.metrics:
        if study.has_numbers(metric):
            lines += [f"### {md_text(_title(metric))}", "", *md_table(*metric_rows(study, metric)),
                      ""]
    return lines


def _image(title: str, path: Path) -> str:
    """A figure beside report.md (file names are made of words, `_` and `.`)."""
    return f"![{md_text(title)}]({path.name})"


def overview(study: Study, results_dirs: list[str], not_searched: str | None) -> list[str]:
    counts = {status: len(study.with_status(status)) for status in STATUSES}
    lines = [f"Results: {', '.join(results_dirs)}",
             *([f"Not searched: {not_searched}"] if not_searched else []),
             f"Runs found: {len(study.runs)} ({counts['completed']} completed, "
             f"{counts['failed']} failed, {counts['running']} running, "
             f"{counts['unreadable']} unreadable)",
             *_counted_once(study),
             *([f"Diverged: {len(study.diverged)} run(s), counted as diverged seeds of their "
                "groups (listed below)"] if study.diverged else []),
             f"Groups: {len(study.groups)}, by "
             + ("the configuration that ran (metadata.json), every key but the seed"
                if study.by_config else "the recorded factors: some run has no metadata.json")
             + (f" (factors: {', '.join(study.factors)})" if study.factors else ""),
             "Common settings: " + (" ".join(f"{k}={v}" for k, v in study.common.items())
                                    or "none")]
    if study.groups:
        lines.append(f"Baseline: {study.label(study.groups[0])} ({study.baseline_note})")
    if study.quality:
        lines.append(f"Quality metric: {_title(study.quality)}")
    return lines


def _counted_once(study: Study) -> list[str]:
    if not study.copies:
        return []
    left_out = sum(len(copies.others) for copies in study.copies)
    conflicts = sum(copies.conflict for copies in study.copies)
    return [f"Counted once: {len(study.copies)} run(s) found more than once, {left_out} "
            f"copies left out" + (f" ({conflicts} conflict(s) of code versions)"
                                  if conflicts else "") + "; listed below"]


def groups_table(study: Study) -> tuple[list[str], list[list[str]]]:
    """Each group's seeds, and those that diverged or failed (a column only when some did)."""
    columns = [kind for kind in ("diverged", "failed")
               if any(getattr(group, kind) for group in study.groups)]
    rows = [[study.label(group), str(len(group.runs)), ", ".join(group.seeds),
             *(", ".join(level(run.seed)[2] for run in getattr(group, kind)) for kind in columns)]
            for group in study.groups]
    return ["group", "n", "seeds", *columns], rows


def findings_header(study: Study) -> list[str]:
    quality = f"Quality Δ ({study.quality.name})" if study.quality else "Quality Δ"
    return ["Ablation", quality, "Train Time Δ", "Memory Δ", "Key Finding"]


def findings(study: Study) -> list[list[str]]:
    """One row per group against the baseline: Ablation | Quality Δ | Time Δ | Memory Δ | Key."""
    baseline = study.groups[0]
    time, memory = study.metric("train_time_h"), _memory(study)
    rows = []
    for i, group in enumerate(study.groups[1:], 1):
        changed = [f"{name}={group.levels[name][2]}" for name in study.factors
                   if group.levels[name] != baseline.levels[name]]
        memory_cell = (change(memory, study.summaries[memory.name][i]) if memory
                       else "no memory recorded")
        if memory and memory.name == "peak_rss_gb":
            memory_cell += " (RAM)"
        rows.append([", ".join(changed), _change(study, study.quality, i),
                     _change(study, time, i), memory_cell, key_finding(study, i)])
    return rows


def _memory(study: Study) -> Metric | None:
    """GPU memory where it was measured, else the process's peak memory (a CPU run's)."""
    for name in MEMORY:
        metric = study.metric(name)
        if metric and study.has_numbers(metric):
            return metric
    return None


def key_finding(study: Study, i: int) -> str:
    metric = study.quality
    if metric is None:
        return "no quality metric measured"
    summary, base = study.summaries[metric.name][i], study.summaries[metric.name][0]
    if summary.diverged or base.diverged:
        return f"{metric.name} {summary.why}"
    if math.isnan(summary.delta_pct):
        sides = ((study.groups[i], summary, "this group"), (study.groups[0], base, "the baseline"))
        failed = [f"{len(group.failed)} of {len(group.runs)} seeds of {where} failed"
                  for group, side, where in sides if not side.n and group.failed]
        why = "; ".join(failed) or "missing in this group or the baseline"
        return f"{metric.name} not comparable: {why}: nothing to test"
    effect = f"{metric.name} {abs(summary.delta_pct):.1f}% {verdict(metric, summary.delta_pct)}"
    sig = significant(summary)
    if sig is None:
        return f"{effect}; {summary.why or 'no test'}"
    found = f"(Holm p={summary.p_holm:.3g}, {summary.test})"
    if sig:
        return f"{effect}, significant {found}"
    if math.isnan(summary.mde):  # an exact test: the seeds decide the smallest p it can give
        return (f"{effect}, not significant {found}: with {summary.seeds} no p-value below "
                f"{summary.p_value:.3g} is possible; train more seeds ({MORE_SEEDS})")
    share = delta_pct(base.mean + summary.mde, base.mean)
    size = num(summary.mde, 3) + (f" ({share:.1f}%)" if math.isfinite(share) else "")
    return (f"{effect}, not significant {found}: an effect smaller than {size} could not be "
            f"seen with {summary.seeds} (80% power)")


def metric_rows(study: Study, metric: Metric) -> tuple[list[str], list[list[str]]]:
    header = ["group", "n", "mean ± 95% CI", "std", "Δ vs baseline", "p", "p (Holm)",
              "MDE (80% power)", "test"]
    rows = []
    for group, s in zip(study.groups, study.summaries[metric.name]):
        delta = "baseline" if group is study.groups[0] else change(metric, s)
        rows.append([study.label(group), str(s.n), mean_ci(s), num(s.std, 3), delta,
                     num(s.p_value, 3), num(s.p_holm, 3), num(s.mde, 3),
                     s.test or (f"none: {s.why}" if s.why else "")])
    return header, rows


def excluded(study: Study) -> list[tuple[str, list[str]]]:
    """Sections listing what is not in the statistics, and why."""
    completed = [run.results for run in study.with_status("completed")]
    return [
        ("Diverged runs (counted in their groups as diverged seeds: no mean, no comparison)",
         [f"{run.name}: " + "; ".join(f"{key}: {what}" for key, what in run.diverged.items())
          for run in study.diverged]),
        ("Failed runs (not averaged)",
         [f"{run.name}: {run.error or 'no error recorded'}"
          for run in study.with_status("failed") if not run.diverged]),
        ("Running or interrupted runs (not averaged)",
         [run.name for run in study.with_status("running")]),
        ("Half-written or unreadable results.json (not averaged)",
         [f"{run.path / 'results.json'}: {run.error}"
          for run in study.with_status("unreadable")]),
        ("Unavailable metrics (no number in any completed run)",
         [f"{m.name}: {m.reason_unavailable(completed)}" for m in study.metrics
          if not study.has_numbers(m)]),
        ("Factors read from .hydra/ (results.json has none)",
         [run.name for run in study.with_status("completed") if run.factors_from == ".hydra"]),
        ("Runs without factors in results.json or .hydra/ (grouped together)",
         [run.name for run in study.with_status("completed") if run.factors_from == "nowhere"]),
        ("Duplicates: the same configuration, seed and code (counted once)",
         [f"{c.used.name} used ({c.rule}); not used: {', '.join(r.name for r in c.others)}"
          for c in study.copies if not c.conflict]),
        ("Conflicts: the same configuration and seed, different code",
         [f"{c.used.name} ({version_text(c.used)}) used ({c.rule}); not used: "
          + "; ".join(f"{r.name} ({version_text(r)})" for r in c.others)
          for c in study.copies if c.conflict]),
        ("Named settings that are not factors",
         [f"{name}: {why}" for name, why in study.not_factors.items()]),
        ("Runs without metadata.json (so every run is grouped by its recorded factors)",
         [run.name for run in study.with_status("completed") if run.config is None]),
    ]


def notes(study: Study) -> list[str]:
    single = [study.label(g) for g in study.groups if len(g.completed) < 2]
    lines = []
    if single:
        lines.append(f"More seeds are needed: {len(single)} group(s) have a single seed "
                     f"({'; '.join(single)}), so their confidence intervals and p-values are "
                     f"blank. Train seeds 0, 1, 2, e.g. {MORE_SEEDS}.")
    family = study.family
    tests = sum(not math.isnan(s.p_value) for m in family for s in study.summaries[m.name])
    lines.append(
        "Statistics: mean and sample std (ddof=1) over the seeds of a group; 95% CI "
        "half-width t(0.975, n-1)*std/sqrt(n); Δ = (mean - baseline mean)/|baseline mean|; "
        "p: paired t-test over the seeds both groups have (scipy.stats.ttest_rel), Welch's "
        "t-test (ttest_ind, equal_var=False) when runs cannot be paired; where the values do "
        "not spread (every seed differs by the same amount) scipy.stats.permutation_test, exact "
        "(a t statistic is then infinite); a group with a diverged seed has no mean and no "
        f"test; Holm correction over "
        f"the {tests} tests of {len(family)} metrics (every p-value in this report); "
        f"significant when the Holm p < {ALPHA}. MDE: the smallest true difference from the "
        f"baseline that the same test finds with {POWER:.0%} power at alpha {ALPHA} (before "
        "Holm), for the seeds and spread observed.")
    return lines


def _change(study: Study, metric: Metric | None, i: int) -> str:
    return change(metric, study.summaries[metric.name][i] if metric else None)


def _title(metric: Metric) -> str:
    way = {1: "higher is better", -1: "lower is better", 0: "direction unknown"}
    return f"{metric.name} ({way[metric.direction]})"


def _where(result: Path | str | list[Path]) -> str:
    if isinstance(result, Path):
        return result.name
    if isinstance(result, list):
        return ", ".join(path.name for path in result)
    return f"skipped: {result}"
