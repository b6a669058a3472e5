"""comparison_table.csv (every statistic of every metric, full precision), .md (the headline
metrics: quality and costs, mean ± CI and the change from the baseline) and .tex (mean ± CI of
every metric, for papers)."""

from __future__ import annotations

import csv
import io
import math

from text2sign.analysis.formatting import arrow, md_table, md_text, mean_ci, mean_ci_change, num
from text2sign.analysis.metrics import HEADLINE_COSTS, QUALITY, Metric
from text2sign.analysis.study import Group, Study

HEADLINE_COLUMNS = 12  # what a page shows without scrolling sideways
STATISTICS = ("mean", "std", "ci95", "delta_pct", "p_value", "p_holm", "mde")
LATEX_SPECIAL = {"\\": r"\textbackslash{}", "_": r"\_", "&": r"\&", "%": r"\%", "#": r"\#",
                 "$": r"\$", "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}",
                 "^": r"\textasciicircum{}"}


def csv_table(study: Study) -> str:
    header = [*study.factors, "n", "diverged", "failed"]
    header += [f"{metric.name}_{stat}" for metric in study.metrics for stat in STATISTICS]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    for i, group in enumerate(study.groups):
        row: list[str | int] = [group.levels[name][2] for name in study.factors]
        row += [len(group.runs), len(group.diverged), len(group.failed)]
        for metric in study.metrics:
            summary = study.summaries[metric.name][i]
            row += [_full(getattr(summary, stat)) for stat in STATISTICS]
        writer.writerow(row)
    return buffer.getvalue()


def markdown_table(study: Study) -> str:
    """The headline table (comparison_table.md, and report.md's): per group its factors, `n`
    (its seeds: `3 (1 diverged, 1 failed)`), the primary quality metric and its MDE, the other
    quality metrics that fit in HEADLINE_COLUMNS, then the costs; each metric as mean ± CI
    and the change from the baseline (bold: best). A line under it names the metrics it
    leaves out: every one is in comparison_table.csv and in the per-metric tables."""
    quality, costs = headline(study)
    columns = [(_heading(m), _metric_cells(study, m)) for m in [*quality, *costs]]
    if quality:  # beside the primary: how large a difference its seeds could see
        primary = quality[0].name
        columns.insert(1, (f"{primary} MDE", [num(s.mde, 3) for s in study.summaries[primary]]))
    header = [*_factor_headers(study), "n", *(heading for heading, _ in columns)]
    rows = [[*map(md_text, _factor_cells(study, group)), group.size,
             *(cells[i] for _, cells in columns)] for i, group in enumerate(study.groups)]
    caption = md_text(_caption(study, "Mean ± 95% CI over seeds (Student's t) and, in "
                                      "brackets, the change from the baseline's mean"))
    caption += "".join(f" {m.name} MDE: the difference from the baseline that its test would "
                       "find with 80% power at α = 0.05 (see docs/analysis.md)." for m in quality[:1])
    return "\n".join([*md_table([*map(md_text, header)], rows, escape=False), "",
                      f"*{caption}*", *_left_out(study, [*quality, *costs])]) + "\n"


def headline(study: Study) -> tuple[list[Metric], list[Metric]]:
    """The quality metrics and the costs of the headline table. Quality: the primary, then
    those of the evaluation (of generated or held-out clips) before those of training, in
    each the candidates for primary (QUALITY) and those with a known direction first, as many
    as fit; costs: HEADLINE_COSTS, where measured."""
    shown = _shown(study)
    by_name = {m.name: m for m in shown}
    costs = [found[0] for names in HEADLINE_COSTS
             if (found := [by_name[name] for name in names if name in by_name])]
    quality = sorted((m for m in shown if not m.is_cost), key=lambda m: (
        m != study.quality, m.section != "eval", m.name not in QUALITY, m.direction == 0))
    room = HEADLINE_COLUMNS - len(_factor_headers(study)) - 2 - len(costs)  # n, primary MDE
    return quality[:max(room, 1)], costs


def latex_table(study: Study) -> str:
    shown = _shown(study)
    arrows = {"↑": r" $\uparrow$", "↓": r" $\downarrow$", "": ""}
    header = [*map(_tex, _factor_headers(study)), "$n$",
              *(_tex(m.name) + arrows[arrow(m)] for m in shown)]
    rows, best = [], [_best(study, m) for m in shown]
    for i, group in enumerate(study.groups):
        cells = [mean_ci(study.summaries[m.name][i], r"\pm") for m in shown]
        cells = [(rf"$\mathbf{{{c}}}$" if i in bold else f"${c}$") if c else ""
                 for c, bold in zip(cells, best)]
        rows.append(" & ".join([*map(_tex, _factor_cells(study, group)), _tex(group.size),
                                *cells]) + r" \\")
    columns = "l" * len(_factor_headers(study)) + "r" * (1 + len(shown))
    return "\n".join([
        r"% needs \usepackage{booktabs}",
        r"\begin{table}[t]", r"\centering",
        rf"\caption{{{_tex(_caption(study))}}}",
        rf"\begin{{tabular}}{{{columns}}}", r"\toprule", " & ".join(header) + r" \\",
        r"\midrule", *rows, r"\bottomrule", r"\end{tabular}", r"\end{table}", "",
    ])


TABLES = {"csv": ("comparison_table.csv", csv_table),
          "md": ("comparison_table.md", markdown_table),
          "tex": ("comparison_table.tex", latex_table)}


def _shown(study: Study) -> list[Metric]:
    """The paper tables leave out metrics that no run has."""
    return [metric for metric in study.metrics if study.has_numbers(metric)]


def _heading(metric: Metric) -> str:
    return f"{metric.name} {arrow(metric)}".rstrip()


def _left_out(study: Study, shown: list[Metric]) -> list[str]:
    """The line under the headline table that says where the other metrics are."""
    rest = [m.name for m in _shown(study) if m not in shown]
    if not rest:
        return []
    return ["", f"Not shown here: {md_text(', '.join(rest))}. Every metric is in "
            "comparison_table.csv and in the per-metric tables of report.md and "
            "ABLATION_RESULTS_REPORT.txt."]


def _metric_cells(study: Study, metric: Metric) -> list[str]:
    """A metric's column of the headline table, one cell per group (bold: best)."""
    best = _best(study, metric)
    cells = [mean_ci_change(summary, baseline=i == 0)
             for i, summary in enumerate(study.summaries[metric.name])]
    return [f"**{cell}**" if i in best and cell else cell for i, cell in enumerate(cells)]


def _best(study: Study, metric: Metric) -> set[int]:
    """Rows with the best mean when there is something to compare and a known direction."""
    means = [s.mean for s in study.summaries[metric.name]]
    finite = [m * metric.direction for m in means if not math.isnan(m)]
    if metric.direction == 0 or len(set(finite)) < 2:  # nothing to single out
        return set()
    return {i for i, m in enumerate(means) if m * metric.direction == max(finite)}


def _factor_headers(study: Study) -> list[str]:
    return study.factors or ["group"]


def _factor_cells(study: Study, group: Group) -> list[str]:
    return [group.levels[name][2] for name in study.factors] or [study.label(group)]


def _caption(study: Study, cells: str = "Mean ± 95% CI over seeds (Student's t)") -> str:
    baseline = study.label(study.groups[0]) if study.groups else "none"
    missing = [m.name for m in study.metrics if not study.has_numbers(m)]
    text = (f"{cells}; first row: the baseline ({baseline}); "
            "bold: best per column; ↓/↑: lower/higher is better.")
    return text + (f" Not available: {', '.join(missing)}." if missing else "")


def _full(value: float) -> str:
    return "" if math.isnan(value) else repr(value)


def _tex(text: str) -> str:
    text = text.translate(str.maketrans(LATEX_SPECIAL))
    return text.replace("±", r"$\pm$").replace("↓/↑", r"$\downarrow$/$\uparrow$")
