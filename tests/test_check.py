"""`python -m text2sign.check`: what it composes, how it reports a failure; the whole check
(it trains) under -m slow."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from conftest import CONF, ROOT
from hydra import initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from text2sign import check
from text2sign.rundir.step_logs import TRAINING_COLUMNS


def test_every_option_of_every_group_is_composed():
    options = check.group_options()
    groups = {group for group, _ in options}
    assert groups == {"data", "text_encoder", "model", "optimizer", "lr_scheduler", "trainer",
                      "callbacks", "logger", "eval", "perf", "scale", "ablation", "experiment",
                      "hydra/launcher"}  # scale_data follows scale and data
    assert set(options) == {(group, path.stem) for group in groups
                            for path in (CONF / group).glob("*.yaml")}
    assert ["experiment=ablation_seeds"] in check.sweeps()
    assert ["ablation=baseline,text_finetuned,no_ema"] in check.sweeps()


def test_a_failing_check_is_named(tmp_path, capsys):
    conf = shutil.copytree(CONF, tmp_path / "conf")
    (conf / "text_encoder" / "broken.yaml").write_text(
        "defaults:\n  - frozen\n  - _self_\n\ntrainable: maybe\n")
    (conf / "experiment" / "bad_sizes.yaml").write_text(
        "# @package _global_\nhydra:\n  sweeper:\n    params:\n      data.image_size: 8,9\n")
    checks = check.Checks()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        check.check_configs(checks, [("train", ["text_encoder=frozen"]),
                                     ("train", ["text_encoder=broken"])],
                            [["scale=tiny", "experiment=bad_sizes"]])
    job = tmp_path / "job"
    job.mkdir()
    (job / "training_metrics.csv").write_text("step,loss\n1,0.5\n2,0.4\n")
    for name in ("training_metrics.csv", "results.json"):
        checks.run(f"baseline: {name}", lambda name=name: check.CONTRACT[name](job, "baseline"))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "PASS config text_encoder=frozen"
    assert lines[1].startswith("FAIL config text_encoder=broken: ")
    assert "Value 'maybe' is not a valid bool" in "\n".join(lines)
    sweep = next(line for line in lines if line.startswith("FAIL sweep"))
    assert sweep == ("FAIL sweep scale=tiny experiment=bad_sizes: job 2 of 2 (data.image_size=9 "
                     "scale=tiny experiment=bad_sizes): DataError: data.image_size=9 must be a positive multiple of "
                     "2: the denoiser halves the frame size 1 time(s) (model.denoiser."
                     "channel_mults=[1, 2]). Set data.image_size=8 or 10")
    assert lines[-2] == (f"FAIL baseline: training_metrics.csv: columns ['step', 'loss'], "
                         f"expected {list(TRAINING_COLUMNS)}")
    assert lines[-1].startswith("FAIL baseline: results.json: FileNotFoundError")
    assert checks.failed == ["config text_encoder=broken", "sweep scale=tiny experiment=bad_sizes",
                             "baseline: training_metrics.csv", "baseline: results.json"]
    assert checks.passed == 1


@pytest.mark.slow
def test_the_check_passes_on_this_project():
    result = subprocess.run([sys.executable, "-m", "text2sign.check"], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    lines = result.stdout.splitlines()
    assert lines[-1].startswith(f"all {len(lines) - 1} checks passed in ")
    assert all(line.startswith("PASS ") for line in lines[:-1])
    assert "PASS no_ema: checkpoints/: last, best and final load, at step 2" in lines


def test_the_check_fails_where_training_would(tmp_path, monkeypatch, capsys):
    """Once: with ./outputs a file (or a folder that cannot be written), every check passed,
    and then `python train.py` stopped: the check trains in a temporary folder."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outputs").write_text("a file where the runs go")
    checks = check.Checks()
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        check.check_here(checks)
        assert checks.failed == ["here: python train.py", "here: python train.py -m"]
        (tmp_path / "outputs").unlink()
        check.check_here(checks)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("FAIL here: python train.py: ConfigError: cannot write the output "
                               "folder outputs/runs/")
    assert lines[0].endswith(f"({tmp_path / 'outputs'} is a file): set hydra.run.dir to a "
                             "writable folder")
    assert lines[1].startswith("FAIL here: python train.py -m: ConfigError: cannot write the "
                               "output folder outputs/multirun/")
    assert lines[2].startswith("PASS here: python train.py: the pre-flight passes; it would "
                               "write outputs/runs/")
    assert checks.passed == 2 and list(tmp_path.iterdir()) == []  # nothing made
