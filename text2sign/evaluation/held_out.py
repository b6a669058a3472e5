"""Evaluation of the weights a run reports, on held-out clips, after training.

Generates one clip per held-out caption (fixed seeds, DDIM steps and guidance from the
config), compares them with the real clips, measures the cost of sampling, and writes
evaluation_metrics.json/.csv and TensorBoard scalars. A metric that cannot be computed is
None, with its reason under `unavailable`.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import time
from functools import partial
from pathlib import Path
from typing import Any, TypedDict

import pytorch_lightning as pl
import torch

from text2sign.callbacks.ema import reported_weights
from text2sign.callbacks.gpu_memory import GB
from text2sign.evaluation.samples import check_sampling
from text2sign.metrics import retrieval
from text2sign.metrics.errors import MetricUnavailable
from text2sign.metrics.suite import video_metrics
from text2sign.metrics.video_features import FVDBackbone
from text2sign.rundir.files import atomic_write_json, atomic_write_text
from text2sign.timing import median_ms


class FVDSettings(TypedDict):
    """eval.fvd: the arguments of video_features.load_video_feature_extractor."""

    backbone: FVDBackbone
    detector_path: str | None
    detector_sha256: str | None
    videomae_name: str
    local_files_only: bool
    batch_size: int


class LPIPSSettings(TypedDict):
    """eval.lpips: the weight files of perceptual.load_lpips (None: the cache, or a download)."""

    backbone_path: str | None
    linear_path: str | None


class RetrievalSettings(TypedDict):
    """eval.retrieval: on or off, the number of clips, and retrieval.caption_retrieval's
    arguments."""

    enabled: bool
    num_clips: int
    num_candidates: int
    timesteps: list[int]
    seed: int
    batch_size: int
    bootstrap: int


log = logging.getLogger(__name__)


class Evaluation:
    """Args mirror conf/eval/default.yaml; `fvd` and `lpips` hold the loaders' settings,
    `retrieval` the caption retrieval's (`retrieval.caption_retrieval`)."""

    def __init__(
        self,
        enabled: bool = True,
        split: str = "test",
        num_videos: int = 8,
        batch_size: int = 8,
        steps: int = 20,
        guidance_scale: float = 3.0,
        seed: int = 0,
        timing_repeats: int = 3,
        cache_dir: str | None = None,
        download: bool = False,
        fvd: FVDSettings | None = None,
        lpips: LPIPSSettings | None = None,
        retrieval: RetrievalSettings | None = None,
    ):
        if num_videos < 1 or batch_size < 1 or timing_repeats < 1:
            raise ValueError("eval.num_videos, eval.batch_size and eval.timing_repeats must be >= 1")
        check_sampling(steps, guidance_scale, None, "eval.")
        self.retrieval = dict(retrieval or {"enabled": False})
        if self.retrieval["enabled"]:
            _check_retrieval(self.retrieval)
        self.enabled, self.split = enabled, split
        self.num_videos, self.batch_size = num_videos, batch_size
        self.steps, self.guidance_scale, self.seed = steps, guidance_scale, seed
        self.timing_repeats = timing_repeats
        self.cache_dir, self.download = cache_dir, download
        self.fvd_settings, self.lpips_settings = dict(fvd or {}), dict(lpips or {})
        self.results: dict[str, Any] = {}

    def check(self, pl_module: pl.LightningModule) -> None:
        """Settings that need the model, checked before training starts."""
        steps = pl_module.diffusion.num_train_timesteps
        if self.retrieval["enabled"] and not all(0 <= t < steps for t in self.retrieval["timesteps"]):
            raise ValueError(f"eval.retrieval.timesteps={self.retrieval['timesteps']} must lie in "
                             f"[0, {steps}) (model.diffusion.num_train_timesteps)")

    def settings(self) -> dict[str, Any]:
        return {"split": self.split, "num_videos": self.num_videos, "steps": self.steps,
                "guidance_scale": self.guidance_scale, "seed": self.seed}

    def evaluate(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
                 weights: str) -> dict[str, Any]:
        """Evaluate `weights` ("ema" or "raw": the run record's eval.weights)."""
        self.results = self.settings()
        if not self.enabled:
            self.results["unavailable"] = {"evaluation": "disabled by eval.enabled=false"}
            return self.results
        clips = self._held_out_clips(trainer, self.num_videos, "eval.num_videos")
        self.results["num_videos"] = len(clips["caption"])  # the number used
        started = time.perf_counter()
        with reported_weights(trainer, pl_module, weights):
            fake = self._generate(pl_module, clips["caption"])
            cost, cost_unavailable = self._inference_cost(pl_module, clips["caption"][0])
            text, text_unavailable = self._caption_retrieval(trainer, pl_module)
        metrics, unavailable = video_metrics(
            real=clips["video"], fake=fake, clips=clips, dataset_id=self._dataset_id(trainer),
            fvd_settings=self.fvd_settings, lpips_settings=self.lpips_settings,
            cache_dir=self.cache_dir, download=self.download,
        )
        self.results.update(metrics)
        self.results.update(cost)
        self.results.update(text)
        self.results["eval_time_s"] = round(time.perf_counter() - started, 3)
        self.results["unavailable"] = {**unavailable, **cost_unavailable, **text_unavailable}
        self._write(trainer)
        return self.results

    def _held_out_clips(self, trainer: pl.Trainer, n: int, setting: str) -> dict[str, Any]:
        """The first `n` clips of the split (`setting` names n), or all when it has fewer."""
        dataset = trainer.datamodule.datasets[self.split]
        if n > len(dataset):
            log.warning("%s=%d, but the %s split has %d clips: using %d (recorded in "
                        "results.json); set %s=%d or lower to silence this", setting, n,
                        self.split, len(dataset), len(dataset), setting, len(dataset))
            n = len(dataset)
        items = [dataset[i] for i in range(n)]
        clips = {"caption": [item["caption"] for item in items]}
        for key in items[0]:
            if torch.is_tensor(items[0][key]):
                clips[key] = torch.stack([item[key] for item in items])
        return clips

    def _caption_retrieval(self, trainer: pl.Trainer, pl_module) -> tuple[dict, dict]:
        """Caption retrieval accuracy and text loss gap on the split's first clips."""
        if not self.retrieval["enabled"]:
            reason = "disabled by eval.retrieval.enabled=false"
            return dict.fromkeys(retrieval.NAMES), dict.fromkeys(retrieval.NAMES, reason)
        settings = {k: v for k, v in self.retrieval.items() if k != "enabled"}
        clips = self._held_out_clips(trainer, settings.pop("num_clips"),
                                     "eval.retrieval.num_clips")
        started = time.perf_counter()
        try:
            metrics = retrieval.caption_retrieval(
                pl_module.caption_errors, clips["video"], clips["caption"],
                trainer.datamodule.datasets[self.split].captions, **settings)
        except MetricUnavailable as reason:
            return dict.fromkeys(retrieval.NAMES), dict.fromkeys(retrieval.NAMES, str(reason))
        metrics["retrieval"].update(split=self.split,
                                    time_s=round(time.perf_counter() - started, 3))
        return metrics, {}

    def _generate(self, pl_module: pl.LightningModule, captions: list[str]) -> torch.Tensor:
        """Batched generation; each clip's noise comes from (seed, caption), not its batch."""
        batches = [captions[i : i + self.batch_size]
                   for i in range(0, len(captions), self.batch_size)]
        videos = [pl_module.sample(batch, self.steps, self.guidance_scale, self.seed)
                  for batch in batches]
        return torch.cat(videos).cpu()

    def _inference_cost(self, pl_module, prompt: str) -> tuple[dict, dict]:
        """Time per clip at batch 1 (median after a warm-up run) and peak memory (CUDA only)."""
        cuda = pl_module.device.type == "cuda"
        if cuda:
            torch.cuda.reset_peak_memory_stats(pl_module.device)
        one_clip = partial(pl_module.sample, [prompt], self.steps, self.guidance_scale, self.seed)
        cost = {"inference_time_ms": round(median_ms(one_clip, self.timing_repeats, pl_module.device), 2),
                "inference_memory_gb": None}
        unavailable = {}
        if cuda:
            cost["inference_memory_gb"] = torch.cuda.max_memory_allocated(pl_module.device) / GB
        else:
            unavailable["inference_memory_gb"] = "no CUDA device: GPU memory is only measured on a GPU"
        return cost, unavailable

    def _dataset_id(self, trainer: pl.Trainer) -> str:
        """Names the real clips, for the cache of their FVD statistics."""
        dataset = trainer.datamodule.datasets[self.split]
        # file-based datasets hash their files and decode settings; the synthetic one its seed
        identity = getattr(dataset, "fingerprint", None) or f"seed{getattr(dataset, 'seed', 'na')}"
        return f"{type(dataset).__name__}-{self.split}-{identity}"

    def _write(self, trainer: pl.Trainer) -> None:
        """Append this evaluation to evaluation_metrics.json/.csv and log it to TensorBoard."""
        run_dir = Path(trainer.default_root_dir)
        path = run_dir / "evaluation_metrics.json"
        history = json.loads(path.read_text()) if path.exists() else []
        history = [h for h in history if h["step"] != trainer.global_step]  # redone on resume
        history.append({"step": trainer.global_step, **self.results})
        atomic_write_json(path, history)
        scalar_rows = [{k: v for k, v in row.items() if not isinstance(v, dict)} for row in history]
        columns = list(dict.fromkeys(k for row in scalar_rows for k in row))
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, columns)
        writer.writeheader()
        writer.writerows(scalar_rows)
        atomic_write_text(run_dir / "evaluation_metrics.csv", buffer.getvalue())
        numbers = {f"eval/{k}": float(v) for k, v in self.results.items()
                   if isinstance(v, (int, float)) and not isinstance(v, bool)}
        for logger in trainer.loggers:
            logger.log_metrics(numbers, step=trainer.global_step)


def _check_retrieval(settings: dict) -> None:
    for key in ("num_clips", "batch_size", "bootstrap"):
        if settings[key] < 1:
            raise ValueError(f"eval.retrieval.{key}={settings[key]} must be >= 1")
    if settings["num_candidates"] < 2:
        raise ValueError(f"eval.retrieval.num_candidates={settings['num_candidates']} must be >= 2 "
                         "(the true caption and at least one other)")
    if not settings["timesteps"]:
        raise ValueError("eval.retrieval.timesteps must name at least one timestep")
