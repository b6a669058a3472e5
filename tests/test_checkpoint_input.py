"""Checkpoints given on the command line: files that are not text2sign checkpoints are named
as such before any directory is made, and train=false evaluates a checkpoint with the config
stored in it."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from conftest import CONF, TINY, compose_run
from entry_points import command
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from text2sign.cli.generate import load_module
from text2sign.run.checkpointing import CheckpointError, read_checkpoint
from text2sign.run.job import run
from text2sign.run.preflight import Preflight, PreflightFailed


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
