"""Generate clips for any prompts from a checkpoint written by train.py.

    python -m text2sign.cli.generate ckpt_path=PATH 'prompts=["hello","thank you"]' [steps=50]

Writes a GIF and an MP4 per prompt, grid.png and index.json (each prompt's files) into
outputs/generate/<date>_<time>_<id>/. The model is rebuilt from the run config stored in the
checkpoint, on the GPU when there is one (`device=`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf

from text2sign.cli.errors import one_line_errors
from text2sign.config import CONF, register_configs
from text2sign.evaluation.samples import check_prompts, check_sampling, write_samples
from text2sign.module import TextToSignModule
from text2sign.run.checkpointing import chosen_weights, ema_shadow, read_checkpoint
from text2sign.run.job import build_module

log = logging.getLogger(__name__)


def load_module(ckpt_path: str | Path, weights: str = "auto",
                device: torch.device | str = "cpu") -> tuple[TextToSignModule, str]:
    """Rebuild the module of a checkpoint on `device`; returns it with the weights used
    ("ema" or "raw")."""
    path = Path(ckpt_path)
    checkpoint = read_checkpoint(path)
    chosen = chosen_weights(checkpoint, weights, path)  # before the model is built
    module = build_module(OmegaConf.create(checkpoint["text2sign_config"])).to(device)
    module.configure_model()  # the fast path, as Lightning applies it before a fit
    module.on_load_checkpoint(checkpoint)
    module.load_state_dict(checkpoint["state_dict"])
    if chosen == "ema":
        shadow = ema_shadow(checkpoint)
        with torch.no_grad():
            for name, p in module.named_parameters():
                if name in shadow:
                    p.copy_(shadow[name])
    return module.eval(), chosen


def torch_device(name: str) -> torch.device:
    """`device=`: auto (CUDA when available), or any torch device name; named when bad."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"device={name!r} is not a device: use auto, cpu, cuda or cuda:N") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={name}: this machine has no CUDA device; use device=auto or cpu")
    return device


def generate(cfg: DictConfig, out_dir: Path) -> dict:
    prompts = check_prompts(cfg.prompts, "prompts")
    check_sampling(cfg.steps, cfg.guidance_scale, cfg.fps, "")  # before the model is loaded
    device = torch_device(cfg.device)
    module, weights = load_module(cfg.ckpt_path, cfg.weights, device)
    videos = module.sample(prompts, cfg.steps, cfg.guidance_scale, cfg.seed)
    settings = {"seed": cfg.seed, "steps": cfg.steps, "guidance_scale": cfg.guidance_scale,
                "weights": weights, "ckpt_path": str(cfg.ckpt_path), "device": str(module.device)}
    index, _ = write_samples(out_dir, prompts, videos, settings, cfg.fps)
    log.info("wrote %d clips (%s weights) to %s", len(index["prompts"]), weights, out_dir)
    return index


@hydra.main(version_base="1.3", config_path=str(CONF), config_name="generate")
def generate_job(cfg: DictConfig) -> None:
    with one_line_errors("generate", status=1):
        generate(cfg, Path(HydraConfig.get().runtime.output_dir))


def main() -> None:
    register_configs()  # conf/'s schema, before Hydra composes
    generate_job()


if __name__ == "__main__":
    main()
