"""Whole runs: results.json contract, resume, failures, and the user's multirun command."""

from __future__ import annotations

import csv
import json
import math
import shutil
import subprocess
import sys

import pytest
from conftest import CONF, ROOT, TINY, compose_hydra, compose_run, run_train
from entry_points import train
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

from text2sign.cli.generate import generate
from text2sign.run.job import run
from text2sign.run.preflight import ConfigError
from text2sign.rundir.schema import AT_END, problems


def read_csv(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """One scale=tiny run of the default config, shared by the tests that only read it:
    (what run() returned, its directory)."""
    run_dir = tmp_path_factory.mktemp("tiny_run")
    return run(*compose_run(TINY, run_dir)), run_dir


def test_a_run_writes_the_whole_run_directory(tiny_run):
    results, tmp_path = tiny_run
    on_disk = json.loads((tmp_path / "results.json").read_text())
    assert on_disk == json.loads(json.dumps(results))
    assert problems(on_disk) == []
    assert on_disk["status"] == "completed" and on_disk["error"] is None
    train = on_disk["train"]
    assert train["steps"] == 4 and math.isfinite(train["final_loss"])
    assert train["best_val_loss"] > 0 and train["time_s"] > 0 and train["clips_per_s"] > 0
    assert train["peak_memory_gb"] is None and train["avg_memory_gb"] is None  # no CUDA here
    assert on_disk["eval"]["weights"] == "ema" and on_disk["eval"]["val_loss"] > 0
    assert on_disk["data"] == {"name": "synthetic", "num_train": 32, "num_val": 8,
                               "num_skipped": 0, "num_padded": 0}
    assert on_disk["factors"]["text_encoder"] == "frozen" and on_disk["factors"]["seed"] == 0
    assert on_disk["factors"]["scale"] == "tiny" and "trainer.max_steps" not in on_disk["factors"]
    assert on_disk["provenance"]["overrides"] == ["scale=tiny"]
    assert set(AT_END) <= set(on_disk["eval"])  # each a number, or null with the reason

    rows = read_csv(tmp_path / "training_metrics.csv")
    assert [int(r["step"]) for r in rows] == [1, 2, 3, 4]
    assert all(float(r["lr"]) > 0 and r["peak_memory_gb"] == "" for r in rows)
    assert float(rows[-1]["loss"]) == pytest.approx(train["final_loss"])
    assert len(json.loads((tmp_path / "training_metrics.json").read_text())) == 4
    assert [int(r["step"]) for r in read_csv(tmp_path / "gpu_memory.csv")] == [1, 2, 3, 4]
    for name in ("last", "best", "final"):
        assert (tmp_path / "checkpoints" / f"{name}.ckpt").exists()
    assert list((tmp_path / "tensorboard").glob("events.out.tfevents*"))
    metadata = json.loads((tmp_path / "metadata.json").read_text())
    assert metadata["config"]["trainer"]["max_steps"] == 4
    assert metadata["model"]["trainable_parameters_millions"] > 0
    report = json.loads((tmp_path / "data_report.json").read_text())
    assert not set(report["splits"]["train"]["signers"]) & set(report["splits"]["val"]["signers"])


@pytest.mark.slow  # over 10 s: the default suite keeps under 5 minutes
def test_finetuned_trains_more_parameters_and_raw_weights_without_ema(tiny_config, tmp_path,
                                                                       tiny_run):
    frozen = tiny_run[0]
    finetuned = run(tiny_config("text_encoder=finetuned", "ema=false",
                                "text_encoder.layer_lr_decay=0.5"))
    assert finetuned["model"]["trainable_parameters_millions"] > (
        frozen["model"]["trainable_parameters_millions"] + 20)
    assert finetuned["model"]["denoiser_parameters_millions"] == frozen["model"][
        "denoiser_parameters_millions"]
    assert finetuned["eval"]["weights"] == "raw" and finetuned["factors"]["ema"] is False
    # the finetuned encoder's forward and backward are counted; the frozen one's cache is not
    assert finetuned["train"]["flops_per_step"] > 2 * frozen["train"]["flops_per_step"] > 0
    assert finetuned["train"]["peak_rss_gb"] > frozen["model"]["num_parameters_millions"] * 4e-3
    rows = read_csv(tmp_path / "training_metrics.csv")
    assert all(float(r["lr_text_encoder"]) > 0 for r in rows[1:])
    groups = json.loads((tmp_path / "metadata.json").read_text())["parameter_groups"]
    rates = {group["name"]: group["lr"] for group in groups}
    assert rates["denoiser"] == 1e-3 and rates["text_encoder"] == 1e-5
    assert rates["text_encoder.layer1"] == 1e-5 / 32 and rates["text_encoder.embeddings"] == 1e-5 / 64
    second = max((tmp_path / "csv").glob("version_*/metrics.csv"),
                 key=lambda path: int(path.parent.name.removeprefix("version_")))
    logged = [row for row in read_csv(second)  # the second run's; what TensorBoard gets too
              if row.get("lr-AdamW/text_encoder")]
    assert float(logged[-1]["lr-AdamW/text_encoder"]) > 0
    assert float(logged[-1]["lr-AdamW/text_encoder.layer1"]) == pytest.approx(
        float(logged[-1]["lr-AdamW/text_encoder"]) / 32)


def test_ckpt_path_continues_the_global_step(tiny_config, tmp_path, tiny_run):
    shutil.copytree(tiny_run[1], tmp_path, dirs_exist_ok=True)  # a 4-step run to continue
    last = tmp_path / "checkpoints" / "last.ckpt"
    resumed = run(tiny_config("trainer.max_steps=6", f"ckpt_path={last}"))
    assert resumed["train"]["steps"] == 6
    steps = [int(r["step"]) for r in read_csv(tmp_path / "training_metrics.csv")]
    assert steps == [1, 2, 3, 4, 5, 6]  # resumed rows appended, none repeated


def test_a_failing_run_records_why(tiny_config, tmp_path):
    with pytest.raises(ConfigError,  # the datamodule's check, run again as the job starts
                       match=r"data\.batch_size=64 is larger than data\.num_train=32"):
        run(tiny_config("data.batch_size=64"))
    results = json.loads((tmp_path / "results.json").read_text())
    assert problems(results) == []
    assert results["status"] == "failed"
    assert "data.batch_size=64" in results["error"]


@pytest.mark.slow  # over 10 s: the default suite keeps under 5 minutes
def test_the_users_multirun_command(tmp_path, capfd):
    sweep = tmp_path / "sweep"
    result = train(capfd, "-m", "text_encoder=frozen,finetuned", "ema=true,false", *TINY,
                       f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-3000:]
    jobs = sorted(sweep.glob("*/results.json"))
    assert len(jobs) == 4
    for path in jobs:
        results = json.loads(path.read_text())
        assert problems(results) == []
        factors = results["factors"]
        assert results["status"] == "completed"
        assert path.parent.name == (
            f"ema-{factors['ema']}+scale-tiny+text_encoder-{factors['text_encoder']}")
        assert results["eval"]["weights"] == ("ema" if factors["ema"] else "raw")
    # `tensorboard --logdir SWEEP`: one run per job, named by its overrides (no version_N)
    events = EventMultiplexer()
    events.AddRunsFromDirectory(str(sweep))
    runs = events.Reload().Runs()
    assert sorted(runs) == [f"{path.parent.name}/tensorboard" for path in jobs]
    assert all({"train/loss", "val/loss", "lr", "eval/temporal_consistency"} <= set(tags["scalars"])
               for tags in runs.values())

    # the job directories paste into commands as they are (docs/outputs.md)
    job = sweep / "ema-True+scale-tiny+text_encoder-frozen"
    assert compose_hydra([f"hydra.sweep.dir={sweep}"]).hydra.sweep.dir == str(sweep)
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("generate", overrides=[f"ckpt_path={job}/checkpoints/final.ckpt",
                                             "steps=1"])
    assert cfg.ckpt_path == f"{job}/checkpoints/final.ckpt"
    index = generate(cfg, tmp_path / "generated")
    assert (tmp_path / "generated" / index["prompts"][0]["gif"]).is_file()


@pytest.mark.slow
def test_the_positive_control_sweep_and_its_analysis(tmp_path):
    """The plumbing of `experiment=positive_control` (at scale=tiny nothing is learned, so no
    significance is asked): both arms per seed, the none arm's captions tie exactly, and
    analyze.py groups the runs by model.conditioning."""
    sweep = tmp_path / "sweep"
    result = run_train("-m", "experiment=positive_control", *TINY, "seed=0,1",
                       f"hydra.sweep.dir={sweep}")
    assert result.returncode == 0, result.stderr[-3000:]
    runs = [json.loads(p.read_text()) for p in sweep.glob("*/results.json")]
    arms = sorted((r["factors"]["model.conditioning"], r["factors"]["seed"]) for r in runs)
    assert arms == [("none", 0), ("none", 1), ("text", 0), ("text", 1)]
    assert all(r["eval"]["text_loss_gap"] == 0.0 for r in runs
               if r["factors"]["model.conditioning"] == "none")
    analysis = subprocess.run([sys.executable, str(ROOT / "analyze.py"), str(sweep), "--baseline",
                               "model.conditioning=none", "--quality", "caption_retrieval_acc"],
                              capture_output=True, text=True, timeout=120)
    assert analysis.returncode == 0, analysis.stderr[-3000:]
    report = (sweep / "analysis" / "ABLATION_RESULTS_REPORT.txt").read_text()
    assert "Quality metric: caption_retrieval_acc" in report
    assert "model.conditioning=text" in report and "Baseline: model.conditioning=none" in report
