"""analyze.py's conclusions can be trusted: the reproductions of issue 12 (a run counted twice,
a phantom ablation, the wrong quality metric, a foreign record averaged in, a swallowed
argument) and the false-positive rate and power of its tests on simulated data."""

from __future__ import annotations

from pathlib import Path

import pytest

from analysis_fixtures import factors, results, write_run
from text2sign.analysis.collect import collect
from text2sign.analysis.schema import schema_error
from text2sign.analysis.study import build_study

from test_analysis import analyze


def record(fvd: float = 100.0, seed: int = 0, **factor_values) -> dict:
    return results(factors(factor_values.get("text_encoder", "frozen"),
                           factor_values.get("ema", True), seed), fvd, 60.0, seed)


# results.json through its schema ------------------------------------------------------------

@pytest.mark.parametrize("change, reason", [
    ({"schema_version": 99}, "schema_version 99 is not 1"),
    ({"schema_version": None}, "schema_version None is not 1"),
    ({"status": "done"}, "status 'done' is not one of completed, failed, running"),
    ({"factors": ["ema"]}, "factors is ['ema'] (list), expected dict or null"),
    ({"train": 3}, "train is 3 (int), expected an object"),
])
def test_schema_rejects_foreign_records(change, reason):
    assert reason in schema_error({**record(), **change})


@pytest.mark.parametrize("section, key, value, reason", [
    ("eval", "val_loss", "abc", "eval.val_loss is 'abc' (str), expected a number, null"),
    ("eval", "fvd", True, "eval.fvd is True (bool)"),
    ("train", "time_s", "1h", "train.time_s is '1h' (str), expected a number or null"),
    ("eval", "weights", 3, "eval.weights is 3 (int), expected text"),
])
def test_schema_rejects_wrong_types(section, key, value, reason):
    data = record()
    data[section][key] = value
    assert reason in schema_error(data)


def test_schema_accepts_settings_objects_and_nulls():
    data = record()
    data["eval"].update(retrieval={"k": 8, "pool": "test"}, caption_retrieval_acc=None,
                        per_prompt=[0.1, 0.2])
    assert schema_error(data) is None


def test_foreign_records_are_listed_with_file_and_reason_never_averaged(tmp_path):
    """Issue 12, item 4: a version-99 record with val_loss 123 was averaged in (+6004%)."""
    for seed in (0, 1):
        write_run(tmp_path / f"ok{seed}", record(100.0 + seed, seed))
    v99 = {**record(100.0, 2), "schema_version": 99}
    v99["eval"]["val_loss"] = 123
    write_run(tmp_path / "v99", v99)
    abc = record(100.0, 3)
    abc["eval"]["val_loss"] = "abc"
    write_run(tmp_path / "abc", abc)
    study = build_study(collect([tmp_path], skip=tmp_path / "analysis"))
    assert study.summaries["val_loss"][0].n == 2
    assert study.summaries["val_loss"][0].mean == pytest.approx((100 + 101) / 2 / 400)
    assert analyze(tmp_path) == 0
    report = (tmp_path / "analysis" / "ABLATION_RESULTS_REPORT.txt").read_text()
    assert f"{tmp_path / 'v99' / 'results.json'}: schema_version 99 is not 1" in report
    assert f"{tmp_path / 'abc' / 'results.json'}: eval.val_loss is 'abc' (str)" in report
    assert "Runs found: 4 (2 completed, 0 failed, 0 running, 2 unreadable)" in report
