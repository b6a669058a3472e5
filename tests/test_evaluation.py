"""The evaluation stage: metrics in results.json, samples, train=false and generate."""

from __future__ import annotations

import json
import shutil
from types import SimpleNamespace

import pytest
import torch
from conftest import CONF, TINY, compose_config
from data_fixtures import write_gif_folder
from omegaconf import OmegaConf
from pytorch_lightning.strategies import SingleDeviceStrategy, Strategy

from text2sign.callbacks.ema import EMA, reported_weights
from text2sign.cli.generate import generate, load_module
from text2sign.data.synthetic import SyntheticSignDataset
from text2sign.evaluation.held_out import Evaluation
from text2sign.metrics.suite import video_metrics
from text2sign.module import TextToSignModule
from text2sign.run.checkpointing import CheckpointError
from text2sign.run.job import run

EVAL_SETTINGS = dict(fvd_settings={"backbone": "i3d", "detector_path": None,
                                   "videomae_name": "x", "local_files_only": True,
                                   "batch_size": 8},
                     lpips_settings={"backbone_path": None, "linear_path": None},
                     download=False)


def held_out(n=4, frames=4, size=16):
    data = SyntheticSignDataset("test", num_clips=n, num_frames=frames, image_size=size)
    items = [data[i] for i in range(n)]
    return {key: torch.stack([item[key] for item in items]) for key in ("video", "hands",
                                                                      "gloss_ids")}


def test_every_metric_is_a_number_or_null_with_a_reason(tmp_path):
    clips = held_out()
    metrics, unavailable = video_metrics(clips["video"], clips["video"].flip(0), clips,
                                         "synthetic-test", cache_dir=tmp_path, **EVAL_SETTINGS)
    for name, value in metrics.items():
        assert value is not None or name in unavailable, name
    assert metrics["fvd"] is None and "eval.fvd.detector_path" in unavailable["fvd"]
    assert metrics["lpips"] is None and "eval.lpips.backbone_path" in unavailable["lpips"]
    assert metrics["hands_found"] > 0.8 and 0 <= metrics["gloss_accuracy"] <= 1


def test_real_clips_score_better_than_mismatched_ones(tmp_path):
    clips = held_out()
    same, _ = video_metrics(clips["video"], clips["video"], clips, "s", cache_dir=tmp_path,
                            **EVAL_SETTINGS)
    swapped, _ = video_metrics(clips["video"], clips["video"].roll(1, 0), clips, "s",
                               cache_dir=tmp_path, **EVAL_SETTINGS)
    assert same["ssim"] == pytest.approx(1.0, abs=1e-3) and swapped["ssim"] < 0.99
    assert same["psnr"] is None  # infinite for identical frames: null with its reason
    assert same["dtw_mje"] < swapped["dtw_mje"]
    assert same["gloss_accuracy"] > swapped["gloss_accuracy"]
    assert same["temporal_consistency"] == same["temporal_consistency_real"]


@pytest.fixture(scope="module", autouse=True)
def placements():
    """Lightning places the module where it trains when fit or validate starts, and its
    teardown moves it elsewhere when they end (on a GPU run: to the CPU, and back). Here the
    elsewhere is float64, a move a CPU can show. Every sampling and caption-retrieval call
    records the (device, dtype) of the weights and cached caption features it ran with."""
    seen = []
    teardown, sample, errors = Strategy.teardown, TextToSignModule.sample, TextToSignModule.caption_errors
    model_to_device = SingleDeviceStrategy.model_to_device

    def placed(strategy):
        model_to_device(strategy)
        strategy.model.float()

    def displaced(strategy):
        module = strategy.lightning_module
        teardown(strategy)
        if module is not None:
            module.double()

    def recorded(name, method):
        def call(module, *args, **kwargs):
            tensors = [*module.parameters(), *module.text_encoder._cache.values()]
            seen.append((name, {(t.device, t.dtype) for t in tensors}))
            return method(module, *args, **kwargs)
        return call

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SingleDeviceStrategy, "model_to_device", placed)
        patch.setattr(Strategy, "teardown", displaced)
        patch.setattr(TextToSignModule, "sample", recorded("sample", sample))
        patch.setattr(TextToSignModule, "caption_errors", recorded("caption_errors", errors))
        yield seen


@pytest.fixture(scope="module")
def default_run(tmp_path_factory):
    """One scale=tiny run of the default config, shared by the tests that only read it:
    (what run() returned, its directory)."""
    run_dir = tmp_path_factory.mktemp("default_run")
    return run(compose_config(TINY, run_dir)), run_dir


def test_a_run_fills_eval_and_writes_samples(default_run):
    results, tmp_path = default_run
    evaluation = results["eval"]
    assert evaluation["weights"] == "ema" and evaluation["num_videos"] == 4
    for name, value in evaluation.items():
        if name != "unavailable":
            assert value is not None or name in evaluation["unavailable"], name
    assert evaluation["inference_time_ms"] > 0
    assert "CUDA" in evaluation["unavailable"]["inference_memory_gb"]
    history = json.loads((tmp_path / "evaluation_metrics.json").read_text())
    assert history[-1]["temporal_consistency"] == evaluation["temporal_consistency"]
    assert "temporal_consistency" in (tmp_path / "evaluation_metrics.csv").read_text()
    index = json.loads((tmp_path / "samples" / "index.json").read_text())
    prompts = OmegaConf.load(CONF / "callbacks" / "default.yaml").samples.prompts
    assert [p["text"] for p in index["prompts"]] == list(prompts)
    for entry in index["prompts"]:
        assert (tmp_path / "samples" / entry["gif"]).stat().st_size > 0
        assert (tmp_path / "samples" / entry["mp4"]).stat().st_size > 0
    assert (tmp_path / "samples" / "grid.png").exists()


RETRIEVAL = ("caption_retrieval_acc", "caption_retrieval_chance", "text_loss_gap")


def test_samples_and_evaluation_run_where_the_module_trained(default_run, placements):
    assert default_run[0]["status"] == "completed"
    assert {name for name, _ in placements} == {"sample", "caption_errors"}
    assert all(where == {(torch.device("cpu"), torch.float32)} for _, where in placements)


def test_every_run_reports_caption_retrieval_with_intervals_and_settings(default_run):
    evaluation = default_run[0]["eval"]
    for name in ("caption_retrieval_acc", "text_loss_gap"):
        low, value, high = (evaluation[f"{name}{end}"] for end in ("_ci_low", "", "_ci_high"))
        assert low <= value <= high
    assert 0 <= evaluation["caption_retrieval_acc"] <= 1
    assert evaluation["caption_retrieval_chance"] == pytest.approx(1 / 4)  # scale=tiny: K=4
    assert evaluation["retrieval"]["num_clips"] == 4 and evaluation["retrieval"]["split"] == "test"


def test_an_unconditional_model_ties_every_caption(tiny_config):
    evaluation = run(tiny_config("model.conditioning=none"))["eval"]
    assert evaluation["text_loss_gap"] == 0.0  # no caption can change its loss
    assert evaluation["text_loss_gap_ci_low"] == evaluation["text_loss_gap_ci_high"] == 0.0
    assert evaluation["caption_retrieval_acc"] in {0, 0.25, 0.5, 0.75, 1.0}


@pytest.mark.slow  # a run of its own: the default suite keeps under 5 minutes
def test_caption_retrieval_runs_on_file_data(tiny_config, tmp_path):
    root = write_gif_folder(tmp_path / "gifs", signers=6, clips_per_signer=3)
    evaluation = run(tiny_config("data=gif_folder", f"data.root={root}", "data.split=random",
                                 "data.batch_size=2", f"data.cache_dir={tmp_path / 'cache'}"))["eval"]
    assert all(evaluation[name] is not None for name in RETRIEVAL), evaluation["unavailable"]
    assert evaluation["retrieval"]["num_candidates"] >= 2


def test_retrieval_can_be_switched_off_and_says_so(tiny_config):
    evaluation = run(tiny_config("eval.retrieval.enabled=false"))["eval"]
    assert evaluation["caption_retrieval_acc"] is None
    assert "eval.retrieval.enabled=false" in evaluation["unavailable"]["caption_retrieval_acc"]


def test_disabled_evaluation_is_reported_not_invented(tiny_config):
    evaluation = run(tiny_config("eval.enabled=false"))["eval"]
    assert evaluation["temporal_consistency"] is None and evaluation["fvd"] is None
    assert "eval.enabled=false" in evaluation["unavailable"]["fvd"]


def test_train_false_evaluates_a_checkpoint_into_a_new_run(tiny_config, tmp_path, default_run):
    trained, run_dir = default_run[0]["eval"], default_run[1]
    moved = tmp_path / "saved.ckpt"  # a checkpoint outside any run directory
    shutil.copy(run_dir / "checkpoints" / "final.ckpt", moved)
    evaluated = run(tiny_config("train=false", f"ckpt_path={moved}"))
    assert evaluated["status"] == "completed"
    assert evaluated["eval"]["val_loss"] == pytest.approx(trained["val_loss"], rel=1e-5)
    assert evaluated["eval"]["ssim"] == pytest.approx(trained["ssim"], rel=1e-5)


def test_train_false_without_a_checkpoint_names_the_key(tiny_config):
    with pytest.raises(ValueError, match="ckpt_path"):
        run(tiny_config("train=false"))


def test_generate_writes_clips_for_any_prompt(default_run, tmp_path):
    checkpoint = default_run[1] / "checkpoints" / "final.ckpt"
    cfg = OmegaConf.create({"ckpt_path": str(checkpoint), "prompts": ["hello", "where school"],
                            "steps": 2, "guidance_scale": 2.0, "seed": 1, "weights": "auto",
                            "fps": 8, "device": "auto"})
    index = generate(cfg, tmp_path / "generated")
    assert index["weights"] == "ema" and index["device"] == "cpu"  # auto: no GPU here
    assert [p["text"] for p in index["prompts"]] == ["hello", "where school"]
    assert (tmp_path / "generated" / "where_school.gif").exists()
    ema_module, _ = load_module(checkpoint, "ema")
    raw_module, _ = load_module(checkpoint, "raw")
    assert not torch.equal(next(ema_module.denoiser.parameters()),
                           next(raw_module.denoiser.parameters()))


def test_generate_rejects_missing_ema_and_bad_paths(tiny_config, tmp_path):
    run(tiny_config("ema=false"))
    with pytest.raises(ValueError, match="weights=raw"):
        load_module(tmp_path / "checkpoints" / "final.ckpt", "ema")
    with pytest.raises(CheckpointError, match="nothing.ckpt is not a readable text2sign "
                                              "checkpoint: no such file; set ckpt_path"):
        load_module(tmp_path / "nothing.ckpt")


def test_evaluation_settings_are_validated():
    with pytest.raises(ValueError, match="eval.num_videos"):
        Evaluation(num_videos=0)
    good = {"enabled": True, "num_clips": 4, "num_candidates": 4, "timesteps": [500],
            "seed": 0, "batch_size": 8, "bootstrap": 10}
    for key, value in (("num_candidates", 1), ("timesteps", []), ("num_clips", 0)):
        with pytest.raises(ValueError, match=f"eval.retrieval.{key}"):
            Evaluation(retrieval={**good, key: value})


def test_retrieval_timesteps_outside_the_schedule_fail_before_training(tiny_config):
    with pytest.raises(ValueError, match="eval.retrieval.timesteps"):
        run(tiny_config("eval.retrieval.timesteps=[1000]"))


def test_the_weights_evaluated_are_the_records_and_an_ema_left_off_is_named():
    """Which weights a run reports is decided once, in its record (eval.weights from `ema`);
    samples and evaluation use what it says: raw weights stay even with the EMA on, and EMA
    weights with the EMA callback switched off is an error that names the key."""
    module = torch.nn.Linear(2, 2)
    on, off = EMA(enabled=True), EMA(enabled=False)
    on.track(dict(module.named_parameters()))
    with torch.no_grad():
        module.weight.add_(1.0)  # the raw weights move away from the average
    raw = module.weight.clone()
    with reported_weights(SimpleNamespace(callbacks=[on]), module, "raw"):
        assert torch.equal(module.weight, raw)
    with reported_weights(SimpleNamespace(callbacks=[on]), module, "ema"):
        assert torch.allclose(module.weight, raw - 1.0)
    assert torch.equal(module.weight, raw)
    with pytest.raises(ValueError, match="callbacks.ema.enabled=false"):
        reported_weights(SimpleNamespace(callbacks=[off]), module, "ema")
