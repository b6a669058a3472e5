"""Sample clips for fixed prompts: the same prompts and seed in every run, for side-by-side views."""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from PIL import Image
from pytorch_lightning.loggers import TensorBoardLogger

from text2sign.callbacks.ema import reported_weights
from text2sign.data.video_io import caption_grid, write_gif, write_mp4
from text2sign.rundir.files import atomic_write_json

log = logging.getLogger(__name__)

NAME_BYTES = 64  # the readable part of a clip's file name (file systems allow 255 bytes)


def check_prompts(prompts: Any, key: str) -> list[str]:
    """The prompts of `key` as a list, each once: a prompt's clip depends only on its text and
    the seed, so a repeated prompt would be the same clip twice."""
    prompts = [str(p) for p in prompts or []]
    if not prompts or any(not p.strip() for p in prompts):
        raise ValueError(f"{key} must be a non-empty list of non-empty prompts, e.g. "
                         f"'{key}=[\"hello\",\"thank you\"]'")
    unique = list(dict.fromkeys(prompts))
    if len(unique) < len(prompts):
        repeated = [p for p, n in Counter(prompts).items() if n > 1]
        log.warning("%s lists %s more than once: each prompt gives one clip", key,
                    ", ".join(map(repr, repeated)))
    return unique


def clip_names(prompts: list[str]) -> list[str]:
    """A file name (without suffix) per distinct prompt: its words, lower-cased, letters of any
    script kept ("thank_you", "こんにちは"). A hash of the prompt's text is added where the words
    alone would not be unique, also on a case-insensitive file system ("hello", "Hello",
    "hello!"), where they are cut to NAME_BYTES, and stands alone for a prompt without letters
    or digits (an emoji): names are unique, bounded and as readable as the text allows."""
    words = [_words(p) for p in prompts]
    shared = Counter(words)
    names = []
    for prompt, word in zip(prompts, words):
        cut = word.encode()[:NAME_BYTES].decode(errors="ignore").rstrip("_")
        if word and cut == word and shared[word] == 1:
            names.append(word)
        else:
            digest = hashlib.sha1(prompt.encode()).hexdigest()[:8]
            names.append(f"{cut}_{digest}" if cut else f"prompt_{digest}")
    return names


def _words(text: str) -> str:
    return re.sub(r"\W+", "_", unicodedata.normalize("NFC", text).casefold()).strip("_")


class Samples:
    """After training, writes samples/<name>.gif and .mp4 per prompt (names: `clip_names`),
    samples/grid.png (frames across, prompts down, captions written), samples/index.json (each
    prompt's files), and the grid to TensorBoard.

    Args:
        prompts: the fixed prompts.
        steps, guidance_scale, seed: DDIM steps, classifier-free guidance, noise seed.
        fps: frame rate of the GIF and MP4 files.
    """

    def __init__(self, prompts: list[str], steps: int, guidance_scale: float, seed: int = 0,
                 fps: int = 8):
        self.prompts = check_prompts(prompts, "callbacks.samples.prompts")
        check_sampling(steps, guidance_scale, fps, "callbacks.samples.")
        self.steps, self.guidance_scale = steps, guidance_scale
        self.seed, self.fps = seed, fps

    def write(self, trainer: pl.Trainer, pl_module: pl.LightningModule,
              weights: str) -> dict[str, Any]:
        """Sample the prompts with `weights` (the run record's eval.weights)."""
        with reported_weights(trainer, pl_module, weights):
            videos = pl_module.sample(self.prompts, self.steps, self.guidance_scale, self.seed)
        settings = {"seed": self.seed, "steps": self.steps, "guidance_scale": self.guidance_scale}
        out = Path(trainer.default_root_dir) / "samples"
        index, grid = write_samples(out, self.prompts, videos, settings, self.fps)
        log.info("wrote %d sample clips to %s", len(index["prompts"]), out)
        for logger in trainer.loggers:
            if isinstance(logger, TensorBoardLogger):
                image = torch.from_numpy(np.array(grid)).permute(2, 0, 1)
                logger.experiment.add_image("samples/grid", image, trainer.global_step)
        return index


def check_sampling(steps: int, guidance_scale: float, fps: int | None, prefix: str) -> None:
    """DDIM steps, guidance and frame rate of written clips, each named by its key."""
    if steps < 1:
        raise ValueError(f"{prefix}steps={steps}: the number of DDIM sampling steps must be "
                         f">= 1, e.g. {prefix}steps=50")
    if guidance_scale < 0:
        raise ValueError(f"{prefix}guidance_scale={guidance_scale}: classifier-free guidance "
                         f"must be >= 0 (0: unconditional, 1: no guidance), e.g. "
                         f"{prefix}guidance_scale=3")
    if fps is not None and fps < 1:
        raise ValueError(f"{prefix}fps={fps}: the frame rate of the written clips must be >= 1, "
                         f"e.g. {prefix}fps=8")


def write_samples(out: Path, prompts: list[str], videos: torch.Tensor, settings: dict[str, Any],
                  fps: int = 8) -> tuple[dict[str, Any], Image.Image]:
    """A GIF and an MP4 per prompt (distinct prompts: `check_prompts`), grid.png and
    index.json, the map from each prompt to its files, in `out`; returns the index and the
    grid image."""
    out.mkdir(parents=True, exist_ok=True)
    entries = []
    for prompt, name, clip in zip(prompts, clip_names(prompts), videos):
        write_gif(out / f"{name}.gif", clip, fps)
        write_mp4(out / f"{name}.mp4", clip, fps)
        entries.append({"text": prompt, "gif": f"{name}.gif", "mp4": f"{name}.mp4"})
    grid = caption_grid(videos, prompts)
    grid.save(out / "grid.png")
    index = {"prompts": entries, "grid": "grid.png", **settings, "fps": fps}
    atomic_write_json(out / "index.json", index)
    return index, grid
