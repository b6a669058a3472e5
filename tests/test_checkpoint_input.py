"""Checkpoints given on the command line: files that are not text2sign checkpoints are named
as such before any directory is made, and train=false evaluates a checkpoint with the config
stored in it."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from conftest import CONF, TINY, compose_config, compose_run
from entry_points import command
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from text2sign.cli.generate import load_module
from text2sign.run.checkpointing import CheckpointError, read_checkpoint
from text2sign.run.job import build_module, run
from text2sign.run.preflight import Preflight, PreflightFailed
from text2sign.rundir.identity import run_config
from text2sign.rundir.record import plain


def not_checkpoints(folder) -> dict[str, tuple]:
    """Files that are not checkpoints: name -> (path, a fragment of the reason)."""
    folder.mkdir()
    text = folder / "notes.ckpt"
    text.write_text("these are my notes, not weights\n" * 20)
    truncated = folder / "truncated.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(1000)}}, truncated)
    truncated.write_bytes(truncated.read_bytes()[:500])
    empty = folder / "empty.ckpt"
    empty.touch()
    foreign = folder / "foreign.ckpt"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "epoch": 3}, foreign)
    return {"text file": (text, "not a PyTorch checkpoint archive"),
            "truncated": (truncated, "truncated: the archive ends early"),
            "empty": (empty, "the file is empty"),
            "directory": (folder, "it is a directory"),
            "foreign dict": (foreign, "it lacks text2sign_config, global_step"),
            "missing": (folder / "gone.ckpt", "no such file")}


def hydra_config(name: str, overrides: list[str]):
    """The config Hydra hands its callbacks (with the hydra node), as a command composes it."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(name, overrides=overrides, return_hydra_config=True)


def test_files_that_are_not_checkpoints_are_named_before_any_directory_is_made(
        tmp_path, monkeypatch):
    out = tmp_path / "out"
    commands = {"generate": hydra_config("generate", ["ckpt_path=x"]),  # then each input
                "evaluate": hydra_config("train", ["train=false", "ckpt_path=x"]),
                "continue": hydra_config("train", ["ckpt_path=x"])}
    for name, (path, reason) in not_checkpoints(tmp_path / "inputs").items():
        expected = f"{path} is not a readable text2sign checkpoint: {reason}"
        with pytest.raises(CheckpointError) as error:
            read_checkpoint(path)
        assert str(error.value).startswith(expected), name
        assert "set ckpt_path to a checkpoint written by train.py" in str(error.value)
        with pytest.raises(CheckpointError, match="not a readable text2sign checkpoint"):
            load_module(path)  # python -m text2sign.cli.generate
        for command_name, cfg in commands.items():
            cfg.ckpt_path, cfg.hydra.run.dir = str(path), str(out)
            with pytest.raises(PreflightFailed) as failed:
                Preflight().on_run_start(cfg)
            assert str(failed.value).startswith(f"CheckpointError: {expected}"), (name,
                                                                                 command_name)
    assert not out.exists()

    monkeypatch.chdir(tmp_path)  # the commands' default output folder is ./outputs/
    notes = "inputs/notes.ckpt"
    message = (f"CheckpointError: {notes} is not a readable text2sign checkpoint: not a PyTorch "
               "checkpoint archive (a text file or another format); set ckpt_path to a "
               "checkpoint written by train.py (a run's checkpoints/final.ckpt, last.ckpt or "
               "best.ckpt)")
    assert command("text2sign.cli.generate", f"ckpt_path={notes}") == message
    assert command("train.py", "train=false", f"ckpt_path={notes}") == message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inputs"]  # no outputs/


def test_train_false_evaluates_a_tiny_checkpoint_without_ema_from_the_default_command(
        tmp_path, caplog):
    trained_dir, run_dir = tmp_path / "trained", tmp_path / "evaluated"
    trained = run(*compose_run([*TINY, "ema=false"], trained_dir))
    checkpoint = trained_dir / "checkpoints" / "final.ckpt"
    caplog.set_level(logging.INFO)
    # python train.py train=false ckpt_path=... (scale=small), one evaluation key, one other
    cfg, runtime = compose_run(["train=false", f"ckpt_path={checkpoint}", "eval.num_videos=2",
                                "data.batch_size=2"], run_dir)
    assert cfg.model.denoiser.base_channels == 32  # the command's scale=small
    results = run(cfg, runtime)
    GlobalHydra.instance().clear()
    assert results["status"] == "completed", results["error"]
    evaluation = results["eval"]
    assert evaluation["weights"] == trained["eval"]["weights"] == "raw"
    assert evaluation["val_loss"] == pytest.approx(trained["eval"]["val_loss"], rel=1e-5)
    assert evaluation["num_videos"] == 2 and evaluation["steps"] == 2  # tiny's eval.steps
    config = json.loads((run_dir / "metadata.json").read_text())["config"]
    assert config["model"]["denoiser"]["base_channels"] == 8 and config["ema"] is False
    assert config["data"]["batch_size"] == 4  # the override is ignored, and said so
    assert config["callbacks"]["best_checkpoint"]["dirpath"] == f"{run_dir}/checkpoints"
    assert results["factors"]["scale"] == "tiny" and results["factors"]["train"] is False
    said = caplog.text
    assert f"evaluating {checkpoint} with the config stored in it" in said
    assert "from the command line: eval.num_videos=2" in said
    assert "ignored, the checkpoint's config decides: data.batch_size" in said
    assert (run_dir / "samples" / "grid.png").exists()


# checkpoints that do not fit, generate's values (issue 27) ------------------------------------

def a_checkpoint(path, overrides: list[str], step: int = 4, ema: bool = True,
                 encoder: str | None = None):
    """A checkpoint as train.py writes it (what the pre-flight reads of one), of the model
    that `overrides` compose, untrained: building it takes a second, training one far more."""
    cfg = compose_config(overrides, path.parent)
    GlobalHydra.instance().clear()
    module = build_module(cfg)
    weights = {k: v for k, v in module.state_dict().items() if not k.startswith("text_encoder.")}
    torch.save({"state_dict": weights, "global_step": step, "text2sign_config": plain(cfg),
                "text_encoder": {"name": encoder or cfg.text_encoder.name, "trainable": False},
                "callbacks": {"EMA": {"shadow": weights}} if ema else {}}, path)
    return path


def test_a_checkpoint_that_does_not_fit_stops_before_any_directory_is_made(tmp_path):
    """Once: a scale=tiny checkpoint continued at scale=small made the run directory, then
    failed with a hundred lines of size mismatches; one at or past trainer.max_steps was
    recorded as completed, having trained nothing."""
    tiny = a_checkpoint(tmp_path / "tiny.ckpt", TINY)
    out = tmp_path / "out"

    def preflight(*overrides: str) -> str | None:
        cfg = hydra_config("train", [f"ckpt_path={tiny}", f"hydra.run.dir={out}", *overrides])
        try:
            Preflight().on_run_start(cfg)
        except PreflightFailed as failed:
            return str(failed)
        return None

    said = preflight()  # the default scale=small
    assert said.startswith(f"ConfigError: ckpt_path={tiny} holds a model of another shape (")
    assert "denoiser.down.0.res.conv1.weight is [8, 8, 1, 3, 3] there, [32, 32, 1, 3, 3] here" \
        in said
    assert said.endswith("the checkpoint's run had model.denoiser.base_channels=8 (here 32), "
                         "model.denoiser.num_heads=2 (here 4): scale=tiny's denoiser (add "
                         "scale=tiny, or set those keys)")
    said = preflight(*TINY, "trainer.max_steps=8", "model.denoiser.attention=full")
    assert "denoiser.mid.0.attn.joint.out.weight is absent there, [16, 16] here" in said
    assert said.endswith("had model.denoiser.attention=factorised (here full): set those keys")
    assert preflight(*TINY, "trainer.max_steps=4") == (
        f"ConfigError: ckpt_path={tiny} is at step 4, so trainer.max_steps=4 trains nothing: set "
        "trainer.max_steps above 4 to continue it (e.g. 8), or train=false to evaluate it")
    assert preflight(*TINY, "trainer.max_steps=8") is None  # continues: fits
    assert preflight("train=false") is None  # evaluated with the config stored in it
    other = a_checkpoint(tmp_path / "other.ckpt", TINY, encoder="someone/else")
    cfg = hydra_config("train", [f"ckpt_path={other}", f"hydra.run.dir={out}", *TINY,
                                 "trainer.max_steps=8"])
    with pytest.raises(PreflightFailed, match="was trained with text_encoder.name=someone/else, "
                                              "this run builds sentence-transformers"):
        Preflight().on_run_start(cfg)
    assert not out.exists()


def test_generates_values_stop_it_in_one_line_before_its_directory(tmp_path, monkeypatch,
                                                                   capfd):
    """Once: steps=0, prompts=[] or weights=ema of a run without EMA made the output folder,
    then stopped with a traceback."""
    with_ema = a_checkpoint(tmp_path / "ema.ckpt", TINY)
    without = a_checkpoint(tmp_path / "raw.ckpt", TINY, ema=False)
    monkeypatch.chdir(tmp_path)
    capfd.readouterr()
    for checkpoint, args, message in [
            (with_ema, ["steps=0"], "ValueError: steps=0: the number of DDIM sampling steps must "
                                    "be >= 1, e.g. steps=50"),
            (with_ema, ["prompts=[]"], "ValueError: prompts must be a non-empty list"),
            (with_ema, ["weights=best"], "ConfigError: weights=best: use auto, ema, raw"),
            (without, ["weights=ema"], f"ConfigError: {without} has no EMA weights (trained with "
                                       "ema=false): use weights=raw or weights=auto")]:
        said = command("text2sign.cli.generate", f"ckpt_path={checkpoint}", *args)
        assert said.startswith(message), said
        assert "Traceback" not in "".join(capfd.readouterr())
    assert not (tmp_path / "outputs").exists()


def test_a_checkpoint_written_before_evaluation_moved_still_loads_and_is_the_same_run(tmp_path):
    """Issue 26 moved Evaluation and Samples out of callbacks/: a checkpoint's stored config
    names the old classes; read, it names the new ones, and it is the same run as before."""
    path = a_checkpoint(tmp_path / "old.ckpt", TINY)
    checkpoint = torch.load(path, weights_only=True)
    config = checkpoint["text2sign_config"]
    config["eval"]["_target_"] = "text2sign.callbacks.evaluation.Evaluation"
    config["callbacks"]["samples"]["_target_"] = "text2sign.callbacks.samples.Samples"
    torch.save(checkpoint, path)
    stored = read_checkpoint(path)["text2sign_config"]
    assert stored["eval"]["_target_"] == "text2sign.evaluation.held_out.Evaluation"
    assert stored["callbacks"]["samples"]["_target_"] == "text2sign.evaluation.samples.Samples"
    assert run_config(config) == run_config(stored) != run_config({**config, "seed": -1})
