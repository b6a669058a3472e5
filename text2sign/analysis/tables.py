"""comparison_table.csv (every statistic, full precision), .md and .tex (mean ± CI, for papers)."""

from __future__ import annotations

import csv
import io
import math

from text2sign.analysis.formatting import arrow, md_table, md_text, mean_ci, num
from text2sign.analysis.metrics import Metric
from text2sign.analysis.study import Group, Study

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
    """Per metric: mean ± CI (bold: best), then the minimum detectable difference (MDE)."""
    shown = _shown(study)
    header = [*_factor_headers(study), "n"]
    for m in shown:
        header += [f"{m.name} {arrow(m)}".rstrip(), f"{m.name} MDE"]
    rows, best = [], [_best(study, m) for m in shown]
    for i, group in enumerate(study.groups):
        cells = [*map(md_text, _factor_cells(study, group)), group.size]
        for m, bold in zip(shown, best):
            summary = study.summaries[m.name][i]
            cell = mean_ci(summary)
            cells += [f"**{cell}**" if i in bold and cell else cell, num(summary.mde, 3)]
        rows.append(cells)
    caption = md_text(_caption(study)) + (" MDE: the difference from the baseline that its test "
                                          "would find with 80% power at α = 0.05 (see docs/analysis.md).")
    return "\n".join(md_table([*map(md_text, header)], rows, escape=False)) + f"\n\n*{caption}*\n"


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


def _caption(study: Study) -> str:
    baseline = study.label(study.groups[0]) if study.groups else "none"
    missing = [m.name for m in study.metrics if not study.has_numbers(m)]
    text = (f"Mean ± 95% CI over seeds (Student's t); first row: the baseline ({baseline}); "
            "bold: best per column; ↓/↑: lower/higher is better.")
    return text + (f" Not available: {', '.join(missing)}." if missing else "")


def _full(value: float) -> str:
    return "" if math.isnan(value) else repr(value)


def _tex(text: str) -> str:
    text = text.translate(str.maketrans(LATEX_SPECIAL))
    return text.replace("±", r"$\pm$").replace("↓/↑", r"$\downarrow$/$\uparrow$")
