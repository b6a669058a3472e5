"""Checkpoints given on the command line: files that are not text2sign checkpoints are named
as such before any directory is made, and train=false evaluates a checkpoint with the config
stored in it (issue 14, items 6 and 7)."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from conftest import CONF, ROOT, TINY, compose_config
from text2sign.checkpointing import CheckpointError, read_checkpoint
from text2sign.generate import load_module
from text2sign.preflight import Preflight, PreflightFailed
from text2sign.train import run


def not_checkpoints(folder) -> dict[str, tuple]:
    """The issue's inputs: name -> (path, a fragment of the reason)."""
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
            "foreign dict": (foreign, "lacks text2sign_config, global_step"),
            "missing": (folder / "gone.ckpt", "no such file")}


def hydra_config(name: str, overrides: list[str]):
    """The config Hydra hands its callbacks (with the hydra node), as a command composes it."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(name, overrides=overrides, return_hydra_config=True)


def test_files_that_are_not_checkpoints_are_named_before_any_directory_is_made(tmp_path):
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
            load_module(path)  # python -m text2sign.generate
        for command, cfg in commands.items():
            cfg.ckpt_path, cfg.hydra.run.dir = str(path), str(out)
            with pytest.raises(PreflightFailed) as failed:
                Preflight().on_run_start(cfg)
            assert str(failed.value).startswith(f"CheckpointError: {expected}"), (name, command)
    assert not out.exists()
    GlobalHydra.instance().clear()


def test_generate_with_a_text_file_stops_in_one_line_and_makes_no_directory(tmp_path):
    notes = tmp_path / "notes.ckpt"
    notes.write_text("not a checkpoint")
    result = subprocess.run([sys.executable, "-m", "text2sign.generate", f"ckpt_path={notes}"],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        f"CheckpointError: {notes} is not a readable text2sign checkpoint: not a PyTorch "
        "checkpoint archive (a text file or another format); set ckpt_path to a checkpoint "
        "written by train.py (a run's checkpoints/final.ckpt, last.ckpt or best.ckpt)")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.ckpt"]  # no outputs/


@pytest.fixture(scope="module")
def tiny_checkpoints(tmp_path_factory):
    """final.ckpt and results of a tiny run with EMA and of one without."""
    found = {}
    for ema in (True, False):
        run_dir = tmp_path_factory.mktemp(f"ema_{ema}")
        results = run(compose_config([*TINY, f"ema={ema}"], run_dir))
        found[ema] = run_dir / "checkpoints" / "final.ckpt", results
    GlobalHydra.instance().clear()
    return found


@pytest.mark.parametrize("ema", [True, False])
def test_train_false_evaluates_a_tiny_checkpoint_from_the_default_command(
        tiny_checkpoints, tmp_path, caplog, ema):
    checkpoint, trained = tiny_checkpoints[ema]
    caplog.set_level(logging.INFO)
    # python train.py train=false ckpt_path=... (scale=small), one evaluation key, one other
    cfg = compose_config(["train=false", f"ckpt_path={checkpoint}", "eval.num_videos=2",
                          "data.batch_size=2"], tmp_path)
    assert cfg.model.denoiser.base_channels == 32  # the command's scale=small
    results = run(cfg)
    GlobalHydra.instance().clear()
    assert results["status"] == "completed", results["error"]
    evaluation = results["eval"]
    assert evaluation["weights"] == trained["eval"]["weights"] == ("ema" if ema else "raw")
    assert evaluation["val_loss"] == pytest.approx(trained["eval"]["val_loss"], rel=1e-5)
    assert evaluation["num_videos"] == 2 and evaluation["steps"] == 2  # tiny's eval.steps
    config = json.loads((tmp_path / "metadata.json").read_text())["config"]
    assert config["model"]["denoiser"]["base_channels"] == 8 and config["ema"] is ema
    assert config["data"]["batch_size"] == 4  # the override is ignored, and said so
    assert config["callbacks"]["best_checkpoint"]["dirpath"] == f"{tmp_path}/checkpoints"
    assert results["factors"]["scale"] == "tiny" and results["factors"]["train"] is False
    said = caplog.text
    assert f"evaluating {checkpoint} with the config stored in it" in said
    assert "from the command line: eval.num_videos=2" in said
    assert "ignored, the checkpoint's config decides: data.batch_size" in said
    assert (tmp_path / "samples" / "grid.png").exists()
