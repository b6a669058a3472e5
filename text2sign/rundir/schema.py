"""results.json, declared once: its writer, its reader and its JSON Schema.

    python -m text2sign.rundir.schema             # the JSON Schema
    python -m text2sign.rundir.schema --markdown  # the table of docs/outputs.md
    python -m text2sign.rundir.schema RUN/results.json  # check files: exit 1 with what is wrong

The dataclasses below are schema_version 1; they are never instantiated: their fields declare
the keys, and text2sign/rundir/json_schema.py turns them into JSON Schema. `write_results` checks a
record strictly (every key declared, of its type; an unknown key is a bug and raises) before
it writes it. `read_results` reads the records of any code that wrote version 1: keys added
since may be missing, and a section may hold keys this code does not write, of the type its
`READ_EXTRA` says (eval metrics of other code, for instance); a value of the wrong type or
another version makes the record unreadable, with the reason. Both check against the JSON
Schema built from these classes: the schema that is published is the one that is enforced.
"""

from __future__ import annotations

import functools
import json
import math
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, get_args, get_origin, get_type_hints

from text2sign.rundir.files import atomic_write_json
from text2sign.rundir.json_schema import describe, schema_of, validate

SCHEMA_VERSION = 1
STATUSES = ("completed", "failed", "running")
NAME = "results.json"


class SchemaError(ValueError):
    """A record that does not follow the schema: a bug in the code that built it."""


class UnreadableResults(ValueError):
    """A results.json that is half-written, of another version or not of this schema."""

    def __init__(self, reason: str, results: dict[str, Any] | None = None):
        super().__init__(reason)
        self.results = results or {}  # what could be parsed


def doc(text: str, default: Any = None, at_end: bool = False) -> Any:
    """A declared key: its description; `at_end`: always written once the run has ended."""
    return field(default=default, metadata={"doc": text, "at_end": at_end})


# ------------------------------------------------------------------------------- the schema
@dataclass
class Train:
    """Training, over all attempts at the run."""

    READ_EXTRA: ClassVar[Any] = float | None
    steps: int | None = doc("optimizer steps trained (the global step)")
    epochs: int | None = doc("passes over the training data begun, a last partial one included")
    final_loss: float | None = doc("training loss of the last step")
    best_val_loss: float | None = doc("lowest `val/loss` of the validations during training")
    time_s: float | None = doc("training time (the training loop without its validations), "
                               "summed over the attempts")
    peak_memory_gb: float | None = doc("peak CUDA memory of a step; null without CUDA")
    avg_memory_gb: float | None = doc("mean of the steps' average CUDA memory; null without CUDA")
    clips_per_s: float | None = doc("training clips per second of training time")
    flops_per_step: int | None = doc("FLOPs of one training micro-batch, forward and backward "
                                     "(torch.utils.flop_counter, the run's first)")
    mfu: float | None = doc("model FLOPs utilisation: flops_per_step per clip at clips_per_s, "
                            "over the GPU's peak FLOP/s at the run's precision; null off a GPU "
                            "or for a GPU without a known peak")
    peak_rss_gb: float | None = doc("peak resident memory of the process while training "
                                    "(Linux VmHWM); null elsewhere")
    skipped_steps: int | None = doc("steps skipped for a non-finite loss "
                                    "(`model.nonfinite_loss=skip`)")


@dataclass
class Model:
    READ_EXTRA: ClassVar[Any] = float | None
    num_parameters_millions: float | None = doc("parameters, the text encoder's included")
    trainable_parameters_millions: float | None = doc("parameters that receive gradients")
    denoiser_parameters_millions: float | None = doc("parameters of the denoiser (the UNet)")


@dataclass
class Data:
    READ_EXTRA: ClassVar[Any] = Any
    name: str | None = doc("the data option (`synthetic`, `gif_folder`, ...)")
    num_train: int | None = doc("training clips")
    num_val: int | None = doc("validation clips")
    num_skipped: int | None = doc("clips left out as unusable (`data_report.json` says why)")
    num_padded: int | None = doc("clips shorter than `data.num_frames`, padded")


@dataclass
class Retrieval:
    """The settings of the caption retrieval (eval.retrieval.*) as run."""

    READ_EXTRA: ClassVar[Any] = Any
    num_clips: int = doc("clips scored")
    num_candidates: int = doc("captions per clip, the true one included (K)")
    timesteps: list[int] = doc("diffusion timesteps the error is averaged over")
    seed: int = doc("seed of the noise, the wrong captions and the tie-breaks")
    bootstrap: int = doc("bootstrap resamples of the intervals")
    split: str = doc("the split the clips come from")
    time_s: float = doc("wall time of the retrieval")


def metric(text: str, at_end: bool = False) -> Any:
    """An eval metric: a number, or null with the reason under eval.unavailable."""
    return doc(text, at_end=at_end)


@dataclass
class Eval:
    """The evaluation of the reported weights after training (docs/evaluation.md)."""

    READ_EXTRA: ClassVar[Any] = float | dict[str, Any] | list[Any] | None
    REQUIRED: ClassVar[tuple[str, ...]] = ("weights",)  # the rest once there is something to say
    weights: Literal["ema", "raw"] = doc("the weights evaluated: EMA when `ema=true`")
    split: str = doc("the held-out split evaluated (`eval.split`)")
    num_videos: int = doc("clips generated")
    steps: int = doc("DDIM steps per clip")
    guidance_scale: float = doc("classifier-free guidance scale")
    seed: int = doc("seed of the clips' noise")
    val_loss: float | None = doc("validation loss of the reported weights at the end")
    temporal_consistency: float | None = metric("smoothness in time, in [0, 1]", at_end=True)
    temporal_consistency_real: float | None = metric("the same, of the real clips")
    motion: float | None = metric("mean absolute frame-to-frame change, in [0, 1]")
    motion_real: float | None = metric("the same, of the real clips")
    ssim: float | None = metric("SSIM against the real clip of the caption")
    psnr: float | None = metric("PSNR against the real clip of the caption")
    dtw_mje: float | None = metric("hand-position error against the caption's path (synthetic)")
    gloss_accuracy: float | None = metric("fraction of gloss slots signed right (synthetic)")
    hands_found: float | None = metric("fraction of frames showing both hands (synthetic)")
    fvd: float | None = metric("Fréchet video distance", at_end=True)
    lpips: float | None = metric("LPIPS against the real clip of the caption", at_end=True)
    inference_time_ms: float | None = metric("one clip at batch 1", at_end=True)
    inference_memory_gb: float | None = metric("peak CUDA memory of that clip", at_end=True)
    caption_retrieval_acc: float | None = metric("fraction of clips whose true caption has the "
                                                 "lowest denoising error")
    caption_retrieval_acc_ci_low: float | None = metric("its 95% bootstrap interval, low end")
    caption_retrieval_acc_ci_high: float | None = metric("its 95% bootstrap interval, high end")
    caption_retrieval_chance: float | None = metric("1/K, the accuracy of a model that ignores "
                                                    "the text")
    text_loss_gap: float | None = metric("mean relative error increase of the wrong captions")
    text_loss_gap_ci_low: float | None = metric("its 95% bootstrap interval, low end")
    text_loss_gap_ci_high: float | None = metric("its 95% bootstrap interval, high end")
    retrieval: Retrieval = doc("the caption retrieval's settings")
    eval_time_s: float = doc("wall time of the evaluation")
    unavailable: dict[str, str] = doc("why each null metric is null, and the key that enables "
                                      "it (`evaluation`: why none ran); in every ended run")
    more_metrics: list[str] = doc("keys of `eval` this schema does not declare, each a number "
                                  "or null: the metrics of a user's own loop "
                                  "(`AblationRunner.log_evaluation`)")


@dataclass
class Attempt:
    READ_EXTRA: ClassVar[Any] = Any
    attempt: int = doc("its number, from 1")
    status: Literal["running", "completed", "failed", "interrupted", "killed"] = doc(
        "`killed`: its process died without a word")
    started_at: str | None = doc("ISO 8601, UTC")
    finished_at: str | None = doc("ISO 8601, UTC; null while running or when killed")
    train_time_s: float | None = doc("its training time")
    wall_s: float | None = doc("its wall time from start to end; null while running or when "
                               "killed")
    resumed_from: str | None = doc("the checkpoint it resumed from, relative to the run")
    notes: list[str] = doc("checkpoints passed over, and why")
    error: str | None = doc("why it failed")


@dataclass
class Scheduler:
    """The cluster scheduler that ran the attempt (text2sign/rundir/scheduler.py)."""

    READ_EXTRA: ClassVar[Any] = Any
    name: str = doc("`slurm` or `ray`")
    job_id: str = doc("SLURM: the job id (ARRAYJOB_TASK in an array job); Ray: the task id")
    node: str | None = doc("SLURM: the node's name; Ray: the node id")
    restarts: int | None = doc("SLURM: times the job was requeued before this attempt "
                               "(SLURM_RESTART_COUNT); Ray: null")


@dataclass
class Provenance:
    READ_EXTRA: ClassVar[Any] = Any
    git_commit: str | None = doc("the commit of the code; null outside a git checkout")
    git_dirty: bool | None = doc("uncommitted changes to tracked files")
    torch: str = doc("torch version")
    python: str = doc("Python version")
    device: str = doc("the CUDA device's name, or `cpu`")
    hostname: str = doc("the machine")
    started_at: str = doc("when this attempt started (ISO 8601, UTC)")
    finished_at: str | None = doc("when it ended; null while running")
    command: str = doc("the command line the user ran (under SLURM or Ray as well)")
    scheduler: Scheduler | None = doc("the scheduler that ran this attempt: `name` (slurm, ray), "
                                      "`job_id`, `node`, `restarts` (SLURM requeues); null "
                                      "when none did")
    overrides: list[str] = doc("the command's overrides, as Hydra records them")
    wall_s: float | None = doc("the attempts' wall time summed; null unless each is known")
    attempt: int = doc("the number of the attempt that wrote this record")
    attempts: list[Attempt] = doc("every attempt at the run")


def artifact(path: str) -> Any:
    return doc(f"`{path}`, when it exists", default=path)


@dataclass
class Artifacts:
    """The run's files that exist when it ends, by name (each key's default is its path)."""

    READ_EXTRA: ClassVar[Any] = Any
    REQUIRED: ClassVar[tuple[str, ...]] = ()
    last_checkpoint: str = artifact("checkpoints/last.ckpt")
    best_checkpoint: str = artifact("checkpoints/best.ckpt")
    final_checkpoint: str = artifact("checkpoints/final.ckpt")
    training_metrics: str = artifact("training_metrics.csv")
    gpu_memory: str = artifact("gpu_memory.csv")
    metadata: str = artifact("metadata.json")
    data_report: str = artifact("data_report.json")
    tensorboard: str = artifact("tensorboard")


@dataclass
class Results:
    """results.json: the summary of one run over all its attempts."""

    READ_EXTRA: ClassVar[Any] = Any
    schema_version: Literal[1] = doc("the version of this schema")
    status: Literal["running", "completed", "failed"] = doc(
        "`running` from the start, `completed` or `failed` at the end")
    error: str | None = doc("why the run failed (the exception, one line)")
    interrupted: bool = doc("stopped from outside (Ctrl+C, SIGTERM, preemption): resumable")
    diverged: dict[str, str] = doc(
        "the figures that were not finite numbers (NaN or infinite: the run diverged), by key "
        "(`train.final_loss`), each recorded as null, with what it was (`nan`)")
    factors: dict[str, Any] | None = doc(
        "every group choice, `ema`, `seed` and every overridden key (null: not recorded)")
    train: Train = doc("")
    model: Model = doc("")
    data: Data = doc("")
    eval: Eval = doc("")
    provenance: Provenance = doc("")
    artifacts: Artifacts = doc("")


# Artifact name -> path relative to the run directory.
ARTIFACTS = {f.name: f.default for f in fields(Artifacts)}
# eval metrics present in every ended run (a number, or null with the reason)
AT_END = tuple(f.name for f in fields(Eval) if f.metadata["at_end"])
# results.json section -> its declaration
SECTIONS = {name: hint for name, hint in get_type_hints(Results).items() if is_dataclass(hint)}


def empty(section: type) -> dict[str, None]:
    """A section with every key null, in declared order."""
    return dict.fromkeys(f.name for f in fields(section))


def declared(section: type, key: str) -> None:
    """Raise SchemaError unless `key` is a key of `section`."""
    if key not in {f.name for f in fields(section)}:
        raise SchemaError(f"{key!r} is not a key of {NAME} section {section.__name__} "
                          "(schema_version 1): declare it in text2sign/rundir/schema.py")


@functools.cache  # one per process: analyze.py reads hundreds of records (do not modify it)
def json_schema(reading: bool = False) -> dict[str, Any]:
    """The JSON Schema of results.json: what this code writes, or (`reading`) what it reads."""
    return {"$schema": "https://json-schema.org/draft/2020-12/schema",
            "title": NAME, **schema_of(Results, reading)}


# ----------------------------------------------------------------------- write and read
def problems(results: dict[str, Any]) -> list[str]:
    """Everything that keeps `results` from being a record this code may write."""
    evaluation = results.get("eval")
    more = _more_metrics(evaluation) if isinstance(evaluation, dict) else {}
    if more:  # a user's own metrics: numbers or null, checked here; the rest by the schema
        results = {**results, "eval": {k: v for k, v in evaluation.items() if k not in more}}
    errors = validate(results, json_schema())
    errors += [e for key, value in more.items()
               for e in validate(value, {"type": ["number", "null"]}, f"eval.{key}")]
    errors += [f"{path} is {value}, not a finite number: strict JSON has no NaN or Infinity "
               "(record it as null, with what it was under diverged)"
               for path, value in nonfinite(results)]
    if errors or results["status"] == "running":
        return errors
    errors += [f"eval.{key} is missing (written when the run ends)"
               for key in (*AT_END, "unavailable") if key not in evaluation]
    reasons = evaluation.get("unavailable", {})
    return errors + [f"eval.{key} is null without its reason in eval.unavailable"
                     for key, value in evaluation.items() if value is None and key not in reasons]


def nonfinite(value: Any, path: str = "") -> list[tuple[str, float]]:
    """(key, value) of every NaN or infinite number in `value`, at any depth."""
    if isinstance(value, float):
        return [] if math.isfinite(value) else [(path, value)]
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(
        value, list) else ()
    return [found for key, item in items
            for found in nonfinite(item, f"{path}[{key}]" if isinstance(key, int) else
                                   f"{path}.{key}" if path else key)]


def _more_metrics(evaluation: dict[str, Any]) -> dict[str, Any]:
    """The metrics `eval.more_metrics` lists that the schema does not declare, by name."""
    listed = evaluation.get("more_metrics")
    declared = {f.name for f in fields(Eval)}
    if not isinstance(listed, list):
        return {}
    return {key: evaluation[key] for key in listed
            if isinstance(key, str) and key in evaluation and key not in declared}


def write_results(run_dir: str | Path, results: dict[str, Any]) -> None:
    """Write `results` as the run's results.json (atomically), or raise SchemaError."""
    errors = problems(results)
    if errors:
        raise SchemaError(f"{NAME} not written: " + "; ".join(errors))
    atomic_write_json(Path(run_dir) / NAME, results)


def read_error(results: dict[str, Any]) -> str | None:
    """Why `results` is not a readable schema_version 1 record, or None when it is."""
    version = results.get("schema_version")
    if version != SCHEMA_VERSION or isinstance(version, bool):
        return (f"schema_version {version!r} is not {SCHEMA_VERSION}, the version this "
                "code reads")
    if results.get("status") not in STATUSES:
        return f"status {results.get('status')!r} is not one of {', '.join(STATUSES)}"
    errors = validate(results, json_schema(reading=True))
    return errors[0] if errors else None


def read_results(path: str | Path) -> dict[str, Any]:
    """A results.json, read through the schema; UnreadableResults says why it cannot be.
    (FileNotFoundError when there is none.)"""
    try:
        results = json.loads(Path(path).read_text())
        if not isinstance(results, dict):
            raise ValueError("not a JSON object")
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise UnreadableResults(f"half-written {NAME} ({error})") from None
    error = read_error(results)
    if error:
        raise UnreadableResults(error, results)
    return results


# ------------------------------------------------------------------------- docs/outputs.md
def markdown() -> str:
    """docs/outputs.md's table of results.json: every key, its type and content."""
    rows = ["| key | type | content |", "| --- | --- | --- |"]
    rows += _rows(Results, "")
    return "\n".join(rows) + "\n"


def _rows(section: type, prefix: str) -> list[str]:
    hints, rows = get_type_hints(section), []
    for f in fields(section):
        hint, key = hints[f.name], prefix + f.name
        if is_dataclass(hint):
            rows += _rows(hint, f"{key}.")
            continue
        text = f.metadata["doc"]
        if get_origin(hint) is list and is_dataclass(get_args(hint)[0]):
            text += ": " + ", ".join(f"`{g.name}`" for g in fields(get_args(hint)[0]))
        if f.metadata["at_end"]:
            text += " (in every ended run)"
        kind = describe(schema_of(hint, reading=False)).replace("|", "\\|")
        rows.append(f"| `{key}` | {kind} | {text} |")
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args:
        print(json.dumps(json_schema(), indent=2, ensure_ascii=False))
        return 0
    if args == ["--markdown"]:
        print(markdown(), end="")
        return 0
    failed = 0
    for path in args:
        try:
            errors = problems(json.loads(Path(path).read_text()))
        except (OSError, ValueError) as error:
            errors = [f"cannot read it ({error})"]
        for error in errors:
            print(f"{path}: {error}")
        failed += bool(errors)
    print(f"{len(args) - failed} of {len(args)} {NAME} files follow the schema")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
