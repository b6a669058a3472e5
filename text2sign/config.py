"""The structured schema of conf/train.yaml.

Hydra merges every YAML file onto these dataclasses, so a value of the wrong type
(`ema=maybe`, `optimizer.lr=abc`), a choice outside an enum, or a key that does not exist is
rejected with the key's full name before any work starts. Values live in conf/; this file
holds only types (MISSING means: the YAML must set it).
"""

from __future__ import annotations

import hashlib
import os
import re
import secrets
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Optional

import torch
from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

from text2sign.data.clip_dataset import ShortClips
from text2sign.data.frame_fit import Fit
from text2sign.data.splits import SplitMode
from text2sign.models.diffusion import PredictionType, TimestepSampling
from text2sign.module import Conditioning, NonFiniteLoss


class FVDBackbone(str, Enum):
    i3d = "i3d"
    videomae = "videomae"


@dataclass
class PathsConfig:
    output_dir: str = MISSING


@dataclass
class SyntheticDataConfig:
    _target_: str = MISSING
    num_frames: int = MISSING
    image_size: int = MISSING
    batch_size: int = MISSING
    num_workers: int = MISSING
    num_train: int = MISSING
    num_val: int = MISSING
    num_test: int = MISSING
    num_signers: int = MISSING
    num_val_signers: int = MISSING
    num_test_signers: int = MISSING
    seed: int = MISSING
    shuffle_seed: int = MISSING
    prefetch_factor: int = MISSING
    max_glosses: int = MISSING
    hand_scale: float = MISSING


@dataclass
class ClipDataConfig:
    """The keys every file-based data option shares (scale=... sets the first four)."""

    _target_: str = MISSING
    num_frames: int = MISSING
    image_size: int = MISSING
    batch_size: int = MISSING
    num_workers: int = MISSING
    num_train: Optional[int] = None  # at most this many clips per split; null: all
    num_val: Optional[int] = None
    num_test: Optional[int] = None
    seed: int = MISSING
    split: SplitMode = MISSING
    val_fraction: float = MISSING
    test_fraction: float = MISSING
    fit: Fit = MISSING
    short_clips: ShortClips = MISSING
    fps: Optional[float] = None
    frames_fps: float = MISSING
    cache_dir: str = MISSING
    shuffle_seed: int = MISSING
    prefetch_factor: int = MISSING


@dataclass
class GifFolderDataConfig(ClipDataConfig):
    root: str = MISSING
    signer_pattern: str = MISSING


@dataclass
class How2SignDataConfig(ClipDataConfig):
    annotations: str = MISSING
    video_dir: str = MISSING
    val_annotations: Optional[str] = None
    test_annotations: Optional[str] = None


@dataclass
class Phoenix14TDataConfig(ClipDataConfig):
    root: str = MISSING
    caption_column: str = MISSING


@dataclass
class ManifestDataConfig(ClipDataConfig):
    path: str = MISSING


# conf/data/<option>.yaml starts from `<option>_schema` (its defaults list)
DATA_SCHEMAS = {"synthetic": SyntheticDataConfig, "gif_folder": GifFolderDataConfig,
                "how2sign": How2SignDataConfig, "phoenix14t": Phoenix14TDataConfig,
                "manifest": ManifestDataConfig}


@dataclass
class TextEncoderConfig:
    _target_: str = MISSING
    name: str = MISSING
    trainable: bool = MISSING
    trainable_layers: Optional[int] = None
    lr: Optional[float] = None
    max_length: int = MISSING
    local_files_only: bool = MISSING


@dataclass
class DenoiserConfig:
    _target_: str = MISSING
    _partial_: bool = True
    base_channels: int = MISSING
    channel_mults: list[int] = MISSING
    num_res_blocks: int = MISSING
    attention_levels: list[int] = MISSING
    num_heads: int = MISSING
    temporal_attention: bool = MISSING
    dropout: float = MISSING


@dataclass
class DiffusionConfig:
    _target_: str = MISSING
    num_train_timesteps: int = MISSING
    beta_schedule: str = MISSING
    prediction_type: PredictionType = MISSING
    snr_gamma: Optional[float] = None
    timestep_sampling: TimestepSampling = MISSING


@dataclass
class ModelConfig:
    _target_: str = MISSING
    denoiser: DenoiserConfig = MISSING
    diffusion: DiffusionConfig = MISSING
    num_frames: int = MISSING
    image_size: int = MISSING
    cond_drop_prob: float = MISSING
    val_timesteps: list[int] = MISSING
    sample_steps: int = MISSING
    guidance_scale: float = MISSING
    seed: int = MISSING
    nonfinite_loss: NonFiniteLoss = MISSING
    conditioning: Conditioning = MISSING


@dataclass
class OptimizerConfig:
    _target_: str = MISSING
    _partial_: bool = True
    lr: float = MISSING
    weight_decay: float = MISSING
    betas: list[float] = MISSING
    eps: float = MISSING


@dataclass
class LRSchedulerConfig:
    _target_: str = MISSING
    _partial_: bool = True
    num_warmup_steps: int = MISSING
    num_training_steps: int = MISSING


@dataclass
class TrainerConfig:
    _target_: str = MISSING
    default_root_dir: str = MISSING
    accelerator: str = MISSING
    devices: Any = MISSING
    precision: str = MISSING
    strategy: Any = MISSING  # "auto", or a strategy object (trainer=ddp)
    num_nodes: int = MISSING
    use_distributed_sampler: bool = MISSING
    plugins: Any = None
    max_steps: int = MISSING
    max_epochs: int = MISSING
    accumulate_grad_batches: int = MISSING
    gradient_clip_val: Optional[float] = None
    val_check_interval: int = MISSING
    check_val_every_n_epoch: Optional[int] = None
    limit_val_batches: Any = MISSING  # a fraction (float) or a number of batches (int)
    num_sanity_val_steps: int = MISSING
    log_every_n_steps: int = MISSING
    deterministic: bool = MISSING
    enable_progress_bar: bool = MISSING
    enable_model_summary: bool = MISSING


@dataclass
class EMAConfig:
    _target_: str = MISSING
    enabled: bool = MISSING
    decay: float = MISSING


@dataclass
class CheckpointConfig:
    _target_: str = MISSING
    dirpath: str = MISSING
    filename: Optional[str] = None
    auto_insert_metric_name: bool = True
    monitor: Optional[str] = None
    mode: str = "min"
    save_top_k: int = MISSING
    save_last: Optional[bool] = None
    every_n_train_steps: Optional[int] = None
    train_time_interval: Any = None  # a datetime.timedelta built by Hydra
    enable_version_counter: bool = MISSING


@dataclass
class TargetConfig:
    """A callback or logger built from its `_target_` and a few plain arguments."""

    _target_: str = MISSING


@dataclass
class SamplesConfig:
    _target_: str = MISSING
    prompts: list[str] = MISSING
    steps: int = MISSING
    guidance_scale: float = MISSING
    seed: int = MISSING
    fps: int = MISSING


@dataclass
class CallbacksConfig:
    ema: EMAConfig = MISSING
    last_checkpoint: CheckpointConfig = MISSING
    timed_checkpoint: CheckpointConfig = MISSING
    step_checkpoints: CheckpointConfig = MISSING
    best_checkpoint: CheckpointConfig = MISSING
    gpu_memory: TargetConfig = MISSING
    training_log: TargetConfig = MISSING
    samples: SamplesConfig = MISSING


@dataclass
class FVDConfig:
    backbone: FVDBackbone = MISSING
    detector_path: Optional[str] = None
    detector_sha256: Optional[str] = None
    videomae_name: str = MISSING
    local_files_only: bool = MISSING
    batch_size: int = MISSING


@dataclass
class LPIPSConfig:
    backbone_path: Optional[str] = None
    linear_path: Optional[str] = None


@dataclass
class RetrievalConfig:
    enabled: bool = MISSING
    num_clips: int = MISSING
    num_candidates: int = MISSING
    timesteps: list[int] = MISSING
    seed: int = MISSING
    batch_size: int = MISSING
    bootstrap: int = MISSING


@dataclass
class EvalConfig:
    _target_: str = MISSING
    enabled: bool = MISSING
    split: str = MISSING
    num_videos: int = MISSING
    batch_size: int = MISSING
    steps: int = MISSING
    guidance_scale: float = MISSING
    seed: int = MISSING
    timing_repeats: int = MISSING
    cache_dir: str = MISSING
    download: bool = MISSING
    fvd: FVDConfig = MISSING
    lpips: LPIPSConfig = MISSING
    retrieval: RetrievalConfig = MISSING


@dataclass
class LoggerEntryConfig:
    _target_: str = MISSING
    save_dir: str = MISSING
    name: str = MISSING
    version: Optional[str] = None


@dataclass
class LoggerConfig:
    tensorboard: LoggerEntryConfig = MISSING
    csv: LoggerEntryConfig = MISSING


@dataclass
class PerfConfig:
    """The fast path (conf/perf/default.yaml); the switches take auto, true or false."""

    compile: Any = MISSING
    compile_mode: str = MISSING
    compile_backend: str = MISSING
    gradient_checkpointing: bool = MISSING
    channels_last: bool = MISSING
    tf32: bool = MISSING
    fused_optimizer: Any = MISSING


@dataclass
class BenchConfig:
    """`python -m text2sign.bench` settings (conf/bench.yaml); the rest is the train config."""

    out: Optional[str] = None
    warmup_steps: int = MISSING
    steps: int = MISSING
    rounds: int = MISSING
    sample_steps: int = MISSING
    sample_guidance_scale: float = MISSING
    sample_repeats: int = MISSING
    encoder_repeats: int = MISSING
    largest_batch_limit: int = MISSING


@dataclass
class TrainConfig:
    seed: int = MISSING
    ema: bool = MISSING
    ckpt_path: Optional[str] = None
    retry_failed: bool = False
    train: bool = MISSING
    tags: list[str] = field(default_factory=list)
    paths: PathsConfig = MISSING
    data: Any = MISSING  # typed by the chosen option's schema (DATA_SCHEMAS)
    text_encoder: TextEncoderConfig = MISSING
    model: ModelConfig = MISSING
    optimizer: OptimizerConfig = MISSING
    lr_scheduler: LRSchedulerConfig = MISSING
    trainer: TrainerConfig = MISSING
    callbacks: CallbacksConfig = MISSING
    logger: LoggerConfig = MISSING
    eval: EvalConfig = MISSING
    perf: PerfConfig = MISSING


@dataclass
class GenerateConfig:
    ckpt_path: str = MISSING
    prompts: list[str] = MISSING
    steps: int = MISSING
    guidance_scale: float = MISSING
    seed: int = MISSING
    weights: str = MISSING
    fps: int = MISSING


def _unique_id() -> str:
    """A per-process id that keeps two sweeps started in the same second apart."""
    return f"{os.getpid()}-{secrets.token_hex(2)}"


# not taken unquoted in a path by Hydra's override parser or a shell
_NOT_PASTEABLE = re.compile(r"[^A-Za-z0-9_.+@%-]")


def _job_dirname(override_dirname: str, job_num: int, sweep_dir: str = "") -> str:
    """A sweep job's directory, named by its overrides so that its path can be pasted into a
    command unquoted (`ckpt_path=.../checkpoints/final.ckpt`): `key-value` items joined by `+`,
    `ema-True+text_encoder-frozen` (no key holds `-` or `+`). Any other character becomes `_`
    and a hash of the overrides is added, which keeps such jobs apart; overrides too long for a
    file name give `job<N>_<hash>`. A job that a sweep made before this naming
    (`ema=True,text_encoder=frozen`) keeps its directory, so the sweep still resumes."""
    if not override_dirname:
        return f"job{job_num}"
    earlier = override_dirname.replace("/", "_")
    if len(earlier.encode()) > 200:
        return f"job{job_num}_{hashlib.sha1(earlier.encode()).hexdigest()[:8]}"
    if sweep_dir and (Path(sweep_dir) / earlier).is_dir():
        return earlier
    name = override_dirname.replace("=", "-").replace(",", "+")
    pasteable = _NOT_PASTEABLE.sub("_", name)
    if pasteable == name and "+" not in override_dirname:
        return name
    return f"{pasteable}_{hashlib.sha1(override_dirname.encode()).hexdigest()[:8]}"


def _gpu_count_or(default: int) -> int:
    """The number of visible GPUs, or `default` on a machine without one."""
    return torch.cuda.device_count() or default


def register_configs() -> None:
    """Register the schema and the resolvers; call before Hydra composes."""
    ConfigStore.instance().store(name="train_schema", node=TrainConfig)
    ConfigStore.instance().store(name="generate_schema", node=GenerateConfig)
    for option, schema in DATA_SCHEMAS.items():
        ConfigStore.instance().store(group="data", name=f"{option}_schema", node=schema)
    if not OmegaConf.has_resolver("unique_id"):
        # cached: every use in one process (the sweep dir and each job's dir) gets one value
        OmegaConf.register_new_resolver("unique_id", _unique_id, use_cache=True)
        OmegaConf.register_new_resolver("job_dirname", _job_dirname)
        OmegaConf.register_new_resolver("gpu_count_or", _gpu_count_or)
