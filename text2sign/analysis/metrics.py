"""The metrics compared across groups: where each lives in results.json and which way is better."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

# eval keys that describe how the evaluation ran, not how well the model did
EVAL_SETTINGS = {"weights", "unavailable", "split", "num_videos", "steps", "guidance_scale",
                 "seed", "caption_retrieval_chance", "retrieval"}
# eval keys that are not compared: the bounds of another metric's confidence interval, and
# figures of the real clips (they describe the data, not the model)
NOT_COMPARED_SUFFIXES = ("_ci_low", "_ci_high", "_real")
# whole words of a metric's name ("gloss_accuracy" has no word "loss"); higher is checked first
HIGHER_IS_BETTER = ("consistency", "accuracy", "acc", "ssim", "psnr", "f1", "clips_per_s",
                    "hands_found", "clip_score", "loss_gap")
LOWER_IS_BETTER = ("fvd", "lpips", "loss", "time", "memory", "dtw", "error", "parameters",
                   "ms", "gb", "gflop")
QUALITY = ("fvd", "val_loss", "best_val_loss")  # the primary quality metric, first available
NO_GPU = "no GPU memory recorded (memory is only measured on a CUDA device)"
# what a run costs, not how well it does: not drawn against numeric factors
COSTS = ("train_time_h", "peak_memory_gb", "avg_memory_gb", "clips_per_s", "peak_rss_gb",
         "gflop_per_step", "num_parameters_millions", "trainable_parameters_millions",
         "denoiser_parameters_millions", "inference_time_ms", "inference_memory_gb",
         "eval_time_s")
# the memory a run took: GPU memory where a GPU measured it, else the process's (a CPU run's)
MEMORY = ("peak_memory_gb", "peak_rss_gb")
# the costs a headline table shows, each the first of its names that some run measured;
# trainable parameters: what an arm trains (a frozen text encoder counts in every arm's total)
HEADLINE_COSTS = (("train_time_h",), MEMORY,
                  ("trainable_parameters_millions", "num_parameters_millions"))


@dataclass(frozen=True)
class Metric:
    name: str
    section: str  # results.json section
    key: str
    scale: float = 1.0
    why_null: str = "null in every completed run"

    def value(self, results: dict[str, Any]) -> float | None:
        """A finite number, or None (missing, null, not a number, NaN or infinite)."""
        value = (results.get(self.section) or {}).get(self.key)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        return float(value) * self.scale if math.isfinite(value) else None

    @property
    def direction(self) -> int:
        """+1 when higher is better, -1 when lower is better, 0 when unknown."""
        name = f"_{self.name}_"
        if any(f"_{words}_" in name for words in HIGHER_IS_BETTER):
            return 1
        return -1 if any(f"_{words}_" in name for words in LOWER_IS_BETTER) else 0

    @property
    def is_cost(self) -> bool:
        return self.name in COSTS

    def reason_unavailable(self, runs_results: list[dict[str, Any]]) -> str:
        """Why no run has a number: the run's own eval.unavailable entry when it gives one."""
        if self.section == "eval":
            for results in runs_results:
                unavailable = (results.get("eval") or {}).get("unavailable") or {}
                reason = unavailable.get(self.key) or unavailable.get("evaluation")
                if reason:
                    return str(reason)
        return self.why_null


CORE = (
    Metric("final_loss", "train", "final_loss"),
    Metric("best_val_loss", "train", "best_val_loss"),
    Metric("train_time_h", "train", "time_s", scale=1 / 3600),
    Metric("peak_memory_gb", "train", "peak_memory_gb", why_null=NO_GPU),
    Metric("avg_memory_gb", "train", "avg_memory_gb", why_null=NO_GPU),
    Metric("clips_per_s", "train", "clips_per_s"),
    Metric("peak_rss_gb", "train", "peak_rss_gb",
           why_null="the process's peak memory is read on Linux only (VmHWM)"),
    Metric("gflop_per_step", "train", "flops_per_step", scale=1e-9),
    Metric("num_parameters_millions", "model", "num_parameters_millions"),
    Metric("trainable_parameters_millions", "model", "trainable_parameters_millions"),
    Metric("denoiser_parameters_millions", "model", "denoiser_parameters_millions"),
    Metric("val_loss", "eval", "val_loss"),
    Metric("fvd", "eval", "fvd"),
    Metric("lpips", "eval", "lpips"),
    Metric("temporal_consistency", "eval", "temporal_consistency"),
    Metric("inference_time_ms", "eval", "inference_time_ms"),
    Metric("inference_memory_gb", "eval", "inference_memory_gb", why_null=NO_GPU),
)


def discover(runs_results: list[dict[str, Any]]) -> list[Metric]:
    """CORE, then every other eval key that is a number somewhere or listed as unavailable."""
    known = {metric.name for metric in CORE}
    extra: dict[str, None] = {}  # ordered set: first appearance wins
    for results in runs_results:
        section = results.get("eval") or {}
        names = [key for key, value in section.items()
                 if isinstance(value, (int, float)) and not isinstance(value, bool)]
        names += [key for key in section.get("unavailable") or {} if key != "evaluation"]
        extra.update((key, None) for key in names if is_compared(key) and key not in known)
    return [*CORE, *(Metric(name, "eval", name) for name in extra)]


def is_compared(eval_key: str) -> bool:
    return eval_key not in EVAL_SETTINGS and not eval_key.endswith(NOT_COMPARED_SUFFIXES)


def default_quality(metrics: list[Metric], has_numbers: set[str]) -> Metric | None:
    """fvd if any run has it, else eval.val_loss, else best_val_loss; never another metric."""
    by_name = {metric.name: metric for metric in metrics if metric.name in has_numbers}
    return next((by_name[name] for name in QUALITY if name in by_name), None)
