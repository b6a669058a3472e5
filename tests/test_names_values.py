"""Sample file names, values, the run's log and timings, with inputs that once went wrong.

One tiny run with every awkward prompt, a too-large eval.num_videos, a slow validation and the
default (offline) evaluation serves the tests of training; `generate` reuses its checkpoint.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.request

import numpy as np
import pytest
import torch
from conftest import TINY, compose_config
from entry_points import train
from omegaconf import OmegaConf
from PIL import Image

from text2sign.cli.generate import generate
from text2sign.evaluation.held_out import Evaluation
from text2sign.evaluation.samples import NAME_BYTES, check_prompts, write_samples
from text2sign.module import TextToSignModule
from text2sign.run.job import run

# a How2Sign-length sentence (300 characters), and prompts that used to share one file
LONG = ("and so what we're going to do now is take the brush and go over the whole surface "
        "again, nice and slowly, making sure that every corner gets its share of paint, "
        "because if you miss one now you will see it later when the light hits the wall in "
        "the afternoon and then you have to start all over again, which nobody wants to do!")
PROMPTS = ["hello", "Hello", "hello!", "こんにちは", "مرحبا", LONG]
VALIDATION_PAUSE_S = 0.4  # added to every validation batch of the shared run


class Captured(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@pytest.fixture(scope="module")
def issue_run(tmp_path_factory):
    """(run directory, results, log lines, URLs opened) of one tiny run with those inputs."""
    run_dir = tmp_path_factory.mktemp("run")
    quoted = ",".join(json.dumps(p, ensure_ascii=False) for p in PROMPTS)
    cfg = compose_config([*TINY, f"callbacks.samples.prompts=[{quoted}]", "eval.num_videos=1000"],
                         run_dir)
    opened, captured = [], Captured()
    slow_validation = TextToSignModule.validation_step

    def validation_step(self, *args, **kwargs):
        time.sleep(VALIDATION_PAUSE_S)
        return slow_validation(self, *args, **kwargs)

    logger = logging.getLogger("text2sign")
    logger.addHandler(captured)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(logger, "level", logging.INFO)
        patch.setattr(TextToSignModule, "validation_step", validation_step)
        patch.setattr(urllib.request, "urlopen", lambda url, *a, **k: opened.append(url))
        try:
            results = run(cfg)
        finally:
            logger.removeHandler(captured)
    return run_dir, results, captured.lines, opened


def gif_mean(path) -> float:
    with Image.open(path) as image:
        return float(np.asarray(image.convert("L")).mean())


def test_every_prompt_gets_its_own_short_readable_file(tmp_path):
    """Items 1 and 2: hello / Hello / hello! and two non-Latin prompts no longer share a file
    (last wins), a 300-character prompt fits a file name, and index.json maps each prompt to
    its own clip."""
    prompts = [*PROMPTS, "thank you", "👋"]
    shades = torch.arange(len(prompts)) * 25  # each clip one grey level, to tell them apart
    videos = shades.view(-1, 1, 1, 1, 1).expand(-1, 3, 2, 8, 8).to(torch.uint8).contiguous()
    index, _ = write_samples(tmp_path, prompts, videos, {"seed": 0})
    entries = {entry["text"]: entry for entry in index["prompts"]}
    assert list(entries) == prompts
    gifs = [entries[p]["gif"] for p in prompts]
    assert len({g.casefold() for g in gifs}) == len(prompts)  # also on a case-blind disk
    assert sorted(p.name for p in tmp_path.glob("*.gif")) == sorted(gifs)
    for shade, gif in zip(shades.tolist(), gifs):
        assert abs(gif_mean(tmp_path / gif) - shade) < 2, gif  # its own clip, not overwritten
        assert len(gif.encode()) <= NAME_BYTES + len("_12345678.gif"), gif
    assert entries["thank you"]["gif"] == "thank_you.gif"
    assert entries["こんにちは"]["gif"] == "こんにちは.gif"
    assert entries["مرحبا"]["gif"] == "مرحبا.gif"
    assert gifs[0].startswith("hello_") and gifs[-1].startswith("prompt_")
    assert entries[LONG]["gif"].startswith("and_so_what_we_re_going")


def test_a_repeated_prompt_is_written_once_and_said(caplog):
    with caplog.at_level(logging.WARNING):
        assert check_prompts(["hello", "thank you", "hello"], "prompts") == ["hello", "thank you"]
    assert "prompts lists 'hello' more than once" in caplog.text
    with pytest.raises(ValueError, match=r"callbacks.samples.prompts must be a non-empty list"):
        check_prompts(["hello", " "], "callbacks.samples.prompts")


def test_a_run_with_long_and_colliding_prompts_completes_with_every_clip(issue_run):
    """Item 1: the run used to fail after training, with no evaluation and no final.ckpt."""
    run_dir, results, lines, _ = issue_run
    assert results["status"] == "completed", results["error"]
    assert (run_dir / "checkpoints" / "final.ckpt").is_file()
    assert results["eval"]["val_loss"] is not None
    index = json.loads((run_dir / "samples" / "index.json").read_text())
    files = {entry["text"]: entry["gif"] for entry in index["prompts"]}
    assert list(files) == PROMPTS and len(set(files.values())) == len(PROMPTS)
    assert all((run_dir / "samples" / gif).is_file() for gif in files.values())
    assert f"wrote {len(PROMPTS)} sample clips to {run_dir / 'samples'}" in lines


def test_eval_num_videos_beyond_the_split_is_said_and_recorded(issue_run):
    """Item 8: eval.num_videos=1000 silently became 8."""
    _, results, lines, _ = issue_run
    assert results["eval"]["num_videos"] == 8  # the scale=tiny test split
    assert any(line.startswith("eval.num_videos=1000, but the test split has 8 clips: using 8")
               and "set eval.num_videos=8" in line for line in lines), lines


def test_training_time_leaves_out_validation(issue_run):
    """Item 15: train.time_s is the training loop without its validations (here slowed down),
    clips_per_s a training throughput, and the attempt's wall time is recorded apart."""
    run_dir, results, _, _ = issue_run
    train, provenance = results["train"], results["provenance"]
    rows = {row["step"]: row for row in json.loads(
        (run_dir / "training_metrics.json").read_text())}
    # validations of 2 batches after steps 2 and 4: neither counts
    clock = rows[3]["timestamp"] - rows[2]["timestamp"]
    assert rows[3]["elapsed_s"] - rows[2]["elapsed_s"] < clock - 2 * VALIDATION_PAUSE_S
    assert train["time_s"] - rows[4]["elapsed_s"] < 2 * VALIDATION_PAUSE_S
    assert train["clips_per_s"] == pytest.approx(4 * 4 / train["time_s"], rel=0.01)
    wall = provenance["attempts"][-1]["wall_s"]
    assert provenance["wall_s"] == wall
    assert wall > train["time_s"] + 7 * VALIDATION_PAUSE_S  # sanity 1 + 4 in training + 2 after


def test_lpips_weights_are_not_downloaded_by_default(issue_run):
    """Item 16: nothing is fetched at run time; LPIPS says why it is null and how to enable it."""
    _, results, _, opened = issue_run
    assert opened == []
    assert results["eval"]["lpips"] is None
    reason = results["eval"]["unavailable"]["lpips"]
    assert "downloads are off (eval.download=false)" in reason
    assert "eval.download=true" in reason and "eval.lpips.backbone_path" in reason


def test_the_run_log_ends_with_the_status_and_the_record(issue_run):
    run_dir, _, lines, _ = issue_run
    assert lines[-1] == f"run completed: {run_dir / 'results.json'}"


def test_generate_writes_a_file_per_prompt_and_counts_them(issue_run, tmp_path, caplog):
    """Items 1 and 2 for `python -m text2sign.cli.generate`: File name too long after sampling, and
    "wrote 11 clips" for fewer files."""
    run_dir = issue_run[0]
    cfg = OmegaConf.create({"ckpt_path": str(run_dir / "checkpoints" / "final.ckpt"),
                            "prompts": [*PROMPTS, "hello"], "steps": 1, "guidance_scale": 3.0,
                            "seed": 0, "weights": "auto", "fps": 8, "device": "auto"})
    with caplog.at_level(logging.INFO):
        index = generate(cfg, tmp_path)
    assert [entry["text"] for entry in index["prompts"]] == PROMPTS
    assert len(list(tmp_path.glob("*.gif"))) == len(list(tmp_path.glob("*.mp4"))) == len(PROMPTS)
    assert f"wrote {len(PROMPTS)} clips (ema weights) to {tmp_path}" in caplog.text


@pytest.mark.parametrize("values, message", [
    ({"steps": 0}, "steps=0: the number of DDIM sampling steps must be >= 1, e.g. steps=50"),
    ({"steps": -3, "guidance_scale": -5}, "steps=-3: "),
    ({"guidance_scale": -5}, "guidance_scale=-5: classifier-free guidance must be >= 0"),
    ({"fps": 0}, "fps=0: the frame rate of the written clips must be >= 1, e.g. fps=8"),
    ({"device": "nowhere"}, "device='nowhere' is not a device: use auto, cpu, cuda or cuda:N"),
])
def test_generate_rejects_nonsense_values_before_sampling(tmp_path, values, message):
    """Item 8: accepted ("wrote 1 clips"), or a ZeroDivisionError after sampling. The check
    comes before the checkpoint is even read (there is none here) and writes nothing."""
    cfg = OmegaConf.create({"ckpt_path": str(tmp_path / "none.ckpt"), "prompts": ["hello"],
                            "steps": 2, "guidance_scale": 3.0, "seed": 0, "weights": "auto",
                            "fps": 8, "device": "auto", **values})
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        generate(cfg, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_failed_run_says_why_in_its_log_and_bad_values_fail_before_any_work(tmp_path, capfd):
    """Items 14 and 8: train.log of a failed run held only its "run directory" line, and
    eval.steps=0 completed with metrics. Now a bad value stops the command before any
    directory is made, naming the key and the fix, in one line; a run that fails as it runs (a
    manifest whose line 3 cannot be read) says why in its log and, without a traceback, on the
    console."""
    result = train(capfd, *TINY, "eval.steps=0", f"hydra.run.dir={tmp_path / 'bad'}")
    assert (result.returncode, result.stderr.strip().splitlines()) == (1, [
        "ConfigError: eval.steps=0: the number of DDIM sampling steps must be >= 1, e.g. "
        "eval.steps=50"])
    assert not (tmp_path / "bad").exists()
    with pytest.raises(ValueError, match="eval.guidance_scale=-1: classifier-free guidance must"):
        Evaluation(guidance_scale=-1)
    manifest = tmp_path / "clips.jsonl"  # its line 3 is read when the run builds its data
    manifest.write_text('{"path": "a.mp4", "text": "hi"}\n\n{"path": "a.mp4" "text": "hi"}\n')
    run_dir = tmp_path / "run"
    result = train(capfd, *TINY, "data=manifest", f"data.path={manifest}",
                   f"data.cache_dir={tmp_path / 'cache'}", f"hydra.run.dir={run_dir}")
    results = json.loads((run_dir / "results.json").read_text())
    assert results["status"] == "failed"
    assert results["error"] == (f"DataError: data.path={manifest}: line 3 is not valid JSON "
                                "(Expecting ',' delimiter at column 18): fix that line of the "
                                "manifest")
    said = f'run failed: {results["error"]}; status "failed" recorded in {run_dir / "results.json"}'
    assert said in (run_dir / "train.log").read_text()
    assert result.returncode == 1 and "Traceback" not in result.stdout + result.stderr
    assert result.stderr.strip().splitlines()[-1] == results["error"]
