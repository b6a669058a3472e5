"""results.json's schema (text2sign/rundir/schema.py): its JSON Schema, the strict writer,
the table of docs/outputs.md.
(Every record a run or a sweep writes is checked against it in test_train.py.)"""

from __future__ import annotations

import copy
import json

import pytest
from analysis_fixtures import factors, results
from conftest import ROOT, TINY, compose_run

from text2sign.rundir import schema
from text2sign.rundir.record import RunRecord

BEGIN, END = "<!-- python -m text2sign.rundir.schema --markdown -->\n", "<!-- end of the schema -->"


@pytest.fixture
def record(tmp_path) -> dict:
    """A record as a run writes it when it starts (no training: nothing measured yet)."""
    cfg, runtime = compose_run([*TINY, "ema=false"], tmp_path)
    RunRecord(tmp_path, cfg, runtime=runtime)
    return json.loads((tmp_path / "results.json").read_text())


def test_the_record_of_a_starting_run_follows_the_schema(record):
    assert schema.problems(record) == []
    assert record["status"] == "running" and record["eval"] == {"weights": "raw"}
    assert {k: record["factors"][k] for k in ("scale", "ema", "seed")} == {
        "scale": "tiny", "ema": False, "seed": 0}


def test_an_undeclared_key_stops_the_writer(tmp_path):
    cfg, runtime = compose_run(TINY, tmp_path)
    run = RunRecord(tmp_path, cfg, runtime=runtime)
    with pytest.raises(schema.SchemaError, match="'final_los' is not a key of results.json "
                                                  "section Train"):
        run.update("train", {"final_los": 0.5})
    with pytest.raises(schema.SchemaError, match=r"train.steps is '4' \(str\), expected an "
                                                  "integer or null"):
        run.update("train", {"steps": "4"})
    assert schema.read_results(tmp_path / "results.json")["train"]["steps"] is None  # unwritten


@pytest.mark.parametrize("change, problem", [
    (lambda r: r["eval"].update(fvd_v2=1.0), "eval.fvd_v2 is not a key of the schema"),
    (lambda r: r["train"].pop("epochs"), "train.epochs is missing"),
    (lambda r: r.update(status="done"), "status is 'done' (str), expected text: running, "
                                        "completed or failed"),
    (lambda r: r.update(schema_version=True), "schema_version is True (bool), expected 1"),
    (lambda r: r["provenance"]["attempts"][0].update(status="lost"),
     "provenance.attempts[0].status is 'lost' (str)"),
    (lambda r: r["data"].update(num_train=3.0), "data.num_train is 3.0 (float), expected an "
                                                "integer or null"),
])
def test_the_writer_names_each_problem(record, change, problem):
    change(record)
    assert problem in "\n".join(schema.problems(record))


def test_an_ended_run_gives_every_metric_or_its_reason(record):
    record["status"] = "failed"
    assert schema.problems(record) == [
        *(f"eval.{key} is missing (written when the run ends)"
          for key in (*schema.AT_END, "unavailable"))]
    record["eval"].update(dict.fromkeys(schema.AT_END), unavailable={"fvd": "no detector"})
    assert schema.problems(record) == [f"eval.{key} is null without its reason in eval.unavailable"
                                       for key in schema.AT_END if key != "fvd"]


def test_records_of_other_code_are_read_but_not_written(record):
    """analyze.py reads what code of the same version wrote: fewer keys, other metrics."""
    older = results(factors("frozen", True, 0), 100.0, 60.0, 0)  # the analysis fixture
    older["eval"]["clip_score"] = 0.3
    assert schema.read_error(older) is None
    assert "train.skipped_steps is missing" in schema.problems(older)
    assert "eval.clip_score is not a key of the schema" in schema.problems(older)


def test_the_json_schema_is_the_one_enforced(capsys, record):
    assert schema.main([]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == schema.json_schema()
    assert printed["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert set(printed["required"]) == set(schema.SECTIONS) | {
        "schema_version", "status", "error", "interrupted", "diverged", "factors"}
    train = printed["properties"]["train"]
    assert train["additionalProperties"] is False and "time_s" in train["required"]
    assert train["properties"]["steps"] == {"type": ["integer", "null"],
                                            "description": "optimizer steps trained (the "
                                                           "global step)"}
    broken = copy.deepcopy(record)
    broken["train"]["steps"] = "4"
    assert schema.validate(record, printed) == []
    assert schema.validate(broken, printed) == [
        "train.steps is '4' (str), expected an integer or null"]


def test_the_command_checks_files(tmp_path, capsys, record):
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    good.write_text(json.dumps(record))
    bad.write_text(json.dumps({**record, "status": "done"}))
    assert schema.main([str(good)]) == 0
    assert schema.main([str(good), str(bad)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out == ["1 of 1 results.json files follow the schema",
                   f"{bad}: status is 'done' (str), expected text: running, completed or failed",
                   "1 of 2 results.json files follow the schema"]


def test_the_docs_table_is_the_schema():
    page = (ROOT / "docs" / "outputs.md").read_text()
    assert BEGIN in page and END in page, "docs/outputs.md lost the schema's markers"
    table = page.split(BEGIN, 1)[1].split(END, 1)[0]
    assert table == schema.markdown(), (
        "docs/outputs.md's results.json table is out of date: replace it with the output of "
        "`python -m text2sign.rundir.schema --markdown`")


def strict_json(path) -> dict:
    """The file as a strict JSON reader reads it: NaN and Infinity are errors."""
    def refuse(token):
        raise ValueError(f"{token} is not JSON")
    return json.loads(path.read_text(), parse_constant=refuse)


def test_a_figure_that_is_no_number_is_recorded_as_null_with_what_it_was(tmp_path):
    """Once: results.json held the bare tokens NaN and Infinity, which strict JSON readers
    refuse, and a run whose loss diverged looked like one whose loss was not measured."""
    cfg, runtime = compose_run(TINY, tmp_path)
    run = RunRecord(tmp_path, cfg, runtime=runtime)
    run.update("train", {"final_loss": float("nan"), "steps": 3})
    run.update("eval", {"val_loss": float("inf"), "fvd": None, "unavailable": {"fvd": "no weights"}})
    run.finish("completed")
    written = strict_json(tmp_path / "results.json")
    assert written["diverged"] == {"train.final_loss": "nan", "eval.val_loss": "inf"}
    assert (written["train"]["final_loss"], written["train"]["steps"]) == (None, 3)
    assert written["eval"]["val_loss"] is None
    assert written["eval"]["unavailable"]["val_loss"] == "diverged: it was inf, not a finite number"
    assert written["eval"]["unavailable"]["fvd"] == "no weights"
    assert schema.problems(written) == []
    strict_json(tmp_path / "metadata.json")
    run.update("eval", {"val_loss": 0.5})  # measured again: no longer diverged
    assert run.results["diverged"] == {"train.final_loss": "nan"}
    assert "val_loss" not in run.results["eval"]["unavailable"]


def test_the_command_rejects_json_that_strict_readers_refuse(tmp_path, capsys, record):
    """Once: `python -m text2sign.rundir.schema` said such a file followed the schema."""
    record["train"]["final_loss"] = float("nan")
    path = tmp_path / "results.json"
    path.write_text(json.dumps(record))  # the bare token NaN
    assert "NaN" in path.read_text()
    assert schema.main([str(path)]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{path}: train.final_loss is nan, not a finite number: strict JSON has no NaN or "
        "Infinity (record it as null, with what it was under diverged)",
        "0 of 1 results.json files follow the schema"]


def test_a_refused_value_leaves_the_record_writable(tmp_path):
    """Once: a value of the wrong type stayed in the record, every later write failed with
    it, and the run said "running" for ever."""
    cfg, runtime = compose_run(TINY, tmp_path)
    run = RunRecord(tmp_path, cfg, runtime=runtime)
    with pytest.raises(schema.SchemaError, match="train.final_loss is 'low'"):
        run.update("train", {"final_loss": "low"})
    run.update("train", {"steps": 4})
    run.finish("failed", "ValueError: a bad value")
    assert schema.read_results(tmp_path / "results.json")["status"] == "failed"
