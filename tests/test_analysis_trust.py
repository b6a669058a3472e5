"""analyze.py's conclusions can be trusted: the reproductions of issue 12 (a run counted twice,
a phantom ablation, the wrong quality metric, a foreign record averaged in, a swallowed
argument) and the false-positive rate and power of its tests on simulated data."""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from analysis_fixtures import FVD, factors, results, write_run
from text2sign.analysis.collect import collect
from text2sign.analysis.report import metric_rows
from text2sign.analysis.schema import schema_error
from text2sign.analysis.stats import ALPHA, mde, t_test, welch_mde
from text2sign.analysis.study import build_study

from test_analysis import analyze, analysed, key, read_table, tree  # noqa: F401 (fixtures)


def record(fvd: float = 100.0, seed: int = 0, **factor_values) -> dict:
    return results(factors(factor_values.get("text_encoder", "frozen"),
                           factor_values.get("ema", True), seed), fvd, 60.0, seed)


# results.json through its schema ------------------------------------------------------------

@pytest.mark.parametrize("change, reason", [
    ({"schema_version": 99}, "schema_version 99 is not 1"),
    ({"schema_version": None}, "schema_version None is not 1"),
    ({"status": "done"}, "status 'done' is not one of completed, failed, running"),
    ({"factors": ["ema"]}, "factors is ['ema'] (list), expected dict or null"),
    ({"train": 3}, "train is 3 (int), expected an object"),
])
def test_schema_rejects_foreign_records(change, reason):
    assert reason in schema_error({**record(), **change})


@pytest.mark.parametrize("section, key, value, reason", [
    ("eval", "val_loss", "abc", "eval.val_loss is 'abc' (str), expected a number, null"),
    ("eval", "fvd", True, "eval.fvd is True (bool)"),
    ("train", "time_s", "1h", "train.time_s is '1h' (str), expected a number or null"),
    ("eval", "weights", 3, "eval.weights is 3 (int), expected text"),
])
def test_schema_rejects_wrong_types(section, key, value, reason):
    data = record()
    data[section][key] = value
    assert reason in schema_error(data)


def test_schema_accepts_settings_objects_and_nulls():
    data = record()
    data["eval"].update(retrieval={"k": 8, "pool": "test"}, caption_retrieval_acc=None,
                        per_prompt=[0.1, 0.2])
    assert schema_error(data) is None


def test_foreign_records_are_listed_with_file_and_reason_never_averaged(tmp_path):
    """Issue 12, item 4: a version-99 record with val_loss 123 was averaged in (+6004%)."""
    for seed in (0, 1):
        write_run(tmp_path / f"ok{seed}", record(100.0 + seed, seed))
    v99 = {**record(100.0, 2), "schema_version": 99}
    v99["eval"]["val_loss"] = 123
    write_run(tmp_path / "v99", v99)
    abc = record(100.0, 3)
    abc["eval"]["val_loss"] = "abc"
    write_run(tmp_path / "abc", abc)
    study = build_study(collect([tmp_path], skip=tmp_path / "analysis"))
    assert study.summaries["val_loss"][0].n == 2
    assert study.summaries["val_loss"][0].mean == pytest.approx((100 + 101) / 2 / 400)
    assert analyze(tmp_path) == 0
    report = (tmp_path / "analysis" / "ABLATION_RESULTS_REPORT.txt").read_text()
    assert f"{tmp_path / 'v99' / 'results.json'}: schema_version 99 is not 1" in report
    assert f"{tmp_path / 'abc' / 'results.json'}: eval.val_loss is 'abc' (str)" in report
    assert "Runs found: 4 (2 completed, 0 failed, 0 running, 2 unreadable)" in report


# which metrics are compared, and the quality metric -----------------------------------------

def test_quality_is_chosen_by_quality_not_by_metrics(tree, tmp_path, capsys):
    """Issue 12, item 3: `--metrics fvd lpips train_time_h` made train_time_h the quality."""
    for metrics in (["fvd", "lpips", "train_time_h"], ["lpips", "train_time_h"]):
        assert analyze(tree, "--output-dir", tmp_path, "--metrics", *metrics) == 0
        report = (tmp_path / "ABLATION_RESULTS_REPORT.txt").read_text()
        assert "Quality metric: fvd (lower is better)" in report
        assert "fvd 11.4% better" in report  # (finetuned, true) against the baseline
        header = (tmp_path / "comparison_table.csv").read_text().splitlines()[0]
        assert ("fvd_mean" in header) == ("fvd" in metrics)  # tabled only when asked for
    assert analyze(tree, "--output-dir", tmp_path, "--quality", "lpips") == 0
    report = (tmp_path / "ABLATION_RESULTS_REPORT.txt").read_text()
    assert "Quality metric: lpips (lower is better)" in report
    assert "Quality Δ (lpips)" in report
    assert analyze(tree, "--output-dir", tmp_path, "--quality", "bleu") == 2
    assert "--quality: unknown metric(s) bleu" in capsys.readouterr().err


def test_without_fvd_or_losses_there_is_no_quality_metric(tmp_path):
    for seed in (0, 1):
        data = record(100.0 + seed, seed)
        data["eval"].update(fvd=None, val_loss=None)
        data["train"].update(best_val_loss=None)
        write_run(tmp_path / f"run{seed}", data)
    study = build_study(collect([tmp_path], skip=tmp_path / "analysis"), metric_names=[
        "train_time_h"])
    assert study.quality is None  # not train_time_h, the only tabled metric


def test_bounds_chance_settings_and_real_clip_figures_are_not_compared(tmp_path):
    retrieval = {"caption_retrieval_acc": 0.5, "caption_retrieval_acc_ci_low": 0.3,
                 "caption_retrieval_acc_ci_high": 0.7, "caption_retrieval_chance": 0.125,
                 "retrieval": {"k": 8, "split": "test"}, "text_loss_gap": 0.02,
                 "motion": 0.1, "motion_real": 0.05, "temporal_consistency_real": 0.4}
    for encoder, shift in (("frozen", 0.0), ("finetuned", 0.1)):
        for seed in (0, 1, 2):
            data = record(100.0, seed, text_encoder=encoder)
            data["eval"].update({key: value + shift + seed / 100 if isinstance(value, float)
                                 else value for key, value in retrieval.items()})
            write_run(tmp_path / f"{encoder}{seed}", data)
    study = build_study(collect([tmp_path], skip=tmp_path / "analysis"))
    names = {metric.name: metric for metric in study.metrics}
    assert {"caption_retrieval_acc", "text_loss_gap", "motion"} <= set(names)
    assert not {"caption_retrieval_acc_ci_low", "caption_retrieval_acc_ci_high",
                "caption_retrieval_chance", "retrieval", "motion_real",
                "temporal_consistency_real"} & set(names)
    assert names["text_loss_gap"].direction == names["caption_retrieval_acc"].direction == 1
    assert names["motion"].direction == 0  # more motion is neither better nor worse
    _, rows = metric_rows(study, names["motion"])
    assert rows[1][0] == "text_encoder=finetuned" and rows[1][4] == "+90.9% (higher)"


def test_holm_family_is_the_tabled_metrics_and_the_quality_metric(tree):
    study = build_study(collect([tree], skip=tree / "analysis"), metric_names=["lpips"])
    assert [m.name for m in study.family] == ["lpips", "fvd"]
    tested = [s for name in ("lpips", "fvd") for s in study.summaries[name]
              if not math.isnan(s.p_value)]
    assert len(tested) == 6  # 3 groups against the baseline, 2 metrics
    smallest = min(tested, key=lambda s: s.p_value)
    assert smallest.p_holm == pytest.approx(min(1.0, 6 * smallest.p_value))
    assert all(math.isnan(s.p_holm) for s in study.summaries["train_time_h"])  # not reported


# arguments and the output directory ---------------------------------------------------------

def test_option_lists_do_not_swallow_the_results_directory(tmp_path, monkeypatch, capsys):
    """Issue 12, item 5: `--metrics val_loss DIR` analysed outputs/ with DIR as a metric."""
    tree = tmp_path / "mine"
    for seed in (0, 1):
        write_run(tree / f"run{seed}", record(100.0 + seed, seed))
    monkeypatch.chdir(tmp_path)  # no outputs/ here: the old parse fails on it
    assert analyze("--metrics", "val_loss", "mine") == 0
    header = (tree / "analysis" / "comparison_table.csv").read_text().splitlines()[0]
    assert header.startswith("n,val_loss_mean,") and header.count(",fvd") == 0
    assert analyze("--baseline", "ema=true", str(tree), "--output-dir", "out2") == 0
    assert "Runs found: 2" in (tmp_path / "out2" / "ABLATION_RESULTS_REPORT.txt").read_text()
    with pytest.raises(SystemExit, match="2"):
        analyze("--metrics", "mine")  # names no metric: argparse's usage error
    assert "--metrics got only directories: mine" in capsys.readouterr().err


def test_an_output_dir_inside_the_results_is_skipped_and_said_so(tmp_path, capsys):
    """Issue 12, item 5: --output-dir pointing into an input run silently dropped that run."""
    for seed in (0, 1, 2):
        write_run(tmp_path / f"run{seed}", record(100.0 + seed, seed))
    assert analyze(tmp_path, "--output-dir", tmp_path / "run2") == 0
    note = (f"{tmp_path / 'run2'} (the output directory) is inside {tmp_path} and was not "
            "searched: 1 results.json in it left out")
    assert f"note: {note}" in capsys.readouterr().out
    report = (tmp_path / "run2" / "ABLATION_RESULTS_REPORT.txt").read_text()
    assert f"Not searched: {note}" in report and "Runs found: 2 " in report
    assert analyze(tmp_path) == 0  # the default analysis/ holds no run: said all the same
    assert "analysis (the output directory) is inside" in capsys.readouterr().out


# power: the minimum detectable difference, and the tests' error rates on simulated data ---

def called_significant(rng, n: int, effect: float, paired: bool, repeats: int) -> float:
    """The fraction of `repeats` simulated comparisons of two arms of n seeds (sd 1, means 0
    and `effect`) that t_test calls significant at ALPHA (one comparison: Holm p = p)."""
    seeds = list(range(n))
    calls = 0
    for _ in range(repeats):
        base, arm = rng.normal(0, 1, n), rng.normal(effect, 1, n)
        if paired:  # a shared per-seed component, as when the seed fixes data order and init
            shared = rng.normal(0, 2, n)
            base, arm = base + shared, arm + shared
        other = seeds if paired else [s + n for s in seeds]
        calls += t_test(list(zip(other, arm)), list(zip(seeds, base))).p < ALPHA
    return calls / repeats


@pytest.mark.parametrize("paired", [True, False])
def test_null_data_is_called_significant_about_5_percent_of_the_time(paired):
    rate = called_significant(np.random.default_rng(0), 5, 0.0, paired, 1000)
    assert 0.03 <= rate <= 0.07, rate  # 5% ± 3 binomial standard errors


def test_a_planted_effect_of_one_mde_is_found_80_percent_of_the_time():
    n = 5  # paired: the differences have sd sqrt(2), se sqrt(2/n), n-1 dof
    effect = mde(math.sqrt(2 / n), n - 1)
    rate = called_significant(np.random.default_rng(1), n, effect, True, 1000)
    assert 0.76 <= rate <= 0.84, rate
    # Welch with equal spreads and sizes: about the pooled test's power at 2n-2 dof
    effect = mde(math.sqrt(2 / n), 2 * n - 2)
    rate = called_significant(np.random.default_rng(2), n, effect, False, 1000)
    assert 0.72 <= rate <= 0.84, rate


def test_mde_is_the_difference_seen_with_80_percent_power():
    assert mde(1.0, 10 ** 6) == pytest.approx(stats.norm.ppf(0.975) + stats.norm.ppf(0.8),
                                              abs=1e-3)  # large samples: z-test, 2.80 se
    assert mde(2.0, 4) == pytest.approx(2 * mde(1.0, 4))  # in units of the standard error
    assert mde(1.0, 2) > mde(1.0, 4) > mde(1.0, 9)  # fewer seeds: only larger effects
    assert math.isnan(mde(0.0, 4))
    x, y = np.array([1.0, 2.0, 3.5]), np.array([1.5, 2.1, 4.0, 7.0])
    vx, vy = x.var(ddof=1) / 3, y.var(ddof=1) / 4
    dof = (vx + vy) ** 2 / (vx ** 2 / 2 + vy ** 2 / 3)
    assert welch_mde(x, y) == pytest.approx(mde(math.sqrt(vx + vy), dof))
    assert dof == pytest.approx(stats.ttest_ind(x, y, equal_var=False).df)


def test_mde_is_tabled_and_read_into_not_significant(analysed):
    out = analysed[0]
    base = np.array(FVD["frozen", True])
    row = read_table(out / "comparison_table.csv")[key("frozen", False)]
    diff = np.array(FVD["frozen", False]) - base
    assert float(row["fvd_mde"]) == pytest.approx(mde(np.std(diff, ddof=1) / math.sqrt(3), 2))
    assert read_table(out / "comparison_table.csv")[key("frozen", True)]["fvd_mde"] == ""
    markdown = (out / "comparison_table.md").read_text()
    assert "| fvd ↓ | fvd MDE |" in markdown
    report = (out / "ABLATION_RESULTS_REPORT.txt").read_text()
    assert "MDE (80% power)" in report
    assert re.search(r"not significant \(Holm p=[0-9.e-]+, paired t-test over 3 seeds\): an "
                     r"effect smaller than [0-9.]+ \([0-9.]+%\) could not be seen with 3 seeds "
                     r"\(80% power\)", report)
