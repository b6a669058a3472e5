"""Outputs trees with known numbers for the analysis tests and the 200-run benchmark."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from PIL import Image

COMMON = {"scale": "small", "data": "synthetic", "model": "unet3d"}
GROUPS = [("frozen", True), ("frozen", False), ("finetuned", True), ("finetuned", False)]
SEEDS = (0, 1, 2)
# fvd per group (as in GROUPS) and seed: the numbers the statistics are checked against
FVD = {("frozen", True): [100.0, 110.0, 105.0], ("frozen", False): [120.0, 126.0, 119.0],
       ("finetuned", True): [90.0, 97.0, 92.0], ("finetuned", False): [130.0, 150.0, 141.0]}
TIME_S = {("frozen", True): 3600.0, ("frozen", False): 3500.0,
          ("finetuned", True): 5400.0, ("finetuned", False): 5300.0}
PROMPTS = ("hello", "thank you")
UNAVAILABLE = {"inference_memory_gb": "no CUDA device: GPU memory is only measured on a GPU",
               "gloss_accuracy": "needs a gloss recogniser: set eval.gloss_model"}


def results(factors: dict[str, Any] | None, fvd: float, time_s: float, seed: int,
            status: str = "completed", error: str | None = None,
            memory_gb: float | None = None) -> dict[str, Any]:
    """A results.json (schema_version 1) whose other metrics derive from fvd and the seed."""
    return {
        "schema_version": 1, "status": status, "error": error,
        "factors": factors,
        "train": {"steps": 20, "epochs": 1, "final_loss": fvd / 1000, "best_val_loss": fvd / 500,
                  "time_s": time_s + seed, "peak_memory_gb": memory_gb, "avg_memory_gb": None,
                  "clips_per_s": 100000 / time_s},
        "model": {"num_parameters_millions": 23.66, "trainable_parameters_millions": 0.95},
        "data": {"name": "synthetic", "num_train": 64, "num_val": 8, "num_skipped": 0},
        "eval": {"weights": "ema", "num_videos": 8, "steps": 20, "val_loss": fvd / 400,
                 "fvd": fvd, "lpips": fvd / 1000 + 0.1, "temporal_consistency": 1 - fvd / 1000,
                 "ssim": 0.5 + seed / 100, "inference_time_ms": 50.0 + seed,
                 "inference_memory_gb": None, "gloss_accuracy": None,
                 "unavailable": dict(UNAVAILABLE)},
        "provenance": {}, "artifacts": {"training_metrics": "training_metrics.csv"},
    }


def config(text_encoder: str, ema: bool, seed: int, run_dir: Path, **changes: Any) -> dict:
    """A resolved config as metadata.json holds it (a few keys of the real one): interpolated
    copies of seed and ema, paths inside the run directory; `changes` by dotted key."""
    finetuned = text_encoder == "finetuned"
    resolved = {
        "seed": seed, "ema": ema, "ckpt_path": None, "retry_failed": False, "tags": [],
        "paths": {"output_dir": str(run_dir)},
        "data": {"image_size": 16, "num_frames": 8, "seed": 0, "shuffle_seed": seed},
        "text_encoder": {"name": "all-MiniLM-L6-v2", "trainable": finetuned,
                         "lr": 1e-5 if finetuned else None},
        "model": {"image_size": 16, "seed": seed, "denoiser": {"channel_mults": [1, 2]}},
        "optimizer": {"lr": 1e-3},
        "trainer": {"default_root_dir": str(run_dir), "max_steps": 20},
        "callbacks": {"ema": {"enabled": ema},
                      "last_checkpoint": {"dirpath": f"{run_dir}/checkpoints"}},
        "eval": {"cache_dir": "/home/me/.cache/text2sign", "seed": 0},
    }
    for dotted, value in changes.items():
        *parents, last = dotted.split(".")
        node = resolved
        for part in parents:
            node = node[part]
        node[last] = value
    return resolved


def write_run(run_dir: Path, data: dict[str, Any] | str, final_loss: float = 0.1,
              prompts: tuple[str, ...] = (), resolved: dict[str, Any] | None = None) -> Path:
    """A run directory: results.json (a dict, or raw text for a half-written file),
    metadata.json when `resolved` (the config) is given, a loss curve falling to
    `final_loss`, and sample GIFs for `prompts`."""
    run_dir.mkdir(parents=True)
    text = data if isinstance(data, str) else json.dumps(data)
    (run_dir / "results.json").write_text(text)
    if resolved is not None:
        (run_dir / "metadata.json").write_text(json.dumps({"config": resolved}))
    with open(run_dir / "training_metrics.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["epoch", "step", "loss", "lr", "lr_text_encoder", "elapsed_s",
                         "peak_memory_gb", "avg_memory_gb", "timestamp"])
        for step in range(1, 21):
            writer.writerow([0, step, 1 + (final_loss - 1) * step / 20, 1e-3, "", step * 0.1,
                             "", "", 1.7e9 + step])
    if prompts:
        write_samples(run_dir / "samples", prompts)
    return run_dir


def write_samples(folder: Path, prompts: tuple[str, ...], frames: int = 4) -> None:
    folder.mkdir()
    entries = []
    for text in prompts:
        name = text.replace(" ", "_")
        clip = [Image.fromarray(np.full((16, 16, 3), 40 * k, np.uint8)) for k in range(frames)]
        clip[0].save(folder / f"{name}.gif", save_all=True, append_images=clip[1:])
        entries.append({"text": text, "gif": f"{name}.gif", "mp4": f"{name}.mp4"})
    index = {"prompts": entries, "grid": "grid.png", "seed": 0, "steps": 50,
             "guidance_scale": 3.0}
    (folder / "index.json").write_text(json.dumps(index))


def write_hydra(run_dir: Path, choices: dict[str, Any], overrides: list[str]) -> None:
    """Hydra's .hydra/hydra.yaml (runtime choices) and overrides.yaml, as a sweep writes them."""
    (run_dir / ".hydra").mkdir()
    hydra = {"hydra": {"runtime": {"choices": {**choices, "hydra/launcher": "basic",
                                               "experiment": None}}}}
    (run_dir / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump(hydra))
    (run_dir / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(overrides))


def factors(text_encoder: str, ema: bool, seed: int) -> dict[str, Any]:
    return {**COMMON, "text_encoder": text_encoder, "ema": ema, "seed": seed}


def sweep_tree(root: Path, seeds: tuple[int, ...] = SEEDS) -> Path:
    """The 2x2 grid over `seeds` in a multirun layout, plus one failed, one half-written and
    one running run; the seed-2 run of (finetuned, false) has its factors only in .hydra/."""
    sweep = root / "multirun" / "2026-01-01_00-00-00_abcd"
    for (encoder, ema), fvds in FVD.items():
        for seed in seeds:
            run_dir = sweep / f"ema={ema},seed={seed},text_encoder={encoder}"
            hydra_only = (encoder, ema, seed) == ("finetuned", False, 2)
            data = results(None if hydra_only else factors(encoder, ema, seed), fvds[seed],
                           TIME_S[encoder, ema], seed)
            write_run(run_dir, data, prompts=PROMPTS if seed == seeds[0] else (),
                      resolved=config(encoder, ema, seed, run_dir))
            if hydra_only:
                write_hydra(run_dir, {**COMMON, "text_encoder": encoder},
                            [f"text_encoder={encoder}", f"ema={ema}", f"seed={seed}"])
    failed = results(factors("frozen", True, 7), 1.0, 1.0, 7, "failed",
                     "RuntimeError: CUDA out of memory")
    write_run(sweep / "failed_run", failed)
    write_run(sweep / "half_written", json.dumps(failed)[:80])
    write_run(root / "runs" / "still_running",
              results(factors("frozen", True, 8), 9999.0, 1.0, 8, "running"))
    return root


def numeric_tree(root: Path, key: str, values: list[float], seeds: tuple[int, ...] = (0, 1)) -> Path:
    """A sweep of one numeric factor (`key`, dotted) in the order given, frozen encoder with EMA:
    fvd = 100 + 10 x the value's rank in sorted order + the seed."""
    sweep = root / "multirun" / "numeric"
    for value in values:
        rank = sorted(values).index(value)
        for seed in seeds:
            run_dir = sweep / f"{key}={value},seed={seed}"
            data = results({**factors("frozen", True, seed), key: value}, 100.0 + 10 * rank + seed,
                           3600.0, seed)
            write_run(run_dir, data, resolved=config("frozen", True, seed, run_dir, **{key: value}))
    return root


def default_sweep_tree(root: Path) -> Path:
    """The 2x2 grid over SEEDS as the default sweep records it on a GPU: every metric of
    training and of the evaluation (tests/golden_tiny_run.json), each derived from fvd and the
    seed. Seed 1 of (frozen, false) diverged; a seed 3 of (finetuned, true) ran out of memory."""
    sweep = root / "multirun" / "default"
    for (encoder, ema), fvds in FVD.items():
        for seed, fvd in enumerate(fvds):
            run_dir = sweep / f"ema={ema},seed={seed},text_encoder={encoder}"
            data = results(factors(encoder, ema, seed), fvd, TIME_S[encoder, ema], seed,
                           memory_gb=20.0 + ema + seed / 10)
            data["train"].update(peak_rss_gb=9.0 + seed / 10, flops_per_step=10 ** 12 + int(fvd))
            data["model"]["denoiser_parameters_millions"] = 0.95
            data["eval"].update(
                motion=0.27 + seed / 100, psnr=30 - fvd / 10, dtw_mje=fvd / 50,
                gloss_accuracy=1 - fvd / 300, hands_found=1 - fvd / 1000,
                caption_retrieval_acc=1 - fvd / 500, caption_retrieval_acc_ci_low=0.5,
                caption_retrieval_acc_ci_high=0.9, caption_retrieval_chance=0.25,
                text_loss_gap=0.2 - fvd / 1000, inference_memory_gb=2.0 + seed / 10,
                eval_time_s=60.0 + seed, unavailable={})
            if (encoder, ema, seed) == ("frozen", False, 1):
                data.update(status="failed",
                            error="NonFiniteLossError: training loss is nan at step 12")
            write_run(run_dir, data, resolved=config(encoder, ema, seed, run_dir))
    run_dir = sweep / "ema=True,seed=3,text_encoder=finetuned"
    write_run(run_dir, results(factors("finetuned", True, 3), 1.0, 1.0, 3, "failed",
                               "RuntimeError: CUDA out of memory"),
              resolved=config("finetuned", True, 3, run_dir))
    return root
