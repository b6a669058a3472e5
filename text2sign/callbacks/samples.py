"""Sample clips for fixed prompts: the same prompts and seed in every run, for side-by-side views."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from PIL import Image
from pytorch_lightning.loggers import TensorBoardLogger

from text2sign.callbacks.ema import reported_weights
from text2sign.data.video_io import caption_grid, write_gif, write_mp4
from text2sign.files import atomic_write_json


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_") or "empty"


class Samples:
    """After training, writes samples/<prompt>.gif and .mp4, samples/grid.png (frames across,
    prompts down, captions written), samples/index.json, and the grid to TensorBoard.

    Args:
        prompts: the fixed prompts.
        steps, guidance_scale, seed: DDIM steps, classifier-free guidance, noise seed.
        fps: frame rate of the GIF and MP4 files.
    """

    def __init__(self, prompts: list[str], steps: int, guidance_scale: float, seed: int = 0,
                 fps: int = 8):
        if not prompts or any(not p.strip() for p in prompts):
            raise ValueError("callbacks.samples.prompts must be a non-empty list of non-empty "
                             "prompts")
        self.prompts, self.steps, self.guidance_scale = list(prompts), steps, guidance_scale
        self.seed, self.fps = seed, fps

    def write(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> dict[str, Any]:
        with reported_weights(trainer, pl_module):
            videos = pl_module.sample(self.prompts, self.steps, self.guidance_scale, self.seed)
        settings = {"seed": self.seed, "steps": self.steps, "guidance_scale": self.guidance_scale}
        out = Path(trainer.default_root_dir) / "samples"
        index, grid = write_samples(out, self.prompts, videos, settings, self.fps)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                image = torch.from_numpy(np.array(grid)).permute(2, 0, 1)
                logger.experiment.add_image("samples/grid", image, trainer.global_step)
        return index


def write_samples(out: Path, prompts: list[str], videos: torch.Tensor, settings: dict[str, Any],
                  fps: int = 8) -> tuple[dict[str, Any], Image.Image]:
    """<prompt>.gif and .mp4 per prompt, grid.png and index.json in `out`; returns the index
    and the grid image."""
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for prompt, clip in zip(prompts, videos):
        name = slug(prompt)
        write_gif(out / f"{name}.gif", clip, fps)
        write_mp4(out / f"{name}.mp4", clip, fps)
        entries.append({"text": prompt, "gif": f"{name}.gif", "mp4": f"{name}.mp4"})
    grid = caption_grid(videos, prompts)
    grid.save(out / "grid.png")
    index = {"prompts": entries, "grid": "grid.png", **settings, "fps": fps}
    atomic_write_json(out / "index.json", index)
    return index, grid
