"""analyze.py's conclusions can be trusted: reproductions of errors it once made (a run counted
twice, a phantom ablation, the wrong quality metric, a foreign record averaged in, a swallowed
argument) and the false-positive rate and power of its tests on simulated data."""

from __future__ import annotations

import csv
import json
import math
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from analysis_fixtures import FVD, GROUPS, TIME_S, config, factors, results, write_run
from scipy import stats
from test_analysis import analysed, analyze, key, read_table, tree  # noqa: F401 (fixtures)

from text2sign.analysis.collect import Run, collect
from text2sign.analysis.levels import parse_assignments
from text2sign.analysis.report import findings, metric_rows
from text2sign.analysis.stats import ALPHA, mde, significant, t_test, welch_mde
from text2sign.analysis.study import build_study
from text2sign.cli import analyze as cli
from text2sign.rundir.identity import run_config
from text2sign.rundir.schema import read_error


@pytest.fixture(autouse=True)
def no_plots(monkeypatch):
    """These tests read tables and reports; test_analysis.py checks the plots."""
    monkeypatch.setattr(cli, "PLOTS", {})
    monkeypatch.setattr(cli, "sample_sheets", lambda study, out: "not drawn in these tests")


def record(fvd: float = 100.0, seed: int = 0, **factor_values) -> dict:
    return results(factors(factor_values.get("text_encoder", "frozen"),
                           factor_values.get("ema", True), seed), fvd, 60.0, seed)


# results.json through its schema ------------------------------------------------------------

@pytest.mark.parametrize("change, reason", [
    ({"schema_version": 99}, "schema_version 99 is not 1"),
    ({"schema_version": None}, "schema_version None is not 1"),
    ({"status": "done"}, "status 'done' is not one of completed, failed, running"),
    ({"factors": ["ema"]}, "factors is ['ema'] (list), expected an object or null"),
    ({"train": 3}, "train is 3 (int), expected an object"),
])
def test_schema_rejects_foreign_records(change, reason):
    assert reason in read_error({**record(), **change})


@pytest.mark.parametrize("section, key, value, reason", [
    ("eval", "val_loss", "abc", "eval.val_loss is 'abc' (str), expected a number or null"),
    ("eval", "clip_score", "high", "eval.clip_score is 'high' (str), expected a number, an "
                                   "object, a list or null"),  # another code's metric
    ("eval", "fvd", True, "eval.fvd is True (bool)"),
    ("train", "time_s", "1h", "train.time_s is '1h' (str), expected a number or null"),
    ("eval", "weights", 3, "eval.weights is 3 (int), expected text"),
])
def test_schema_rejects_wrong_types(section, key, value, reason):
    data = record()
    data[section][key] = value
    assert reason in read_error(data)


def test_schema_accepts_settings_objects_and_nulls():
    data = record()
    data["eval"].update(retrieval={"k": 8, "pool": "test"}, caption_retrieval_acc=None,
                        per_prompt=[0.1, 0.2])
    assert read_error(data) is None


def test_foreign_records_are_listed_with_file_and_reason_never_averaged(tmp_path):
    """Once: a version-99 record with val_loss 123 was averaged in (+6004%)."""
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
    """Once: `--metrics fvd lpips train_time_h` made train_time_h the quality."""
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
    """Once: `--metrics val_loss DIR` analysed outputs/ with DIR as a metric."""
    tree = tmp_path / "mine"
    for seed in (0, 1):
        write_run(tree / f"run{seed}", record(100.0 + seed, seed))
    monkeypatch.chdir(tmp_path)  # no outputs/ here: the old parse fails on it
    assert analyze("--metrics", "val_loss", "mine") == 0
    header = (tree / "analysis" / "comparison_table.csv").read_text().splitlines()[0]
    assert header.startswith("n,diverged,failed,val_loss_mean,") and header.count(",fvd") == 0
    assert analyze("--baseline", "ema=true", str(tree), "--output-dir", "out2") == 0
    assert "Runs found: 2" in (tmp_path / "out2" / "ABLATION_RESULTS_REPORT.txt").read_text()
    with pytest.raises(SystemExit, match="2"):
        analyze("--metrics", "mine")  # names no metric: argparse's usage error
    assert "--metrics got only directories: mine" in capsys.readouterr().err


def test_an_output_dir_inside_the_results_is_skipped_and_said_so(tmp_path, capsys):
    """Once: --output-dir pointing into an input run silently dropped that run."""
    for seed in (0, 1, 2):
        write_run(tmp_path / f"run{seed}", record(100.0 + seed, seed))
    assert analyze(tmp_path, "--output-dir", tmp_path / "run2") == 0
    note = (f"{tmp_path / 'run2'}, the output directory (inside {tmp_path}): 1 results.json "
            "in it left out")
    assert f"not searched: {note}" in capsys.readouterr().out
    report = (tmp_path / "run2" / "ABLATION_RESULTS_REPORT.txt").read_text()
    assert f"Not searched: {note}" in report and "Runs found: 2 " in report
    assert analyze(tmp_path) == 0  # the default analysis/ holds no run: said all the same
    assert (f"not searched: {tmp_path / 'analysis'}, the output directory (inside {tmp_path})\n"
            in capsys.readouterr().out)


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
    dofs = (1, 1.5, 2, 3, 4, 5, 8, 14, 30, 100, 1e4)  # Welch's dof is fractional
    assert np.all(np.diff([mde(1.0, dof) for dof in dofs]) < 0)  # fewer seeds: larger effects
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


# run identity: duplicates, conflicts, groups from the configuration that ran ----------------

def write_sweep(sweep: Path, seeds: tuple[int, ...], commit: str = "c0ffee", started: str =
                "2026-01-01T00:00:00+00:00", **extra) -> Path:
    """The 2x2 grid over `seeds` as train.py writes it; `extra` recorded factors, like the
    `experiment` of `python train.py -m experiment=ablation_seeds`."""
    for encoder, ema in GROUPS:
        for seed in seeds:
            run_dir = sweep / f"ema={ema},seed={seed},text_encoder={encoder}"
            data = results({**factors(encoder, ema, seed), **extra}, FVD[encoder, ema][seed],
                           TIME_S[encoder, ema], seed)
            data["provenance"] = {"git_commit": commit, "git_dirty": False,
                                  "started_at": started}
            write_run(run_dir, data, resolved=config(encoder, ema, seed, run_dir))
    return sweep


def report_of(out: Path) -> str:
    return (out / "ABLATION_RESULTS_REPORT.txt").read_text()


def test_copies_of_a_sweep_are_counted_once(tmp_path):
    """Once: two copies of one sweep gave n=4, seeds 0, 0, 1, 1 and turned a
    paired test over 2 seeds into a 'significant' Welch test."""
    write_sweep(tmp_path / "one" / "sweep", (0, 1))
    assert analyze(tmp_path / "one") == 0
    shutil.copytree(tmp_path / "one" / "sweep", tmp_path / "two" / "sweep")
    shutil.copytree(tmp_path / "one" / "sweep", tmp_path / "two" / "sweep_copy")
    assert analyze(tmp_path / "two") == 0
    single = report_of(tmp_path / "one" / "analysis")
    both = report_of(tmp_path / "two" / "analysis")
    assert "ema=true text_encoder=frozen     | 2 | 0, 1" in both
    assert "paired t-test over 2 seeds" in both
    assert both.count("Welch's t-test") == 1  # in the notes on the method only
    finding = next(line for line in single.splitlines() if line.startswith("text_encoder="))
    assert finding in both  # the same numbers as one copy
    assert ("Counted once: 8 run(s) found more than once, 8 copies left out; listed below"
            in both)
    assert (f"{tmp_path / 'two' / 'sweep' / 'ema=True,seed=0,text_encoder=frozen'} used (the "
            f"first started); not used: {tmp_path / 'two' / 'sweep_copy'}"
            "/ema=True,seed=0,text_encoder=frozen") in both


def test_the_readme_workflow_gives_three_seeds_per_group(tmp_path):
    """The 4-job sweep, then experiment=ablation_seeds: seed 0 was counted twice."""
    write_sweep(tmp_path / "multirun" / "a", (0,))
    write_sweep(tmp_path / "multirun" / "b", (0, 1, 2), started="2026-01-02T00:00:00+00:00",
                experiment="ablation_seeds")
    assert analyze(tmp_path) == 0
    report = report_of(tmp_path / "analysis")
    groups = report[report.index("Groups (every"):].splitlines()[3:7]
    assert [row.split("|")[1:] for row in groups] == [[" 3 ", " 0, 1, 2"]] * 4
    assert "(factors: ema, text_encoder)" in report
    assert ("experiment: differs between runs that ran the same configuration" in report)
    assert "multirun/a/ema=True,seed=0,text_encoder=frozen used (the first started)" in report


def test_a_default_valued_override_is_not_an_ablation(tmp_path):
    """Once: `data.image_size=8` where the preset already set 8 formed a group of
    its own, reported as an ablation of bit-identical runs."""
    for seed in (0, 1):
        plain_dir, override_dir = tmp_path / f"plain{seed}", tmp_path / f"override{seed}"
        write_run(plain_dir, record(100.0 + seed, seed),
                  resolved=config("frozen", True, seed, plain_dir))
        write_run(override_dir, results({**factors("frozen", True, seed),
                                         "data.image_size": 16}, 100.0 + seed, 60.0, seed),
                  resolved=config("frozen", True, seed, override_dir))
    study = build_study(collect([tmp_path], skip=tmp_path / "analysis"))
    assert len(study.groups) == 1 and study.factors == []
    assert [run.name for run in study.groups[0].runs] == [str(tmp_path / "plain0"),
                                                          str(tmp_path / "plain1")]
    assert [[run.name for run in copies.others] for copies in study.copies] == [
        [str(tmp_path / "override0")], [str(tmp_path / "override1")]]  # the same runs
    assert findings(study) == []


def test_factors_come_from_the_configuration_with_the_shortest_names(tmp_path):
    """A preset, an override and a key no setting names, each changing several keys."""
    cases = [({}, {}), ({"scale": "tiny"}, {"data.image_size": 8, "model.image_size": 8,
                                            "trainer.max_steps": 4}),
             ({"data.image_size": 32}, {"data.image_size": 32, "model.image_size": 32})]
    for k, (named, changes) in enumerate(cases):
        for seed in (0, 1):
            run_dir = tmp_path / f"case{k}_{seed}"
            write_run(run_dir, results({**factors("frozen", True, seed), **named}, 100.0 + k,
                                       60.0, seed),
                      resolved=config("frozen", True, seed, run_dir, **changes))
    older = tmp_path / "older_code"  # its code had no optimizer.lr: absent, not a default
    resolved = config("frozen", True, 0, older)
    del resolved["optimizer"]["lr"]
    write_run(older, record(100.0, 0), resolved=resolved)
    study = build_study(collect([tmp_path], skip=tmp_path / "analysis"))
    assert study.factors == ["data.image_size", "optimizer.lr", "scale"]
    assert [study.label(g) for g in study.groups] == [  # all are frozen, ema: sorted order
        "data.image_size=8 optimizer.lr=0.001 scale=tiny",
        "data.image_size=16 optimizer.lr=absent scale=small",
        "data.image_size=16 optimizer.lr=0.001 scale=small",
        "data.image_size=32 optimizer.lr=0.001 scale=small"]
    assert [len(g.runs) for g in study.groups] == [2, 1, 2, 2]
    runs = collect([tmp_path], skip=tmp_path / "analysis")  # any key of the configuration:
    study = build_study(runs, baseline=parse_assignments(["model.image_size=32"], "--baseline"))
    assert study.label(study.groups[0]) == "data.image_size=32 optimizer.lr=0.001 scale=small"


def test_seed_copies_and_run_local_keys_do_not_split_groups(tmp_path):
    """model.seed and data.shuffle_seed follow the seed; paths, caches, a resumed run's own
    checkpoint and retry_failed say where and how a run ran, not what it computed."""
    for seed in (0, 1):
        run_dir = tmp_path / f"run{seed}"
        write_run(run_dir, record(100.0 + seed, seed), resolved=config(
            "frozen", True, seed, run_dir, ckpt_path=f"{run_dir}/checkpoints/last.ckpt",
            retry_failed=bool(seed), **{"eval.cache_dir": f"/cache{seed}"}))
    study = build_study(collect([tmp_path], skip=tmp_path / "analysis"))
    assert len(study.groups) == 1 and study.groups[0].seeds == ["0", "1"]
    other = tmp_path / "from_another_run"  # continued from another run's checkpoint
    write_run(other, record(100.0, 0), resolved=config("frozen", True, 0, other,
                                                       ckpt_path=f"{tmp_path}/x/last.ckpt"))
    study = build_study(collect([tmp_path], skip=tmp_path / "analysis"))
    assert study.factors == ["ckpt_path"] and len(study.groups) == 2


def test_conflicting_runs_are_shown_and_the_flag_picks_one(tmp_path, capsys):
    """The same configuration and seed, re-trained after a code change: never merged."""
    write_sweep(tmp_path / "old", (0, 1), commit="1111111aaa")
    new = write_sweep(tmp_path / "new", (0,), commit="2222222bbb",
                      started="2026-02-01T00:00:00+00:00")
    moved = new / "ema=True,seed=0,text_encoder=frozen"
    data = json.loads((moved / "results.json").read_text())
    data["eval"]["fvd"] = 50.0
    (moved / "results.json").write_text(json.dumps(data))
    assert analyze(tmp_path) == 2
    err = capsys.readouterr().err
    assert ("4 run(s) were made twice, with the same configuration and seed but different "
            "code") in err
    assert f"{moved} (commit 2222222bbb, started 2026-02-01T00:00:00+00:00)" in err
    assert "--on-conflict newest" in err
    for policy, fvd in (("newest", 50.0), ("oldest", 100.0)):
        assert analyze(tmp_path, "--on-conflict", policy) == 0
        table = read_table(tmp_path / "analysis" / "comparison_table.csv")
        assert float(table[key("frozen", True)]["fvd_mean"]) == pytest.approx((fvd + 110) / 2)
    report = report_of(tmp_path / "analysis")
    assert "Conflicts: the same configuration and seed, different code" in report
    assert (f"{tmp_path / 'old' / 'ema=True,seed=0,text_encoder=frozen'} (commit 1111111aaa, "
            "started 2026-01-01T00:00:00+00:00) used (--on-conflict oldest); not used: "
            f"{moved} (commit 2222222bbb") in report


def test_runs_without_metadata_are_grouped_by_their_factors_and_said_so(tmp_path):
    for seed in (0, 1):
        write_run(tmp_path / f"old{seed}", record(100.0 + seed, seed))
        write_run(tmp_path / f"new{seed}", record(90.0 + seed, seed, text_encoder="finetuned"),
                  resolved=config("finetuned", True, seed, tmp_path / f"new{seed}"))
    assert analyze(tmp_path) == 0
    report = report_of(tmp_path / "analysis")
    assert "Groups: 2, by the recorded factors: some run has no metadata.json" in report
    section = report[report.index("Runs without metadata.json"):]
    assert f"{tmp_path / 'old0'}" in section and f"{tmp_path / 'new0'}" not in section


def test_null_studies_with_copied_runs_call_about_5_percent_significant():
    """Whole studies on simulated null data, every run found twice: the copies must not
    shrink the p-values (counted twice, seeds 0, 0, 1, 1 ... made Welch's test reject ~20%)."""
    rng = np.random.default_rng(3)
    calls, repeats = 0, 400
    for _ in range(repeats):
        runs = []
        for encoder in ("frozen", "finetuned"):
            for seed in range(4):
                data = record(float(rng.normal(100, 5)), seed, text_encoder=encoder)
                data["provenance"] = {"started_at": "2026-01-01T00:00:00"}
                path = Path(f"/sim/{encoder}{seed}")
                runs += [Run(path, f"{path}{copy}", "completed", None, data["factors"], data,
                             config=run_config(config(encoder, True, seed, path)))
                         for copy in "ab"]
        study = build_study(runs, metric_names=["fvd"])
        assert [g.seeds for g in study.groups] == [["0", "1", "2", "3"]] * 2
        calls += significant(study.summaries["fvd"][1]) is True
    assert 0.02 <= calls / repeats <= 0.08, calls / repeats  # 5% ± 3 standard errors


# trust at the edges: diverged runs, degenerate statistics, labels (issue 27) ----------------

VAL_LOSS = {"baseline": [0.100, 0.110, 0.105, 0.108], "arm": [0.070, 0.072, 0.071, 0.069]}


def two_arms(root: Path, arm_seed_3: str) -> Path:
    """Two arms of 4 seeds (frozen: the baseline; finetuned, clearly lower val_loss), the
    finetuned arm's seed 3 diverged as each kind of record says it."""
    for encoder, name in (("frozen", "baseline"), ("finetuned", "arm")):
        for seed, value in enumerate(VAL_LOSS[name]):
            run_dir = root / f"{encoder}{seed}"
            data = record(100.0, seed, text_encoder=encoder)
            data["eval"]["val_loss"] = value
            if (name, seed) == ("arm", 3):
                if arm_seed_3 == "legacy":  # older code wrote the bare token: Infinity
                    data["eval"]["val_loss"] = math.inf
                elif arm_seed_3 == "strict":  # today's record: null, and what it was
                    data["eval"]["val_loss"] = None
                    data["eval"]["unavailable"]["val_loss"] = "diverged: it was inf"
                    data["diverged"] = {"eval.val_loss": "inf"}
                else:  # train.py stopped it (model.nonfinite_loss=fail)
                    data.update(status="failed", error="NonFiniteLossError: training loss is "
                                "nan at step 30: lower optimizer.lr")
            write_run(run_dir, data, resolved=config(encoder, True, seed, run_dir))
    return root


@pytest.mark.parametrize("arm_seed_3", ["legacy", "strict", "failed"])
def test_a_diverged_seed_is_counted_and_no_group_is_better_on_the_seeds_left(tmp_path,
                                                                             arm_seed_3):
    """Once: the diverged seed was dropped from its group's mean, and the arm was reported
    '-33.7% (better), significant' on the three seeds that survived."""
    two_arms(tmp_path, arm_seed_3)
    assert analyze(tmp_path, "--metrics", "val_loss", "--quality", "val_loss") == 0
    out = tmp_path / "analysis"
    report = report_of(out)
    finding = next(line for line in report.splitlines() if line.startswith("text_encoder="))
    assert "better" not in finding and "significant" not in finding
    assert ("val_loss not compared: 1 of 4 seeds diverged (seed 3) here; a mean of the others "
            "would hide it") in finding
    assert "Diverged: 1 run(s), counted as diverged seeds of their groups" in report
    assert f"{tmp_path / 'finetuned3'}: " in report[report.index("Diverged runs"):]
    with open(out / "comparison_table.csv") as f:
        table = {row["text_encoder"]: row for row in csv.DictReader(f)}
    assert [table[name][column] for name in ("frozen", "finetuned")
            for column in ("n", "diverged")] == ["4", "0", "4", "1"]
    assert table["finetuned"]["val_loss_mean"] == ""  # no mean of the seeds left
    markdown = (out / "comparison_table.md").read_text()
    assert "| finetuned | 4 (1 diverged) | diverged in 1 of 4 seeds |" in markdown
    assert "text_encoder=finetuned | 4 | 0, 1, 2, 3 | 3" in report  # Groups


def test_a_group_whose_every_seed_diverged_is_a_group_and_only_failed_runs_exit_1(tmp_path):
    for seed in (0, 1):
        for encoder in ("frozen", "finetuned"):
            run_dir = tmp_path / f"{encoder}{seed}"
            data = record(100.0 + seed, seed, text_encoder=encoder)
            if encoder == "finetuned":
                data.update(status="failed", error="NonFiniteLossError: training loss is inf "
                            "at step 2")
            write_run(run_dir, data, resolved=config(encoder, True, seed, run_dir))
    study = build_study(collect([tmp_path], skip=tmp_path / "analysis"))
    assert [study.label(g) for g in study.groups] == ["text_encoder=frozen",
                                                      "text_encoder=finetuned"]
    fvd = study.summaries["fvd"][1]
    assert (fvd.n, fvd.diverged, math.isnan(fvd.mean)) == (0, ["0", "1"], True)
    assert analyze(tmp_path) == 0
    for seed in (0, 1):  # failed otherwise (out of memory): a group of seeds without figures
        run_dir = tmp_path / f"lr{seed}"
        write_run(run_dir, record(100.0, seed) | {"status": "failed", "error": "OutOfMemoryError"},
                  resolved=config("frozen", True, seed, run_dir, **{"optimizer.lr": 0.1}))
    study = build_study(collect([tmp_path], skip=tmp_path / "analysis"))
    failed = next(g for g in study.groups if g.failed)
    assert (study.label(failed), failed.size) == ("optimizer.lr=0.1 text_encoder=frozen",
                                                  "2 (2 failed)")
    assert analyze(tmp_path, "--quality", "fvd") == 0
    assert ("fvd not comparable: 2 of 2 seeds of this group failed: nothing to test"
            in report_of(tmp_path / "analysis"))
    for seed in (0, 1):
        shutil.rmtree(tmp_path / f"frozen{seed}")
    assert analyze(tmp_path) == 1  # nothing completed: nothing was compared


def test_a_completed_copy_of_a_run_is_used_before_one_that_failed(tmp_path):
    """A run made again after a failure of the machine (same configuration, seed and code)."""
    for name, status in (("first", "failed"), ("again", "completed")):
        run_dir = tmp_path / name
        data = record(100.0, 0) | {"status": status}
        data["provenance"] = {"started_at": f"2026-01-0{1 + (name == 'again')}T00:00:00"}
        write_run(run_dir, data, resolved=config("frozen", True, 0, run_dir))
    study = build_study(collect([tmp_path], skip=tmp_path / "analysis"))
    assert [run.path.name for run in study.groups[0].runs] == ["again"]
    assert [run.path.name for copies in study.copies for run in copies.others] == ["first"]


def test_identical_differences_get_an_exact_test_never_p_0(tmp_path):
    """Once: fvd higher by the same amount in every seed made ttest_rel's t infinite, and
    the report said 'significant (Holm p=0)' with 3 seeds, which no test can support."""
    x, y = [(0, 1.1), (1, 2.1), (2, 3.1)], [(0, 1.0), (1, 2.0), (2, 3.0)]  # 0.1 up to rounding
    paired = t_test(x, y)
    assert paired.p == pytest.approx(2 / 2 ** 3) and paired.name.startswith(
        "exact sign-flip test over 3 seeds")
    assert t_test(x[:2], y[:2]).p == pytest.approx(0.5)  # two seeds: never below 0.5
    assert t_test([(s, 2.0) for s in range(3)], [(s + 3, 1.0) for s in range(3)]).p == \
        pytest.approx(2 / math.comb(6, 3))  # no spread in either group, unpaired
    assert t_test([(s, s + 0.5) for s in range(7)], [(s, float(s)) for s in range(7)]).p == \
        pytest.approx(2 / 2 ** 7)  # seven seeds can reach p < 0.05
    same = t_test(y, y)
    assert math.isnan(same.p) and same.why == "the same in every seed: nothing to test"
    assert t_test(x[:1], y).why == "one seed: more seeds needed for a test"
    for seed in (0, 1, 2):
        for encoder, fvd in (("frozen", 100.0 + seed), ("finetuned", 110.0 + seed)):
            run_dir = tmp_path / f"{encoder}{seed}"
            write_run(run_dir, record(fvd, seed, text_encoder=encoder),
                      resolved=config(encoder, True, seed, run_dir))
    assert analyze(tmp_path, "--metrics", "fvd") == 0
    finding = next(line for line in report_of(tmp_path / "analysis").splitlines()
                   if line.startswith("text_encoder="))
    assert finding.endswith("fvd 9.9% worse, not significant (Holm p=0.25, exact sign-flip "
                            "test over 3 seeds (every seed differs by the same amount)): with 3 "
                            "seeds no p-value below 0.25 is possible; train more seeds (python "
                            "train.py -m experiment=ablation_seeds)")


def test_values_shown_in_report_md_are_escaped(tmp_path):
    """Once: an error message or a setting went into report.md as markup: `<img ...>` ran in
    a browser that rendered the report, `*x*` turned italic, `a|b` split a table cell."""
    for seed in (0, 1):
        for tag in ("<img src=x onerror=alert(1)>", "*x*|y"):
            run_dir = tmp_path / f"{len(tag)}_{seed}"
            data = results({**factors("frozen", True, seed), "tag": tag}, 100.0 + seed, 60.0,
                           seed)
            write_run(run_dir, data, resolved=config("frozen", True, seed, run_dir, tags=[tag]))
    failed = results(factors("frozen", True, 9), 1.0, 1.0, 9, "failed",
                     "ValueError: <script>alert(1)</script> [link](http://x) # not a title")
    write_run(tmp_path / "failed", failed)
    assert analyze(tmp_path) == 0
    markdown = (tmp_path / "analysis" / "report.md").read_text()
    table = (tmp_path / "analysis" / "comparison_table.md").read_text()
    for text in (markdown, table):
        assert not re.search(r"(?<!\\)(<img|<script|\*x)", text)  # nothing unescaped
        assert r"\*x\*\|y" in text
    assert (r"ValueError: \<script\>alert(1)\</script\> \[link\](http://x) \# not a title"
            in markdown)
    assert r"\<img src=x onerror=alert(1)\>" in markdown
