"""One training run: build everything from the composed config, fit, validate, record.

`run(cfg)` is what train.py calls for every job of a sweep. It writes results.json before
anything can fail and rewrites it when the run ends, with status "failed" and the reason if
it does not complete.
"""

from __future__ import annotations

import logging
import math
import signal
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig
from pytorch_lightning.utilities.exceptions import SIGTERMException

from text2sign.callbacks.gpu_memory import GPUMemoryMonitor
from text2sign.callbacks.progress import ProgressBar
from text2sign.callbacks.step_cost import StepCost
from text2sign.callbacks.training_log import TrainingLog
from text2sign.launch.ddp import is_rank_zero, launches_workers, worker_launch
from text2sign.launch.gpu_pool import share_cpu, use_own_gpu
from text2sign.module import TextToSignModule
from text2sign.perf import FastPath
from text2sign.run.attempts import INTERRUPTIONS, Plan, plan_attempt
from text2sign.run.checkpointing import StepCheckpoint, remove_partial_writes
from text2sign.run.evaluate import evaluation_config, evaluation_factors
from text2sign.run.preflight import check_config, user_error
from text2sign.rundir.factors import HydraRuntime
from text2sign.rundir.files import atomic_write_json
from text2sign.rundir.lock import RunDirectoryInUse, hold_run_directory
from text2sign.rundir.record import RunRecord, one_line, plain

log = logging.getLogger(__name__)

AFTER_TRAINING = ("samples", "evaluation")  # run by _fit_and_validate, not Lightning callbacks

KNOWN_WARNINGS = (
    # The frozen text encoder is in eval mode on purpose; the second is internal to Lightning.
    r".*module\(s\) in eval mode.*",
    r".*isinstance\(treespec, LeafSpec\).*",
    # The batch sampler resumes mid-epoch from the global step (data/sampler.py), not Lightning.
    r".*your dataloader is not resumable.*",
    # A SLURM login node: a run there is local on purpose; hydra/launcher=slurm's jobs run in srun.
    r".*The `srun` command is available on your system but is not used.*",
)


@contextmanager
def known_warnings_silenced() -> Iterator[None]:
    """Leave out the warnings above while a run trains (not on import: a library's users
    keep their own filters)."""
    with warnings.catch_warnings():
        for message in KNOWN_WARNINGS:
            warnings.filterwarnings("ignore", message=message)
        yield


def main(cfg: DictConfig, runtime: HydraRuntime) -> None:
    """A job Hydra runs (`runtime`: what Hydra decided for it, read by the entry point): in a
    multirun a failed job is recorded and the sweep goes on."""
    if runtime.multirun:
        use_own_gpu(cfg.trainer.devices)
        share_cpu(runtime.jobs_at_once)
    try:
        run(cfg, runtime)
    except RunDirectoryInUse as err:
        if not runtime.multirun:
            raise SystemExit(one_line(err)) from None
        log.error("%s; this job is skipped", err)
    except Exception as err:
        if runtime.multirun:
            log.exception("this job failed (see its results.json); the sweep goes on")
        elif user_error(err):  # one line, no traceback (the log said where it is recorded)
            raise SystemExit(one_line(err)) from None
        else:
            raise


def run(cfg: DictConfig, runtime: HydraRuntime = HydraRuntime()) -> dict[str, Any]:
    """Train and validate one configuration; returns the content of its results.json.

    A run directory that already holds an attempt is continued, not overwritten: a completed
    run is skipped, an interrupted one resumes from its newest intact checkpoint, and a failed
    one is skipped unless `retry_failed=true`. A directory another process holds is not touched.
    `runtime`: what Hydra decided for the job (its factors); none when started from Python.
    With train=false the run evaluates ckpt_path with the config stored in it
    (evaluate_checkpoint).
    """
    run_dir = Path(cfg.paths.output_dir)
    if not cfg.train:
        cfg = evaluation_config(cfg, runtime)
    with hold_run_directory(run_dir) if is_rank_zero() else nullcontext():
        plan = plan_attempt(run_dir, cfg.retry_failed, plain(cfg))
        log.info("run directory: %s (%s)", run_dir, plan.reason)
        for note in plan.notes:
            log.warning("%s: not used", note)
        if plan.action == "skip":
            return plan.previous
        if is_rank_zero():  # other ranks must not delete a file rank 0 is writing
            remove_partial_writes(run_dir)
        if plan.action == "resume" and cfg.train:
            cfg.ckpt_path = str(plan.ckpt_path)
        return attempt(cfg, plan, runtime)


def attempt(cfg: DictConfig, plan: Plan | None = None,
            runtime: HydraRuntime = HydraRuntime()) -> dict[str, Any]:
    """One attempt at a run (DDP workers run this too, writing nothing)."""
    plan = plan or Plan("start", "a DDP worker")
    run_dir = Path(cfg.paths.output_dir)
    resumed_from = plan.ckpt_path and str(plan.ckpt_path.relative_to(run_dir))
    record = RunRecord(run_dir, cfg, plan.attempt, is_rank_zero(), plan.earlier,
                       resumed_from if cfg.train else None, plan.notes, runtime,
                       None if cfg.train else evaluation_factors(cfg, runtime))
    callbacks: dict[str, pl.Callback] = {}
    try:
        with known_warnings_silenced():
            _train(cfg, run_dir, record, callbacks)
    except BaseException as err:
        try:
            _record_training(record, callbacks)
            record.finish("failed", one_line(err), interrupted=isinstance(err, INTERRUPTIONS))
        except OSError as unwritten:  # e.g. the full disk that failed the run
            log.error("results.json could not record the failure: %s", unwritten)
        else:
            _log_end(record)
        if isinstance(err, SIGTERMException):  # a SystemExit without a code would exit 0
            raise SystemExit(128 + signal.SIGTERM) from err
        raise
    record.finish("completed")
    _log_end(record)
    return record.results


def _log_end(record: RunRecord) -> None:
    """The end of the attempt in the log (train.log): status, the error, where the record is."""
    if not record.write:
        return  # a DDP worker: rank 0 says it
    results, path = record.results, record.run_dir / "results.json"
    if results["status"] == "completed":
        log.info("run completed: %s", path)
    elif results["interrupted"]:
        log.error("run interrupted (%s); run the same command again to resume it: %s",
                  results["error"], path)
    else:
        log.error("run failed: %s; status \"failed\" recorded in %s", results["error"], path)


def build_module(cfg: DictConfig, text_encoder: torch.nn.Module | None = None) -> TextToSignModule:
    """The LightningModule of a composed config (also used to rebuild one from a checkpoint;
    one written before the fast path existed has no `perf`: the plain path). `text_encoder`:
    one already built (the pre-flight's stand-in of its width)."""
    make = instantiate(cfg.model, _partial_=True)  # a partial: FastPath stays a FastPath
    module = make(
        text_encoder=text_encoder or instantiate(cfg.text_encoder),
        optimizer=instantiate(cfg.optimizer),
        lr_scheduler=instantiate(cfg.lr_scheduler),
        fast_path=FastPath(**cfg.perf) if "perf" in cfg else None,
        precision=str(cfg.trainer.precision),
    )
    module.run_config = plain(cfg)
    return module


def _train(cfg: DictConfig, run_dir: Path, record: RunRecord, callbacks: dict) -> None:
    check_config(cfg)  # also: train=false needs ckpt_path
    # the callbacks check their settings: a bad value fails before the data is decoded;
    # eval first, as callbacks.samples copies its settings (eval.steps=0 names eval.steps)
    callbacks["evaluation"] = instantiate(cfg.eval)
    callbacks.update({name: instantiate(c) for name, c in cfg.callbacks.items()})
    pl.seed_everything(cfg.seed, workers=True)
    datamodule = instantiate(cfg.data)
    data_report = datamodule.report()
    split_ids = data_report.pop("split_ids", None)  # file-based data: the clip ids per split
    if is_rank_zero():
        if split_ids is not None:
            atomic_write_json(run_dir / "split.json", split_ids)
        atomic_write_json(run_dir / "data_report.json", data_report)
        log.info("data report (every skipped and padded file): %s", run_dir / "data_report.json")
    record.update("data", {
        "name": data_report["name"],
        "num_train": data_report["splits"]["train"]["clips"],
        "num_val": data_report["splits"]["val"]["clips"],
        "num_skipped": len(data_report["skipped"]),
        "num_padded": len(data_report.get("padded", [])),
    })
    module = build_module(cfg)
    record.update("model", module.parameter_counts())
    record.describe("parameter_groups", module.parameter_group_sizes(cfg.optimizer.get("lr")))

    callbacks["evaluation"].check(module)
    for callback in callbacks.values():
        if isinstance(callback, TrainingLog):
            callback.time_before = record.earlier_train_time_s
    loggers = [instantiate(c) for c in cfg.logger.values()]
    trainer = instantiate(cfg.trainer, logger=loggers,
                          callbacks=_lightning_callbacks(callbacks, cfg.trainer.enable_progress_bar))
    launch = worker_launch(cfg, run_dir) if launches_workers(trainer) else nullcontext()
    with launch:
        _fit_and_validate(cfg, trainer, module, datamodule, record, callbacks)


def _lightning_callbacks(callbacks: dict[str, pl.Callback], progress_bar: bool) -> list[pl.Callback]:
    """The callbacks Lightning calls: all but samples and evaluation, which run after training
    (after final.ckpt is saved), and the progress bar unless trainer.enable_progress_bar (which
    Lightning refuses beside one). A StepCheckpoint saves after the step's validation, so it
    must come after best_checkpoint has scored it (Lightning keeps checkpoint callbacks in order)."""
    hooks = [c for name, c in callbacks.items() if name not in AFTER_TRAINING
             and (progress_bar or not isinstance(c, ProgressBar))]
    return sorted(hooks, key=lambda c: isinstance(c, StepCheckpoint))


def _fit_and_validate(cfg: DictConfig, trainer: pl.Trainer, module: TextToSignModule,
                      datamodule: pl.LightningDataModule, record: RunRecord,
                      callbacks: dict) -> None:
    """Train (resumed, or skipped when an earlier attempt finished it), save final.ckpt, then
    validate, write samples and evaluate the reported weights: what an interrupted attempt
    did after training is redone, with the same results."""
    run_dir = Path(cfg.paths.output_dir)
    if cfg.train:
        trainer.fit(module, datamodule=datamodule, ckpt_path=cfg.ckpt_path, weights_only=True)
        trainer.save_checkpoint(run_dir / "checkpoints" / "final.ckpt", weights_only=False)
        _record_training(record, callbacks, trainer)
    # without training: restores the weights and the EMA state of ckpt_path
    (metrics,) = trainer.validate(module, datamodule=datamodule, verbose=False, weights_only=True,
                                  ckpt_path=None if cfg.train else cfg.ckpt_path)
    if trainer.is_global_zero:
        module.to_placement()  # Lightning's teardown has moved it to the CPU
        weights = record.results["eval"]["weights"]  # decided once, when the record began
        callbacks["samples"].write(trainer, module, weights)
        callbacks["evaluation"].evaluate(trainer, module, weights)
    record.update("eval", {"val_loss": metrics["val/loss"], **callbacks["evaluation"].results})


def _record_training(record: RunRecord, callbacks: dict, trainer: pl.Trainer | None = None) -> None:
    """Copy what the callbacks measured into results.json (also for a run that failed)."""
    for callback in callbacks.values():
        if isinstance(callback, (TrainingLog, GPUMemoryMonitor, StepCost)):
            record.update("train", callback.summary())
        if isinstance(callback, TrainingLog):
            record.update_attempt(train_time_s=round(callback.attempt_time_s(), 3))
    cost = next((c for c in callbacks.values() if isinstance(c, StepCost)), None)
    if cost is not None:
        record.update("train", {"mfu": cost.mfu(record.results["train"].get("clips_per_s"))})
    best = callbacks.get("best_checkpoint")
    if best is not None and best.best_model_score is not None:
        record.update("train", {"best_val_loss": float(best.best_model_score)})
    if trainer is not None:
        record.update("train", {"epochs": _epochs(trainer),
                                "skipped_steps": trainer.lightning_module.skipped_steps})


def _epochs(trainer: pl.Trainer) -> int:
    """Passes over the training data begun, a last partial one included (as Lightning counts a
    run stopped by max_steps), from the global step: the same whether the last steps ran in
    this attempt or an earlier one, whose checkpoint may predate Lightning's end-of-fit count."""
    batches = trainer.num_training_batches
    if not batches or math.isinf(batches):
        return trainer.current_epoch
    steps_per_epoch = math.ceil(batches / trainer.accumulate_grad_batches)
    return math.ceil(trainer.global_step / steps_per_epoch)
