"""analyze.py's command line: collect runs, compute the study, write every output."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from text2sign.analysis import AnalysisError
from text2sign.analysis.collect import collect, output_dir_note
from text2sign.analysis.identity import ON_CONFLICT
from text2sign.analysis.levels import parse_assignments
from text2sign.analysis.plots import PLOTS
from text2sign.analysis.preference import Preferences, read_preferences
from text2sign.analysis.report import Figures, markdown_report, text_report
from text2sign.analysis.samples import sample_sheets
from text2sign.analysis.study import Study, build_study
from text2sign.analysis.tables import TABLES, markdown_table
from text2sign.rundir.files import atomic_write_text, unwritable

REPORT = "ABLATION_RESULTS_REPORT.txt"
# --output-format values that name several tables; `both` as the original study wrote it
SEVERAL = {"all": list(TABLES), "both": ["csv", "md"]}
Outcome = Path | str | list[Path]  # what a plot stage wrote, or why it wrote nothing


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="analyze.py", description="Comparison tables, statistics over seeds, plots and a "
        "report from every results.json under the results directories.")
    parser.add_argument("results_dirs", nargs="*", metavar="RESULTS_DIR",
                        help="outputs trees to search at any depth (default: outputs/)")
    parser.add_argument("--results-dir", action="append", default=[], dest="more_dirs",
                        metavar="RESULTS_DIR", help="same as the positional argument")
    parser.add_argument("--output-dir", type=Path,
                        help="where outputs go (default: <first RESULTS_DIR>/analysis/)")
    parser.add_argument("--output-format", choices=[*TABLES, *SEVERAL], default="all",
                        help="which comparison tables to write: csv, md, tex, both (csv and "
                             "md) or all (default)")
    parser.add_argument("--baseline", nargs="+", metavar="KEY=VALUE",
                        help="the group the others are compared with (default: "
                             "ablation=baseline if present, else text_encoder=frozen ema=true "
                             "if present, else the first group)")
    parser.add_argument("--metrics", nargs="+", metavar="METRIC",
                        help="metrics to table and test (default: every metric found)")
    parser.add_argument("--quality", metavar="METRIC",
                        help="the primary quality metric of the findings (default: fvd, else "
                             "eval val_loss, else best_val_loss)")
    parser.add_argument("--on-conflict", choices=ON_CONFLICT, default="error",
                        help="which run to use when runs with the same configuration and seed "
                             "were made by different code (default: error, listing them)")
    parser.add_argument("--study", type=Path, metavar="DATABASE",
                        help="add the votes of a human study of the groups' samples (the "
                             "database of python -m text2sign.study serve) to the reports")
    args = parser.parse_args(argv)
    for option in ("metrics", "baseline"):  # argparse gives them every word that follows
        words = getattr(args, option) or []
        dirs = [word for word in words if _names_a_directory(word)]
        if words and len(dirs) == len(words):
            parser.error(f"--{option} got only directories: {' '.join(words)}")
        setattr(args, option, [word for word in words if word not in dirs] or None)
        args.results_dirs += dirs
    return args


def _names_a_directory(word: str) -> bool:
    """A path or an existing directory; never a metric name or a key=value pair."""
    return "=" not in word and ("/" in word or Path(word).is_dir())


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    dirs = [*args.results_dirs, *args.more_dirs] or ["outputs"]
    out = args.output_dir or Path(dirs[0]) / "analysis"
    problem = unwritable(out)
    if problem:  # found before the analysis is computed, not after
        print(f"analyze.py: error: cannot write the output folder {out} ({problem}): give a "
              "writable folder with --output-dir DIR", file=sys.stderr)
        return 2
    start = time.perf_counter()
    try:
        if args.study and not args.study.is_file():
            raise AnalysisError(f"--study {args.study}: no such file; give the database that "
                                "python -m text2sign.study serve --db wrote (default study.sqlite)")
        runs = collect([Path(d) for d in dirs], skip=out)
        skipped = output_dir_note([Path(d) for d in dirs], out)
        baseline = parse_assignments(args.baseline, "--baseline") if args.baseline else None
        study = build_study(runs, baseline, args.metrics, args.quality, args.on_conflict)
        human = read_preferences(study, args.study, dirs) if args.study else None
    except AnalysisError as error:
        print(f"analyze.py: error: {error}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    if skipped:
        print(f"not searched: {skipped}")
    write_outputs(study, dirs, out, SEVERAL.get(args.output_format, [args.output_format]),
                  skipped, human)
    if human is not None:
        print(f"human evaluation: {human.votes} votes on {len(human.labels)} groups from "
              f"{args.study}")
    completed = len(study.with_status("completed"))
    print(f"analysed {len(runs)} runs ({completed} completed) in "
          f"{len(study.groups)} groups in {time.perf_counter() - start:.1f} s; outputs in {out}")
    if not completed:
        print(f"analyze.py: error: none of the {len(runs)} runs completed, so nothing was "
              f"compared: {out / REPORT} lists them and why", file=sys.stderr)
        return 1
    return 0


def write_outputs(study: Study, dirs: list[str], out: Path, formats: list[str],
                  not_searched: str | None = None, human: Preferences | None = None) -> None:
    for fmt in formats:
        name, render = TABLES[fmt]
        _write_text(out / name, render(study))
    figures = Figures()
    if study.groups:
        for name, plot in PLOTS.items():
            figures.plots[name] = _announce(plot(study, out), name)
        figures.samples = _announce(sample_sheets(study, out), "sample comparison")
    _write_text(out / REPORT, text_report(study, dirs, figures, not_searched, human))
    _write_text(out / "report.md", markdown_report(study, dirs, figures, markdown_table(study),
                                                   not_searched, human))


def _write_text(path: Path, text: str) -> None:
    atomic_write_text(path, text)
    print(f"wrote {path}")


def _announce(result: Outcome, name: str) -> Outcome:
    """Print one line per file written, or why nothing was; pass the outcome on."""
    for path in result if isinstance(result, list) else [result]:
        print(f"wrote {path}" if isinstance(path, Path) else f"skipped {name}: {path}")
    return result
