"""docs/adding_a_factor.md, done in a copy of the project: a new UNet3D argument
plus one line of conf/model/unet3d.yaml is a validated, sweepable, analysed factor."""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

# The two edits of the walk-through in docs/adding_a_factor.md: the constructor and the YAML.
CONSTRUCTOR = ("        dropout: float = 0.0,\n",
               "        dropout: float = 0.0,\n        emb_mult: int = 4,\n")
USE = ("        emb_dim = 4 * base_channels\n", "        emb_dim = emb_mult * base_channels\n")
YAML = ("  dropout: 0.0\n", "  dropout: 0.0\n  emb_mult: 4\n")

CHECK = """
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from hydra.utils import instantiate
from text2sign.config import register_configs

register_configs()
with initialize_config_dir(config_dir="{conf}", version_base="1.3"):
    cfg = compose("train", ["scale=tiny", "model.denoiser.emb_mult=2"])
    denoiser = instantiate(cfg.model.denoiser)(context_dim=8)
    print("emb_dim", denoiser.time_mlp[0].out_features)
    try:
        compose("train", ["model.denoiser.emb_mult=two"])
    except ConfigCompositionException as err:
        print("error", err, err.__cause__)
"""


def project_with_new_argument(tmp_path: Path) -> Path:
    """A copy of the project with `emb_mult` added to UNet3D and conf/model/unet3d.yaml."""
    copy = tmp_path / "project"
    for name in ("conf", "text2sign"):
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("train.py", "analyze.py"):
        shutil.copy(ROOT / name, copy / name)
    for path, edits in ((copy / "text2sign/models/unet3d.py", (CONSTRUCTOR, USE)),
                        (copy / "conf/model/unet3d.yaml", (YAML,))):
        text = path.read_text()
        for old, new in edits:
            assert text.count(old) == 1, f"the walk-through no longer applies to {path.name}"
            text = text.replace(old, new)
        path.write_text(text)
    return copy


def run_in(project: Path, *args: str, timeout: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(project)}
    result = subprocess.run([sys.executable, *args], cwd=project, env=env, capture_output=True,
                            text=True, timeout=timeout, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.mark.slow  # over 10 s: the default suite keeps under 5 minutes
def test_a_new_constructor_argument_is_typed_and_overridable(tmp_path):
    project = project_with_new_argument(tmp_path)
    out = run_in(project, "-c", CHECK.format(conf=project / "conf"), timeout=120).stdout
    assert "emb_dim 16" in out  # scale=tiny: base_channels 8, times emb_mult 2
    error = out[out.index("error"):]
    assert "model.denoiser.emb_mult" in error and "two" in error


@pytest.mark.slow
def test_a_new_constructor_argument_is_swept_and_analysed(tmp_path):
    project = project_with_new_argument(tmp_path)
    sweep = tmp_path / "sweep"
    run_in(project, "train.py", "-m", "scale=tiny", "model.denoiser.emb_mult=2,4",
           "eval.enabled=false", f"hydra.sweep.dir={sweep}", timeout=600)
    run_in(project, "analyze.py", str(sweep), "--output-format", "csv", timeout=300)
    with open(sweep / "analysis" / "comparison_table.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(row["model.denoiser.emb_mult"] for row in rows) == ["2", "4"]
    sizes = {row["model.denoiser.emb_mult"]: float(row["num_parameters_millions_mean"])
             for row in rows}
    assert sizes["2"] < sizes["4"]  # the argument reached the network
