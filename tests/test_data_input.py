"""Data settings, manifests and data tools that a new user gets wrong: each gets an answer that
names the key, file or row and the fix, before any directory is made."""

from __future__ import annotations

import re

import pytest
from conftest import CONF, TINY
from data_fixtures import write_gif_folder, write_video
from entry_points import command
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from test_data_formats import common

from text2sign.cli import data_bench as bench
from text2sign.cli import prepare
from text2sign.data.clips import DataError
from text2sign.data.datamodule import ManifestDataModule
from text2sign.run.preflight import Preflight, PreflightFailed


def hydra_config(overrides: list[str]):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose("train", overrides=[*TINY, *overrides], return_hydra_config=True)


def test_bad_data_settings_stop_before_any_directory_is_made(tmp_path):
    out = tmp_path / "run"
    a_file = tmp_path / "clips.txt"
    a_file.write_text("not a folder")
    cases = {
        "data.batch_size=-4": "DataError: data.batch_size=-4 must be at least 1: set "
                              "data.batch_size to a positive number",
        "data.image_size=9": "DataError: data.image_size=9 must be a positive multiple of 2: the "
                             "denoiser halves the frame size 1 time(s) (model.denoiser."
                             "channel_mults=[1, 2]). Set data.image_size=8 or 10",
        "data=gif_folder": "DataError: data=gif_folder needs data.root, which is not set: add "
                           "data.root=PATH (the folder of .gif/.txt pairs)",
        f"data=gif_folder data.root={a_file}": f"DataError: data.root={a_file} is a file, not a "
                                               "folder: set data.root to the folder of .gif/.txt "
                                               "pairs",
    }
    for overrides, message in cases.items():
        cfg = hydra_config([*overrides.split(), f"hydra.run.dir={out}"])
        with pytest.raises(PreflightFailed) as failed:
            Preflight().on_run_start(cfg)
        assert str(failed.value).startswith(message), overrides
    # a sweep: what its jobs share is checked once, then each job, before the first starts
    assert command("train.py", "-m", *TINY, "data.batch_size=-4", "ema=true,false",
                   f"hydra.sweep.dir={out}") == cases["data.batch_size=-4"]
    assert command("train.py", "-m", *TINY, "data=gif_folder", f"data.root={tmp_path},{a_file}",
                   f"hydra.sweep.dir={out}") == (
        "1 of 2 jobs of the sweep cannot run; none was started:\n"
        f"job 2 of 2 (scale=tiny data=gif_folder data.root={a_file}): "
        + cases[f"data=gif_folder data.root={a_file}"])

    assert command("train.py", *TINY, "data=gif_folder", f"hydra.run.dir={out}") == \
        cases["data=gif_folder"]  # what `python train.py ...` prints, with exit status 1
    assert not out.exists()


def manifest_with_bad_windows(tmp_path, rows: list[dict]):
    """Six good 2-second clips of three signers, then `rows` on the first one's video."""
    good = []
    for s in range(3):
        for i in range(2):
            write_video(tmp_path / f"s{s}_{i}.mp4", num_frames=20)  # 10 fps: 2.0 s
            good.append({"path": f"s{s}_{i}.mp4", "text": f"clip {s} {i}", "start": "",
                         "end": "", "signer": f"p{s}"})
    manifest = tmp_path / "manifest.csv"
    lines = ["path,text,start,end,signer"] + [",".join(r.values()) for r in good + rows]
    manifest.write_text("\n".join(lines) + "\n")
    return manifest, len(good) + 2  # the line of the first bad row


def test_bad_manifest_rows_are_named_by_file_line_and_window(tmp_path):
    windows = [("-1.0", "1.0", "start=-1.0 is negative"),
               ("0", "inf", "end=inf is not a finite number of seconds: leave end empty"),
               ("1.5", "0.5", "start=1.5 is after end=0.5"),
               ("5", "6", "no frame in the window [5, 6) s: the video has 20 frames, "
                          "2.00 s"),
               ("nan", "1", "start=nan is not a finite number of seconds"),
               ("0.5", "0.5", "end=0.5 is not after start=0.5: the window is empty")]
    rows = [{"path": "s0_0.mp4", "text": f"bad {n}", "start": start, "end": end, "signer": "p0"}
            for n, (start, end, _) in enumerate(windows)]
    manifest, first = manifest_with_bad_windows(tmp_path, rows)
    datamodule = ManifestDataModule(str(manifest), **common(tmp_path, batch_size=1))
    reasons = sorted((s["reason"] for s in datamodule.report()["skipped"]),
                     key=lambda reason: int(reason.split(" line ")[1].split()[0]))
    assert len(reasons) == len(windows)
    for n, (reason, (start, end, problem)) in enumerate(zip(reasons, windows)):
        assert reason.startswith(f"{manifest} line {first + n} (start={start}, end={end}): "
                                 f"{problem}"), reason
    assert not any("unreadable" in reason for reason in reasons)
    assert sum(s["clips"] for s in datamodule.report()["splits"].values()) == 6  # the file is fine


def test_a_broken_jsonl_manifest_names_its_file_and_line(tmp_path):
    write_video(tmp_path / "a.mp4")
    manifest = tmp_path / "clips.jsonl"
    manifest.write_text('{"path": "a.mp4", "text": "hello"}\n\n'
                        '{"path": "a.mp4", "text": "hello" "signer": "x"}\n')
    with pytest.raises(DataError) as error:
        ManifestDataModule(str(manifest), **common(tmp_path)).setup("fit")
    assert str(error.value) == (f"data.path={manifest}: line 3 is not valid JSON (Expecting ',' "
                                "delimiter at column 35): fix that line of the manifest")


def test_prepare_prints_the_split_and_bench_fits_its_batch_to_the_clips(tmp_path, capsys):
    gifs = write_gif_folder(tmp_path / "gifs")
    (gifs / "s0_orphan.txt").write_text("a caption without its clip")
    assert prepare.main(["data=gif_folder", f"data.root={gifs}",
                         f"data.cache_dir={tmp_path / 'cache'}", "data.batch_size=2"]) == 0
    printed = capsys.readouterr().out
    assert re.search(r"^  train +\d+ clips, 2 signers: s\d, s\d$", printed, re.M), printed
    assert f"skipped 1 file:\n  {gifs / 's0_orphan.txt'}: no video: s0_orphan.gif is missing" \
        in printed
    assert "data_report.json" not in printed  # prepare writes none, and says none

    bench.main(["--clips", "16", "--epochs", "1", "--workers", "0"])
    assert "batch 12," in capsys.readouterr().out  # 16 clips: 2 held out for val, 2 for test
