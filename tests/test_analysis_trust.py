"""analyze.py's conclusions can be trusted: the reproductions of issue 12 (a run counted twice,
a phantom ablation, the wrong quality metric, a foreign record averaged in, a swallowed
argument) and the false-positive rate and power of its tests on simulated data."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from analysis_fixtures import factors, results, write_run
from text2sign.analysis.collect import collect
from text2sign.analysis.report import metric_rows
from text2sign.analysis.schema import schema_error
from text2sign.analysis.study import build_study

from test_analysis import analyze, tree  # noqa: F401 (a fixture)


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
