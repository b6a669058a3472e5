"""AblationRunner: a user's own PyTorch loop recorded as a run that analyze.py reads."""

from __future__ import annotations

import csv
import json
import time

import pytest
import torch
from analysis_fixtures import config, factors, results, write_run
from conftest import ROOT
from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

from text2sign import AblationRunner
from text2sign.analysis.collect import collect
from text2sign.analysis.study import build_study
from text2sign.cli.analyze import main as analyze
from text2sign.recorder import NOT_GIVEN
from text2sign.rundir.lock import RunDirectoryInUse
from text2sign.rundir.schema import problems
from text2sign.rundir.step_logs import GB, TRAINING_COLUMNS

LEARNING_RATES = {"baseline": 0.05, "no_ema": 0.2}  # two configs of the user's own


def train(save_dir, config_name: str, seed: int) -> dict:
    """A loop of a user's own: a linear model fitted to y = x·w, 2 epochs of 5 steps."""
    torch.manual_seed(seed)
    x = torch.randn(64, 4)
    y = x @ torch.tensor([1.0, -2.0, 0.5, 3.0])
    model = torch.nn.Linear(4, 1)
    lr = LEARNING_RATES[config_name]
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    with AblationRunner(config_name, save_dir, experiment_scale="tiny", seed=seed,
                        factors={"ema": False}) as runner:
        start, step = time.perf_counter(), 0
        for epoch in range(2):
            for batch in x.split(13):
                loss = (model(batch).squeeze(1) - y[: len(batch)]).pow(2).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                step += 1
                runner.log_training_step(epoch, step, loss.detach(), lr,
                                         time.perf_counter() - start)
        with torch.no_grad():
            mse = (model(x).squeeze(1) - y).pow(2).mean()
        runner.log_evaluation(num_parameters_millions=5 / 1e6, val_loss=mse, mse=float(mse))
    return runner.record.results


def test_a_loop_of_your_own_is_recorded_and_analysed(tmp_path):
    recorded = {(name, seed): train(tmp_path, name, seed)
                for name in LEARNING_RATES for seed in (0, 1)}
    run_dir = tmp_path / "ablation-baseline+ema-False+scale-tiny+seed-0"
    on_disk = json.loads((run_dir / "results.json").read_text())
    assert on_disk == json.loads(json.dumps(recorded["baseline", 0])) and problems(on_disk) == []
    assert on_disk["status"] == "completed" and on_disk["error"] is None
    assert on_disk["factors"] == {"ablation": "baseline", "scale": "tiny", "ema": False,
                                  "seed": 0}
    with open(run_dir / "training_metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert tuple(rows[0]) == TRAINING_COLUMNS and [int(r["step"]) for r in rows] == [
        *range(1, 11)]
    assert json.loads((run_dir / "training_metrics.json").read_text())[-1]["step"] == 10
    train_ = on_disk["train"]
    assert (train_["steps"], train_["epochs"]) == (10, 2)
    assert train_["final_loss"] == pytest.approx(float(rows[-1]["loss"]))
    assert train_["time_s"] == pytest.approx(float(rows[-1]["elapsed_s"]))
    assert train_["peak_memory_gb"] is None and not (run_dir / "gpu_memory.csv").exists()
    evaluation = on_disk["eval"]
    assert evaluation["weights"] == "raw" and evaluation["more_metrics"] == ["mse"]
    assert evaluation["mse"] == pytest.approx(evaluation["val_loss"])
    assert evaluation["fvd"] is None and evaluation["unavailable"]["fvd"] == NOT_GIVEN
    assert on_disk["model"]["num_parameters_millions"] == 5e-6
    metadata = json.loads((run_dir / "metadata.json").read_text())
    assert metadata["config"]["ablation"] == "baseline" and metadata["train"]["steps"] == 10
    events = EventMultiplexer()
    events.AddRunsFromDirectory(str(tmp_path))
    assert {"train/loss", "lr", "eval/mse", "eval/val_loss"} <= set(
        events.Reload().Runs()[f"{run_dir.name}/tensorboard"]["scalars"])

    study = build_study(collect([tmp_path], skip=tmp_path / "analysis"))
    assert [study.label(group) for group in study.groups] == ["ablation=baseline",
                                                              "ablation=no_ema"]
    assert study.baseline_note == "the default ablation=baseline"
    mse = study.summaries["mse"]
    for group, summary in zip(study.groups, mse):
        name = group.levels["ablation"][2]
        assert summary.n == 2 and summary.mean == pytest.approx(
            (recorded[name, 0]["eval"]["mse"] + recorded[name, 1]["eval"]["mse"]) / 2)


def test_the_docs_loop_runs_and_analyze_compares_its_runs(tmp_path, monkeypatch, capsys):
    page = (ROOT / "docs" / "ablation_runner.md").read_text()
    section = page[page.index("## Your own training loop"):]
    code = section[section.index("```python\n") + 10:section.index("\n```\n")]
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "docs/ablation_runner.md", "exec"), {"__name__": "docs"})
    assert sorted(path.name for path in (tmp_path / "results").iterdir()) == [
        f"ablation-{name}+scale-small+seed-{seed}" for name in ("baseline", "high_lr")
        for seed in (0, 1)]
    assert analyze(["results", "--output-format", "both"]) == 0
    out = tmp_path / "results" / "analysis"
    assert not (out / "comparison_table.tex").exists()
    with open(out / "comparison_table.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(row["ablation"], row["n"]) for row in rows] == [("baseline", "2"), ("high_lr", "2")]
    assert rows[0]["r2_delta_pct"] == "0.0" and rows[1]["val_loss_p_value"] != ""
    assert "Baseline: ablation=baseline" in (out / "ABLATION_RESULTS_REPORT.txt").read_text()
    capsys.readouterr()


def train_py_baseline(sweep, seed: int) -> None:
    """The run train.py's `ablation=baseline seed=SEED` writes, in `sweep`."""
    run_dir = sweep / f"ablation-baseline+seed-{seed}"
    write_run(run_dir, results({**factors("frozen", True, seed), "ablation": "baseline"},
                               100.0 + seed, 60.0, seed),
              resolved=config("frozen", True, seed, run_dir))


def test_runs_of_train_py_and_of_your_loop_are_analysed_together(tmp_path):
    for seed in (0, 1):
        train_py_baseline(tmp_path / "sweep", seed)
        with AblationRunner("mine", tmp_path / "own", seed=seed) as runner:
            runner.log_training_step(0, 1, 0.5 + seed, 1e-3, 0.1)
            runner.log_evaluation(fvd=90.0 + seed)
    study = build_study(collect([tmp_path], skip=tmp_path / "analysis"))
    assert [len(group.runs) for group in study.groups] == [2, 2]  # seed-only keys: not factors
    assert [study.label(group) for group in study.groups] == ["ablation=baseline",
                                                              "ablation=mine"]
    assert [summary.mean for summary in study.summaries["fvd"]] == [100.5, 90.5]


def test_a_run_that_raises_is_recorded_as_failed(tmp_path):
    with pytest.raises(RuntimeError, match="diverged"):
        with AblationRunner("baseline", tmp_path, seed=3) as runner:
            runner.log_training_step(0, 1, 2.5, 1e-3, 0.2)
            raise RuntimeError("loss diverged at step 2")
    recorded = json.loads((runner.run_dir / "results.json").read_text())
    assert problems(recorded) == []
    assert (recorded["status"], recorded["error"]) == (
        "failed", "RuntimeError: loss diverged at step 2")
    assert recorded["train"]["steps"] == 1 and recorded["train"]["final_loss"] == 2.5
    assert recorded["eval"]["fvd"] is None and "not evaluated" in recorded["eval"][
        "unavailable"]["fvd"]
    with pytest.raises(FileExistsError, match="holds a run already \\(status failed\\)"):
        AblationRunner("baseline", tmp_path, seed=3)  # nothing is overwritten


def test_a_second_runner_of_a_run_in_progress_stops_at_once(tmp_path):
    first = AblationRunner("baseline", tmp_path, seed=1)
    with pytest.raises(RunDirectoryInUse, match="in use by process"):
        AblationRunner("baseline", tmp_path, seed=1)  # another loop, or the same one started twice
    first.save_results()
    with pytest.raises(FileExistsError, match="status completed"):
        AblationRunner("baseline", tmp_path, seed=1)
    AblationRunner("baseline", tmp_path, seed=2).save_results()  # another run: its own folder


def test_bad_input_is_named(tmp_path):
    runner = AblationRunner("baseline", tmp_path)
    with pytest.raises(ValueError, match=r"log_evaluation\(fvd='low'\): fvd is 'low'"):
        runner.log_evaluation(fvd="low")
    with pytest.raises(ValueError, match=r"log_evaluation\(bleu=\[1\]\)"):
        runner.log_evaluation(bleu=[1])
    with pytest.raises(ValueError, match="weights"):
        runner.log_evaluation(weights=1.0)  # a setting of the record, not a metric
    runner.save_results()
    with pytest.raises(RuntimeError, match="has ended"):
        runner.log_training_step(0, 1, 1.0, 1e-3, 0.1)
    with pytest.raises(ValueError, match="seed come from"):
        AblationRunner("baseline", tmp_path, factors={"seed": 1})


def test_only_the_listed_metrics_of_your_own_pass_the_schema(tmp_path):
    with AblationRunner("baseline", tmp_path) as runner:
        runner.log_evaluation(bleu=0.3)
    record = runner.record.results
    assert problems(record) == [] and record["eval"]["more_metrics"] == ["bleu"]
    evaluation = record["eval"]
    assert problems({**record, "eval": {**evaluation, "bleu": "high"}}) == [
        "eval.bleu is 'high' (str), expected a number or null"]
    assert problems({**record, "eval": {**evaluation, "more_metrics": []}}) == [
        "eval.bleu is not a key of the schema"]


def test_gpu_memory_is_recorded_with_cuda(tmp_path, monkeypatch):
    """CUDA's counters faked (no GPU here): the peak since the last step, the mean of the
    allocated memory at the step's start and end."""
    allocated = iter([1, 3, 5])  # GB at the start, after step 1, after step 2
    peaks = iter([4, 8])
    cuda = torch.cuda
    monkeypatch.setattr(cuda, "is_available", lambda: True)
    monkeypatch.setattr(cuda, "memory_allocated", lambda: next(allocated) * GB)
    monkeypatch.setattr(cuda, "max_memory_allocated", lambda: next(peaks) * GB)
    monkeypatch.setattr(cuda, "memory_reserved", lambda: 10 * GB)
    monkeypatch.setattr(cuda, "reset_peak_memory_stats", lambda: None)
    monkeypatch.setattr(cuda, "get_device_name", lambda: "a faked GPU")
    with AblationRunner("baseline", tmp_path) as runner:
        for step in (1, 2):
            runner.log_training_step(0, step, 1.0 / step, 1e-3, 0.1 * step)
    with open(runner.run_dir / "gpu_memory.csv") as f:
        rows = [{k: float(v) for k, v in row.items() if k != "timestamp"}
                for row in csv.DictReader(f)]
    assert rows == [{"epoch": 0, "step": 1, "peak_gb": 4, "avg_gb": 2, "allocated_gb": 3,
                     "reserved_gb": 10},
                    {"epoch": 0, "step": 2, "peak_gb": 8, "avg_gb": 4, "allocated_gb": 5,
                     "reserved_gb": 10}]
    train_ = runner.record.results["train"]
    assert (train_["peak_memory_gb"], train_["avg_memory_gb"]) == (8, 3)
    assert runner.record.results["artifacts"]["gpu_memory"] == "gpu_memory.csv"


# arguments checked when given (issue 27) ----------------------------------------------------

def test_a_bad_value_is_an_error_at_the_call_and_the_run_still_ends(tmp_path):
    """Once: step='x' was taken, and leaving the `with` block raised SchemaError: the run
    said "running" for ever."""
    with pytest.raises(ValueError, match=r"log_training_step\(step='x'\): step must be an int "
                                         r">= 1"):
        with AblationRunner("baseline", tmp_path) as runner:
            runner.log_training_step(0, "x", 0.5, 1e-3, 0.1)
    recorded = json.loads((runner.run_dir / "results.json").read_text())
    assert (recorded["status"], recorded["train"]["steps"]) == ("failed", 0)
    assert recorded["error"].startswith("ValueError: log_training_step(step='x')")
    runner = AblationRunner("baseline", tmp_path, seed=1)
    for args, message in [
            ((0, 1, float("nan"), 1e-3, 0.1), r"loss=nan\): loss must be a finite number, or "
                                               r"\"diverged\" for a run that diverged"),
            ((0, 1, 0.5, float("inf"), 0.1), r"learning_rate=inf\): learning_rate must be a "
                                              "finite number >= 0"),
            ((0, 1, 0.5, 1e-3, -2.0), r"elapsed_time=-2.0\)"),
            ((-1, 1, 0.5, 1e-3, 0.1), r"epoch=-1\)"),
            ((0, True, 0.5, 1e-3, 0.1), r"step=True\)")]:
        with pytest.raises(ValueError, match=message):
            runner.log_training_step(*args)
    runner.log_training_step(0, 5, 0.5, 1e-3, 0.1)
    with pytest.raises(ValueError, match=r"step=5\): step must be an int >= 6 \(the step after"):
        runner.log_training_step(0, 5, 0.4, 1e-3, 0.2)  # counted twice
    with pytest.raises(ValueError, match=r"log_evaluation\(val_loss=inf\): val_loss must be a "
                                         "finite number"):
        runner.log_evaluation(val_loss=float("inf"))
    assert runner.save_results()["train"]["steps"] == 5


@pytest.mark.parametrize("arguments, message", [
    ({"seed": "1"}, r"AblationRunner\(seed='1'\): the seed must be an int"),
    ({"seed": True}, r"AblationRunner\(seed=True\)"),
    ({"seed": 1.5}, r"AblationRunner\(seed=1.5\)"),
    ({"config_name": ""}, r"AblationRunner\(config_name=''\): config_name must be a non-empty"),
    ({"factors": {"lr rate": 1}}, r"factors\['lr rate'\]: a factor's name is a config key"),
    ({"factors": {"paths.output_dir": "x"}}, r"factors\['paths.output_dir'\]"),
    ({"factors": {"lr": float("nan")}}, r"factors\['lr'\]=nan: a factor is a str, finite"),
])
def test_bad_arguments_stop_the_constructor_before_anything_is_written(tmp_path, arguments,
                                                                      message):
    with pytest.raises((TypeError, ValueError), match=message):
        AblationRunner(**{"config_name": "baseline", "save_dir": tmp_path, **arguments})
    assert list(tmp_path.iterdir()) == []


def test_a_run_that_diverged_says_so_and_is_counted(tmp_path):
    for seed in (0, 1):
        for name in ("baseline", "high_lr"):
            with AblationRunner(name, tmp_path, seed=seed) as runner:
                runner.log_training_step(0, 1, 0.5, 1e-3, 0.1)
                diverged = (name, seed) == ("high_lr", 1)
                runner.log_training_step(0, 2, "diverged" if diverged else 0.4, 1e-3, 0.2)
                runner.log_evaluation(val_loss="diverged" if diverged else 0.3 + seed / 10,
                                      bleu="diverged" if diverged else 0.5)
    recorded = runner.record.results
    assert recorded["diverged"] == {"eval.val_loss": "diverged (log_evaluation)",
                                    "eval.bleu": "diverged (log_evaluation)",
                                    "train.final_loss": "diverged at step 2 (log_training_step)"}
    assert (recorded["train"]["final_loss"], recorded["eval"]["val_loss"],
            recorded["eval"]["bleu"]) == (None, None, None)
    assert recorded["eval"]["more_metrics"] == ["bleu"] and problems(recorded) == []
    with open(runner.run_dir / "training_metrics.csv") as f:
        assert [row["loss"] for row in csv.DictReader(f)] == ["0.5", ""]
    study = build_study(collect([tmp_path], skip=tmp_path / "analysis"))
    assert [s.diverged for s in study.summaries["val_loss"]] == [[], ["1"]]


@pytest.mark.parametrize("one, other", [(True, "True"), (1, "1"), (None, "None"), (1.0, "1.0"),
                                        ("a=b", "a-b"), ("a,b", "a+b"), (False, "False")])
def test_values_of_different_types_get_their_own_run_directories(tmp_path, one, other):
    """Once: factors={"x": True} and {"x": "True"} named the same directory, so the second run
    was refused as a copy of the first (or, with seed="1", counted as seed 1)."""
    with AblationRunner("baseline", tmp_path, factors={"x": one}) as first:
        first.log_evaluation(val_loss=0.1)
    with AblationRunner("baseline", tmp_path, factors={"x": other}) as second:
        second.log_evaluation(val_loss=0.2)
    assert first.run_dir != second.run_dir
    study = build_study(collect([tmp_path], skip=tmp_path / "analysis"))
    assert len(study.groups) == 2


def test_runs_of_one_ablation_name_from_train_py_and_your_loop_are_told_apart(tmp_path):
    """Once: AblationRunner("baseline") and train.py ablation=baseline were two groups both
    labelled ablation=baseline, the runner's settings shown as `default`."""
    for seed in (0, 1):
        train_py_baseline(tmp_path / "sweep", seed)
        with AblationRunner("baseline", tmp_path / "own", seed=seed) as runner:
            runner.log_evaluation(fvd=90.0 + seed)
    for by_config in (True, False):
        if not by_config:  # a train.py run without metadata.json: grouped by the factors
            (tmp_path / "sweep" / "ablation-baseline+seed-0" / "metadata.json").unlink()
        study = build_study(collect([tmp_path], skip=tmp_path / "analysis"))
        assert study.by_config is by_config
        assert [study.label(g) for g in study.groups] == [
            "data=absent ema=absent model=absent text_encoder=absent",
            "data=synthetic ema=true model=unet3d text_encoder=frozen"]
        assert [[run.path.parent.name for run in g.runs] for g in study.groups] == [
            ["own", "own"], ["sweep", "sweep"]]
