"""analyze.py: collecting runs, statistics against SciPy, tables, plots, report and CLI errors."""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import io
import math
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from analysis_fixtures import (
    FVD,
    GROUPS,
    PROMPTS,
    SEEDS,
    TIME_S,
    config,
    default_sweep_tree,
    factors,
    numeric_tree,
    results,
    sweep_tree,
    write_hydra,
    write_run,
)
from PIL import Image, ImageDraw
from scipy import stats

from text2sign.analysis.collect import collect
from text2sign.analysis.curves import group_band
from text2sign.analysis.levels import level, parse_assignments
from text2sign.analysis.metrics import Metric
from text2sign.analysis.plots import factor_figure, gpu_memory
from text2sign.analysis.report import findings
from text2sign.analysis.samples import sample_sheets
from text2sign.analysis.stats import holm, t_test
from text2sign.analysis.study import Study, build_study
from text2sign.analysis.tables import STATISTICS, csv_table
from text2sign.data.fonts import caption_font
from text2sign.rundir.factors import saved_factors

ROOT = Path(__file__).resolve().parents[1]
OUTPUTS = ["comparison_table.csv", "comparison_table.md", "comparison_table.tex",
           "ABLATION_RESULTS_REPORT.txt", "report.md", "training_loss.png", "metric_bars.png",
           "quality_vs_cost.png", "samples_01_hello.png", "samples_02_thank_you.png"]


def load_analyze():
    """analyze.py as a module, so its main() runs in-process."""
    spec = importlib.util.spec_from_file_location("analyze", ROOT / "analyze.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def analyze(*args: str | Path) -> int:
    return load_analyze().main([str(arg) for arg in args])


def read_table(path: Path) -> dict[tuple[str, str], dict[str, str]]:
    """comparison_table.csv rows keyed by (text_encoder, ema)."""
    with open(path) as f:
        return {(row["text_encoder"], row["ema"]): row for row in csv.DictReader(f)}


def key(encoder: str, ema: bool) -> tuple[str, str]:
    return encoder, "true" if ema else "false"


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    return sweep_tree(tmp_path_factory.mktemp("outputs"))


@pytest.fixture(scope="module")
def analysed(tree) -> tuple[Path, list[str]]:
    """analyze.py's main() run once over the tree: (output dir, printed lines)."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert analyze(tree) == 0
    return tree / "analysis", printed.getvalue().splitlines()


@pytest.fixture(scope="module")
def study(tree) -> Study:
    return build_study(collect([tree], skip=tree / "analysis"))


def test_statistics_equal_scipy(analysed):
    table = read_table(analysed[0] / "comparison_table.csv")
    base = np.array(FVD["frozen", True])
    for group in GROUPS:
        fvd, row = np.array(FVD[group]), table[key(*group)]
        std = np.std(fvd, ddof=1)
        low, high = stats.t.interval(0.95, len(fvd) - 1, loc=fvd.mean(), scale=stats.sem(fvd))
        assert row["n"] == "3"
        assert float(row["fvd_mean"]) == pytest.approx(fvd.mean(), rel=1e-12)
        assert float(row["fvd_std"]) == pytest.approx(std, rel=1e-12)
        assert float(row["fvd_ci95"]) == pytest.approx((high - low) / 2, rel=1e-9)
        delta = (fvd.mean() - base.mean()) / base.mean() * 100
        assert float(row["fvd_delta_pct"]) == pytest.approx(delta, rel=1e-12)
        if group != ("frozen", True):  # seeds 0, 1, 2 in both: paired
            assert float(row["fvd_p_value"]) == pytest.approx(stats.ttest_rel(fvd, base).pvalue)
        hours = (TIME_S[group] + np.array(SEEDS)) / 3600
        assert float(row["train_time_h_mean"]) == pytest.approx(hours.mean())
    assert table[key("frozen", True)]["fvd_p_value"] == ""  # the baseline is not tested
    assert table[key("frozen", True)]["fvd_delta_pct"] == "0.0"


def test_holm_equals_a_hand_computation():
    # sorted: 0.005*4 = 0.02, 0.01*3 = 0.03, 0.03*2 = 0.06, 0.04*1 -> max(0.04, 0.06) = 0.06
    adjusted = holm([0.01, 0.04, 0.03, float("nan"), 0.005])
    assert adjusted[:3] == pytest.approx([0.03, 0.06, 0.06])
    assert math.isnan(adjusted[3]) and adjusted[4] == pytest.approx(0.02)
    assert holm([0.5, 0.9]) == pytest.approx([1.0, 1.0])  # capped at 1, order kept


def test_holm_runs_over_every_comparison_of_the_study(study):
    every = [s for sums in study.summaries.values() for s in sums]
    tested = [s for s in every if not math.isnan(s.p_value)]
    smallest = min(tested, key=lambda s: s.p_value)
    assert smallest.p_holm == pytest.approx(min(1.0, len(tested) * smallest.p_value))
    assert all(s.p_holm >= s.p_value for s in tested)
    assert all(math.isnan(s.p_holm) for s in every if math.isnan(s.p_value))


def test_paired_test_over_common_seeds_else_welch():
    a, b = [1.0, 2.0, 3.5, 9.0], [1.5, 2.1, 4.0, 7.0]
    test = t_test(list(zip([0, 1, 2, 3], a)), list(zip([0, 1, 2, 5], b)))
    assert test.p == pytest.approx(stats.ttest_rel(a[:3], b[:3]).pvalue)
    assert test.name == "paired t-test over 3 seeds" and test.seeds == "3 seeds"
    test = t_test(list(zip([10, 11, 12, 13], a)), list(zip([0, 1, 2, 3], b)))
    assert test.p == pytest.approx(stats.ttest_ind(a, b, equal_var=False).pvalue)
    assert test.name == "Welch's t-test" and test.seeds == "4 and 4 seeds"
    test = t_test(list(zip([0, 0, 1, 2], a)), list(zip([0, 1, 2, 3], b)))  # repeated seed
    assert test.name == "Welch's t-test"
    assert math.isnan(t_test([(0, 1.0)], [(0, 2.0)]).p)


def test_failed_half_written_and_running_runs_are_reported_not_averaged(study, analysed):
    status = {run.name.split("/")[-1]: run.status for run in study.runs}
    assert status["failed_run"] == "failed" and status["half_written"] == "unreadable"
    assert status["still_running"] == "running"
    baseline = study.groups[0]
    assert [run.seed for run in baseline.runs] == [0, 1, 2]
    assert study.summaries["fvd"][0].mean == pytest.approx(105.0)
    report = (analysed[0] / "ABLATION_RESULTS_REPORT.txt").read_text()
    assert "failed_run: RuntimeError: CUDA out of memory" in report
    assert "half_written/results.json: half-written results.json" in report
    assert "runs/still_running" in report
    assert "Runs found: 15 (12 completed, 1 failed, 1 running, 1 unreadable)" in report


def test_hydra_only_runs_group_with_the_others(study):
    group = next(g for g in study.groups
                 if g.levels["text_encoder"] == level("finetuned")
                 and g.levels["ema"] == level(False))
    hydra_run = next(run for run in group.runs if run.factors_from == ".hydra")
    assert hydra_run.factors == factors("finetuned", False, 2)
    assert group.seeds == ["0", "1", "2"]
    assert study.summaries["fvd"][study.groups.index(group)].n == 3


def test_factors_from_hydra_files_parse_like_the_command_line(tmp_path):
    write_hydra(tmp_path, {"text_encoder": "frozen", "scale": "small"},
                ["ema=True", "optimizer.lr=1e-4", "+tags=[a,b]", "~ckpt_path"])
    assert saved_factors(tmp_path) == {"text_encoder": "frozen", "scale": "small", "ema": True,
                                       "optimizer.lr": 0.0001, "tags": ["a", "b"]}


def test_group_keys_sort_and_print_stably(study):
    labels = [study.label(group) for group in study.groups]
    assert labels == ["ema=true text_encoder=frozen", "ema=false text_encoder=finetuned",
                      "ema=false text_encoder=frozen", "ema=true text_encoder=finetuned"]
    assert level(True) != level(1) and sorted([level(True), level(False)])[0] == level(False)
    assert parse_assignments(["ema=True", "lr=1e-4"], "--baseline") == {
        "ema": level(True), "lr": level(0.0001)}


def test_constant_factors_become_common_settings(study):
    assert study.factors == ["ema", "text_encoder"]
    assert study.common == {"data": "synthetic", "model": "unet3d", "scale": "small"}


def test_metric_directions_say_better_or_worse(analysed):
    directions = {name: Metric(name, "eval", name).direction for name in
                  ("fvd", "lpips", "inference_time_ms", "dtw_distance", "hand_error",
                   "train_time_h", "temporal_consistency", "gloss_accuracy", "ssim", "psnr",
                   "clips_per_s", "hands_found_fraction", "num_videos_generated", "gloss_f1")}
    assert {k for k, v in directions.items() if v == -1} == {
        "fvd", "lpips", "inference_time_ms", "dtw_distance", "hand_error", "train_time_h"}
    assert {k for k, v in directions.items() if v == 1} == {
        "temporal_consistency", "gloss_accuracy", "ssim", "psnr", "clips_per_s",
        "hands_found_fraction", "gloss_f1"}  # gloss_accuracy: "loss" is not a word of it
    report = (analysed[0] / "ABLATION_RESULTS_REPORT.txt").read_text()
    finetuned = next(line for line in report.splitlines() if line.startswith("text_encoder="))
    assert "-11.4% (better)" in finetuned and "+50.0% (worse)" in finetuned  # fvd, time


def test_every_numeric_eval_key_is_a_metric_and_null_ones_are_explained(analysed):
    out = analysed[0]
    header = (out / "comparison_table.csv").read_text().splitlines()[0].split(",")
    for metric in ("final_loss", "best_val_loss", "train_time_h", "peak_memory_gb", "fvd",
                   "lpips", "temporal_consistency", "inference_time_ms", "inference_memory_gb",
                   "num_parameters_millions", "trainable_parameters_millions", "val_loss",
                   "ssim", "gloss_accuracy"):
        assert all(f"{metric}_{s}" in header for s in ("mean", "std", "ci95", "delta_pct",
                                                       "p_value", "p_holm"))
    assert "num_videos_mean" not in header and "steps_mean" not in header  # eval settings
    assert header[:3] == ["ema", "text_encoder", "n"]
    assert all(row["gloss_accuracy_mean"] == ""
               for row in read_table(out / "comparison_table.csv").values())
    report = (out / "ABLATION_RESULTS_REPORT.txt").read_text()
    assert "gloss_accuracy: needs a gloss recogniser: set eval.gloss_model" in report
    assert "no GPU memory recorded" in report
    assert not (out / "gpu_memory.png").exists()


def test_one_seed_gives_blank_intervals_and_asks_for_more(tmp_path):
    tree = sweep_tree(tmp_path / "outputs", seeds=(0,))
    assert analyze(tree) == 0
    out = tree / "analysis"
    for row in read_table(out / "comparison_table.csv").values():
        assert row["n"] == "1" and row["fvd_mean"] != ""
        assert row["fvd_std"] == row["fvd_ci95"] == row["fvd_p_value"] == row["fvd_p_holm"] == ""
    report = (out / "ABLATION_RESULTS_REPORT.txt").read_text()
    assert "More seeds are needed" in report and "one seed: more seeds needed" in report


def test_cli_writes_every_output(analysed):
    out, printed = analysed
    for name in OUTPUTS:
        assert (out / name).stat().st_size > 0, name
    assert sum(line.startswith("wrote ") for line in printed) == len(OUTPUTS)
    assert printed[-1].startswith("analysed 15 runs (12 completed) in 4 groups")
    markdown = (out / "report.md").read_text()
    assert "![training loss curves](training_loss.png)" in markdown
    assert "| ema | text_encoder | n |" in markdown
    assert "### fvd (lower is better)\n\n| group | n | mean ± 95% CI |" in markdown  # per metric
    tex = (out / "comparison_table.tex").read_text()
    assert r"\toprule" in tex and r"$\mathbf{93 \pm" in tex  # best fvd: (finetuned, true)
    sheet = Image.open(out / "samples_01_hello.png")
    assert sheet.height == 20 + len(GROUPS) * (64 + 4)  # a title, then one row per group


def test_the_headline_table_fits_a_page_and_the_csv_keeps_every_metric(tmp_path):
    """Once: comparison_table.md and report.md's table had a mean and an MDE column per metric,
    45 columns for the default sweep."""
    tree = default_sweep_tree(tmp_path / "outputs")
    assert analyze(tree) == 0
    out = tree / "analysis"
    study = build_study(collect([tree], skip=out))
    measured = [m.name for m in study.metrics if study.has_numbers(m)]
    assert len(measured) > 12
    header = (out / "comparison_table.csv").read_text().splitlines()[0].split(",")
    assert header == ["ema", "text_encoder", "n", "diverged", "failed",
                      *(f"{m.name}_{stat}" for m in study.metrics for stat in STATISTICS)]
    report = (out / "report.md").read_text()
    for table in ((out / "comparison_table.md").read_text(),
                  report[report.index("## Comparison table"):]):
        lines = [line for line in table.splitlines() if line.startswith("|")]
        columns = lines[0].strip("| ").split(" | ")
        assert len(columns) <= 12, columns  # a page wide
        assert columns[:5] == ["ema", "text_encoder", "n", "fvd ↓", "fvd MDE"]
        assert columns[-3:] == ["train_time_h ↓", "peak_memory_gb ↓",
                                "trainable_parameters_millions ↓"]
        assert "eval_time_s ↓" not in columns  # a cost, not a quality metric
        assert "| false | frozen | 3 (1 diverged) | diverged in 1 of 3 seeds |" in table
        assert "| true | finetuned | 4 (1 failed) | **93 ± 9 (-11.4%)** | 5.65 |" in table
        line = next(line for line in table.splitlines() if line.startswith("Not shown here: "))
        left_out = line.removeprefix("Not shown here: ").split(". ")[0].split(", ")
        shown = {column.split()[0] for column in columns[3:]}
        assert sorted([*shown, *left_out]) == sorted(measured)  # each metric once: here or named
        assert "in comparison_table.csv and in the per-metric tables" in line
    assert all(f"### {name} (" in report for name in measured)  # the per-metric tables


def test_the_output_dir_is_not_searched(tmp_path):
    data = results(factors("frozen", True, 0), 1.0, 1.0, 0)
    write_run(tmp_path / "run", data)
    write_run(tmp_path / "analysis" / "copied_run", data)
    runs = collect([tmp_path], skip=tmp_path / "analysis")
    assert [run.name for run in runs] == [str(tmp_path / "run")]


def test_baseline_metrics_and_output_format_options(tree, tmp_path):
    assert analyze(tree, "--output-dir", tmp_path, "--baseline", "text_encoder=finetuned",
                   "ema=false", "--metrics", "fvd", "train_time_h", "--output-format", "csv") == 0
    assert not (tmp_path / "comparison_table.tex").exists()
    assert not (tmp_path / "comparison_table.md").exists()
    header = (tmp_path / "comparison_table.csv").read_text().splitlines()[0]
    assert header.startswith("ema,text_encoder,n,diverged,failed,fvd_mean,") and "lpips" not in header
    row = read_table(tmp_path / "comparison_table.csv")[key("finetuned", False)]
    assert row["fvd_delta_pct"] == "0.0" and row["fvd_p_value"] == ""
    report = (tmp_path / "ABLATION_RESULTS_REPORT.txt").read_text()
    assert "Baseline: ema=false text_encoder=finetuned (given by --baseline" in report


def test_named_ablations_label_the_groups_and_baseline_is_the_baseline(tmp_path, capsys):
    """`train.py -m ablation=baseline,text_finetuned,no_ema seed=0,1`, as analyze.py sees it;
    with the original study's flags."""
    arms = {"text_finetuned": ("finetuned", True), "no_ema": ("frozen", False),
            "baseline": ("frozen", True)}
    for arm, (encoder, ema) in arms.items():
        for seed in (0, 1):
            run_dir = tmp_path / "sweep" / f"ablation-{arm}+seed-{seed}"
            data = results({**factors(encoder, ema, seed), "ablation": arm},
                           FVD[encoder, ema][seed], TIME_S[encoder, ema], seed)
            write_run(run_dir, data, resolved=config(encoder, ema, seed, run_dir))
    study = build_study(collect([tmp_path / "sweep"], skip=tmp_path / "analysis"))
    assert study.factors == ["ablation"]
    assert [study.label(group) for group in study.groups] == [
        "ablation=baseline", "ablation=no_ema", "ablation=text_finetuned"]
    assert study.baseline_note == "the default ablation=baseline"
    out = tmp_path / "tables"
    assert analyze("--results-dir", tmp_path / "sweep", "--output-dir", out,
                   "--output-format", "both", "--metrics", "fvd") == 0
    assert (out / "comparison_table.csv").exists() and (out / "comparison_table.md").exists()
    assert not (out / "comparison_table.tex").exists()
    with open(out / "comparison_table.csv") as f:
        rows = {row["ablation"]: row for row in csv.DictReader(f)}
    assert rows["baseline"]["fvd_delta_pct"] == "0.0"
    assert float(rows["no_ema"]["fvd_mean"]) == pytest.approx(np.mean(FVD["frozen", False][:2]))
    assert "| ablation | n |" in (out / "comparison_table.md").read_text()
    capsys.readouterr()


def test_default_baseline_without_the_default_factors(tree):
    no_encoder = [replace(run, factors={k: v for k, v in run.factors.items()
                                        if k != "text_encoder"})
                  for run in collect([tree], skip=tree / "analysis")
                  if run.factors.get("text_encoder") == "frozen"]
    study = build_study(no_encoder)
    assert study.label(study.groups[0]) == "ema=false"  # first in sorted order
    assert study.baseline_note.startswith("the first group in sorted order")


def test_bad_arguments_give_clear_errors(tree, tmp_path, capsys):
    assert analyze(tmp_path / "missing") == 2
    assert "missing' does not exist" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert analyze(tmp_path / "empty") == 2
    assert "no results.json under" in capsys.readouterr().err
    assert analyze(tree, "--baseline", "text_encoder=huge") == 2
    err = capsys.readouterr().err
    assert "--baseline text_encoder=huge matches no group" in err
    assert "ema=true text_encoder=finetuned" in err  # the groups are listed
    assert analyze(tree, "--metrics", "fvd", "bleu") == 2
    assert "unknown metric(s) bleu" in capsys.readouterr().err
    assert analyze(tree, "--baseline", "frozen") == 2
    assert "key=value" in capsys.readouterr().err


def test_gpu_memory_is_plotted_and_compared_when_recorded(tmp_path):
    for (encoder, ema), memory in [(("frozen", True), 10.0), (("finetuned", True), 12.0)]:
        for seed in (0, 1):
            data = results(factors(encoder, ema, seed), 100.0 + seed, 60.0, seed,
                           memory_gb=memory + seed)
            write_run(tmp_path / f"{encoder}_{seed}", data)
    study = build_study(collect([tmp_path], skip=tmp_path / "analysis"))
    assert gpu_memory(study, tmp_path) == tmp_path / "gpu_memory.png"
    assert (tmp_path / "gpu_memory.png").stat().st_size > 0
    assert findings(study)[0][3] == "+19.0% (worse)"  # 12.5 GB against 10.5 GB
    assert sample_sheets(study, tmp_path) == "no completed run has samples/index.json"


def test_sample_sheets_draw_german_captions_with_glyphs(tmp_path):
    """PHOENIX's captions are German; umlauts were once drawn as boxes."""
    prompt = "Grüße aus Köln"
    write_run(tmp_path / "run", results(factors("frozen", True, 0), 1.0, 1.0, 0), prompts=(prompt,))
    (path,) = sample_sheets(build_study(collect([tmp_path], skip=tmp_path / "out")), tmp_path)
    sheet = Image.open(path)

    def title_row(text: str) -> bytes:
        image = Image.new("RGB", sheet.size, "white")
        ImageDraw.Draw(image).text((4, 4), text, fill="black", font=caption_font(f'"{prompt}"'))
        return image.crop((0, 0, sheet.width, 20)).tobytes()

    drawn = sheet.crop((0, 0, sheet.width, 20)).tobytes()
    assert drawn == title_row(f'"{prompt}"')
    assert drawn != title_row(f'"{prompt}"'.replace("ü", "\U0010FFFD").replace("ö", "\U0010FFFD"))


def test_no_completed_run_still_gives_a_report_and_exits_1(tmp_path, capsys):
    write_run(tmp_path / "run", results(factors("frozen", True, 0), 1.0, 1.0, 0, "running"))
    write_run(tmp_path / "broken", "{")
    assert analyze(tmp_path) == 1  # once 0: a study of nothing looked like a success
    report = (tmp_path / "analysis" / "ABLATION_RESULTS_REPORT.txt").read_text()
    assert "Runs found: 2 (0 completed, 0 failed, 1 running, 1 unreadable)" in report
    printed = capsys.readouterr()
    assert printed.out.splitlines()[-1].startswith("analysed 2 runs (0 completed)")
    assert printed.err == ("analyze.py: error: none of the 2 runs completed, so nothing was "
                           f"compared: {tmp_path / 'analysis' / 'ABLATION_RESULTS_REPORT.txt'} "
                           "lists them and why\n")


def test_loss_curves_align_seeds_on_step():
    band = group_band([(np.array([1.0, 2.0, 3.0]), np.array([0.9, 0.5, 0.3])),
                       (np.array([1.0, 3.0]), np.array([0.7, 0.1]))])
    assert band.steps.tolist() == [1.0, 2.0, 3.0]
    assert band.mean == pytest.approx([0.8, 0.5, 0.2])
    half = stats.t.ppf(0.975, 1) * np.std([0.9, 0.7], ddof=1) / math.sqrt(2)
    assert band.half_width[0] == pytest.approx(half) and math.isnan(band.half_width[1])


def test_analyze_py_as_a_command(tree, tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "analyze.py"), "--results-dir", str(tree),
                           "--output-dir", str(tmp_path), "--output-format", "md"],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"wrote {tmp_path / 'comparison_table.md'}" in done.stdout
    assert (tmp_path / "report.md").exists()


@pytest.mark.slow
def test_200_runs_benchmark(tmp_path):
    """Prints the time to analyse 200 runs (20 groups x 10 seeds); no assertion on speed."""
    sweep = tmp_path / "outputs" / "multirun" / "bench"
    for lr in range(5):
        for encoder, ema in GROUPS:
            for seed in range(10):
                fvd = FVD[encoder, ema][seed % 3] + lr + seed / 10
                rate = 10.0 ** -(lr + 3)
                data = results({**factors(encoder, ema, seed), "optimizer.lr": rate},
                               fvd, TIME_S[encoder, ema], seed)
                run_dir = sweep / f"lr{lr}_{encoder}_{ema}_{seed}"
                write_run(run_dir, data, prompts=PROMPTS if seed == 0 else (),
                          resolved=config(encoder, ema, seed, run_dir, **{"optimizer.lr": rate}))
    start = time.perf_counter()  # a fresh interpreter: imports count
    done = subprocess.run([sys.executable, str(ROOT / "analyze.py"), str(tmp_path / "outputs")],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - start
    assert done.returncode == 0, done.stderr
    assert "analysed 200 runs (200 completed) in 20 groups" in done.stdout
    print(f"\nanalyze.py on 200 runs: {elapsed:.2f} s wall, including start-up and imports")


def test_a_numeric_factor_sorts_by_value_and_gets_its_plot(tmp_path):
    tree = numeric_tree(tmp_path / "outputs", "optimizer.lr", [1e-3, 1e-5, 2e-3, 1e-4])
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert analyze(tree) == 0
    out = tree / "analysis"
    with open(out / "comparison_table.csv") as f:
        rows = list(csv.DictReader(f))
    assert [row["optimizer.lr"] for row in rows] == ["1e-05", "0.0001", "0.001", "0.002"]
    assert [float(row["fvd_mean"]) for row in rows] == [100.5, 110.5, 120.5, 130.5]
    assert Image.open(out / "factor_optimizer.lr.png").size[0] > 0
    assert "![quality against numeric factors: factor_optimizer.lr](factor_optimizer.lr.png)" in (
        out / "report.md").read_text()
    study = build_study(collect([tree], skip=out))
    quality = [m for m in study.metrics if not m.is_cost and study.has_numbers(m)]
    figure = factor_figure(study, "optimizer.lr", quality)
    fvd = figure.axes[[m.name for m in quality].index("fvd")]
    assert fvd.get_xscale() == "log"  # 1e-5 to 2e-3: more than a decade
    x, y = fvd.lines[0].get_data()
    assert list(x) == [1e-5, 1e-4, 1e-3, 2e-3] and list(y) == [100.5, 110.5, 120.5, 130.5]
    assert {m.name for m in quality} >= {"fvd", "val_loss", "ssim"}
    assert not {m.name for m in quality} & {"train_time_h", "num_parameters_millions"}  # costs

    widths = numeric_tree(tmp_path / "widths", "model.denoiser.base_channels", [16, 8, 32])
    study = build_study(collect([widths], skip=widths / "analysis"))
    assert [row.split(",")[0] for row in csv_table(study).splitlines()[1:]] == ["8", "16", "32"]
    figure = factor_figure(study, "model.denoiser.base_channels", quality)
    assert figure.axes[0].get_xscale() == "linear"  # 8 to 32: within a decade
