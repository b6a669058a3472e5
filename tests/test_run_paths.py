"""Where a run lives: a run directory moved, copied or reached through a symlink is the same
run, and folders that cannot be written are named with the key to change."""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest
from conftest import CONF, TINY, compose_config
from data_fixtures import write_gif_folder
from entry_points import command
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from test_resume import damaged_run

from text2sign.cli import analyze as cli
from text2sign.data.clips import DataError
from text2sign.data.datamodule import GifFolderDataModule
from text2sign.run.job import run
from text2sign.run.preflight import Preflight, PreflightFailed


def test_a_run_directory_copied_or_reached_through_a_symlink_is_the_same_run(
        tmp_path, recwarn):
    overrides = [*TINY, "callbacks.step_checkpoints.every_n_train_steps=1", "eval.enabled=false"]
    original = tmp_path / "original"
    whole = run(compose_config(overrides, original))
    files = {name: (original / name).read_bytes()
             for name in ("results.json", "checkpoints/final.ckpt", "checkpoints/best.ckpt")}
    link, copy = tmp_path / "link", tmp_path / "copy"
    link.symlink_to(original)
    shutil.copytree(original, copy)
    for place in (link, copy):  # completed: skipped, nothing retrained or rewritten
        assert run(compose_config(overrides, place)) == json.loads(json.dumps(whole))
        assert (place / "results.json").read_bytes() == files["results.json"]

    (copy / "checkpoints" / "step0000004.ckpt").unlink()  # killed after step 3, then copied
    damaged_run(copy, "last.ckpt")
    resumed = run(compose_config(overrides, copy))
    assert resumed["provenance"]["attempts"][-1]["resumed_from"] == "checkpoints/step0000003.ckpt"
    same = ("steps", "epochs", "final_loss", "best_val_loss", "skipped_steps")
    assert {k: resumed["train"][k] for k in same} == {k: whole["train"][k] for k in same}
    # the checkpoint callbacks' records moved with the run (Lightning kept them)
    assert not [w for w in recwarn if "dirpath has changed" in str(w.message)]
    assert {name: (original / name).read_bytes() for name in files} == files
    GlobalHydra.instance().clear()


@pytest.fixture
def read_only(tmp_path):
    """A folder nobody may write in (root writes through permissions: a read-only mount)."""
    folder = tmp_path / "read_only"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)
        yield folder
        folder.chmod(0o755)
        return
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro", "tmpfs", str(folder)],
                             capture_output=True)
    if mounted.returncode:
        pytest.skip("root without the right to mount a read-only folder")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


def hydra_config(overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=[*TINY, *overrides], return_hydra_config=True)


def test_folders_that_cannot_be_written_are_named_with_the_key_to_change(
        read_only, tmp_path, monkeypatch, capsys):
    out = read_only / "runs" / "one"
    with pytest.raises(PreflightFailed) as failed:
        Preflight().on_run_start(hydra_config([f"hydra.run.dir={out}"]))
    assert str(failed.value) == (f"ConfigError: cannot write the output folder {out} "
                                 f"({read_only} is not writable): set hydra.run.dir to a "
                                 "writable folder")
    assert command("train.py", *TINY, f"hydra.run.dir={out}").startswith(
        f"ConfigError: cannot write the output folder {out}")  # exit status 1, this on stderr
    sweep = hydra_config([f"hydra.sweep.dir={out}"])
    with pytest.raises(PreflightFailed, match=f"{out} .* set hydra.sweep.dir to a writable"):
        Preflight().on_multirun_start(sweep)

    gifs = write_gif_folder(tmp_path / "gifs")
    cache = read_only / "cache"
    with pytest.raises(PreflightFailed) as failed:
        Preflight().on_run_start(hydra_config(["data=gif_folder", f"data.root={gifs}",
                                               f"data.cache_dir={cache}",
                                               f"hydra.run.dir={tmp_path / 'run'}"]))
    assert str(failed.value) == (f"DataError: data.cache_dir={cache} cannot be created "
                                 f"({read_only} is not writable): set data.cache_dir to a "
                                 "writable folder")
    GlobalHydra.instance().clear()
    # an existing read-only cache is read; one that lacks a clip cannot be filled
    with pytest.raises(DataError) as error:
        GifFolderDataModule(str(gifs), "^([^_]+)_", num_frames=4, image_size=16, batch_size=2,
                            num_workers=0, seed=0, split="signer", val_fraction=0.25,
                            test_fraction=0.25, fit="crop", short_clips="pad", fps=None,
                            cache_dir=str(read_only)).prepare_data()
    assert str(error.value).startswith(f"data.cache_dir={read_only} cannot be written (")
    assert str(error.value).endswith("set data.cache_dir to a writable folder with free space")

    monkeypatch.setattr(cli, "collect", lambda *a, **k: pytest.fail("computed before failing"))
    assert cli.main([str(tmp_path), "--output-dir", str(out)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"analyze.py: error: cannot write the output folder {out} ({read_only} is not "
        "writable): give a writable folder with --output-dir DIR")
    assert sorted(p.name for p in read_only.iterdir()) == []
