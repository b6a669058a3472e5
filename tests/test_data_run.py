"""A whole run on real-format clips with planted faults: every fault named, the split saved."""

from __future__ import annotations

import json

import pytest
from data_fixtures import plant_gif_faults, write_gif_folder

from text2sign.run.job import run


@pytest.mark.slow  # a run of its own: the default suite keeps under 5 minutes
def test_a_gif_folder_run_records_every_fault_and_its_split(tiny_config, tmp_path):
    root = write_gif_folder(tmp_path / "gifs", signers=5, clips_per_signer=4, num_frames=8)
    faults = plant_gif_faults(root)
    results = run(tiny_config("data=gif_folder", f"data.root={root}",
                              f"data.cache_dir={tmp_path / 'cache'}"))
    report = json.loads((tmp_path / "data_report.json").read_text())
    listed = {entry["file"].split("/")[-1] for entry in report["skipped"] + report["padded"]}
    assert listed == set(faults)
    assert results["data"]["num_skipped"] == len(report["skipped"]) == 5
    assert results["data"]["num_padded"] == len(report["padded"]) == 1
    split = json.loads((tmp_path / "split.json").read_text())
    assert len(split["train"]) == results["data"]["num_train"] and results["status"] == "completed"
