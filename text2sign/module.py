"""The LightningModule: a text-conditioned video diffusion model.

It receives built objects (a denoiser factory, a text encoder, a diffusion schedule, optimizer
and LR-scheduler factories) and knows nothing about Hydra or the run directory.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Iterable, Sequence
from enum import Enum
from typing import Any

import pytorch_lightning as pl
import torch
from pytorch_lightning.plugins.precision import Precision
from torch import nn

from text2sign.host_sync import HostScalar
from text2sign.models.cuda_graph import CapturedCall
from text2sign.models.diffusion import Diffusion
from text2sign.models.text_encoder import TextEncoder
from text2sign.perf import AUTOCAST_DTYPES, FastPath
from text2sign.seeds import generator

log = logging.getLogger(__name__)

UNCONDITIONAL_CAPTION = ""  # the dropped condition, for classifier-free guidance


class Conditioning(str, Enum):
    """What the denoiser is conditioned on: the caption, or nothing (the empty caption always:
    the unconditional control of the positive-control experiment)."""

    text = "text"
    none = "none"


class NonFiniteLoss(str, Enum):
    """What a NaN or Inf training loss does: stop the run (fail) or skip that step (skip)."""

    fail = "fail"
    skip = "skip"


class NonFiniteLossError(FloatingPointError):
    """A NaN/Inf training loss under nonfinite_loss=fail, raised on every DDP rank at once."""


def to_model_range(videos: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1]."""
    return videos.float() / 127.5 - 1


def to_uint8(x: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255]."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


class TextToSignModule(pl.LightningModule):
    """Trains the denoiser on (video, caption) batches and samples videos from prompts.

    Args:
        denoiser: called as `denoiser(context_dim=...)` to build the network, so its text
            width always matches the encoder's.
        text_encoder: the caption encoder (frozen or finetuned).
        diffusion: noise schedule, training target and sampler.
        optimizer: called with the parameter groups.
        lr_scheduler: called with the optimizer; stepped every optimizer step. None: constant.
        num_frames, image_size: the video shape the model generates.
        cond_drop_prob: probability of training a sample with the unconditional caption.
        val_timesteps: the fixed timesteps of the validation loss.
        sample_steps, guidance_scale: DDIM steps and classifier-free guidance scale of `sample`.
        conditioning: "text", or "none": the denoiser always receives the empty caption (in
            training, validation, evaluation and sampling), a model that cannot use the text.
        fast_path: the `perf` settings; None: the plain path.
        precision: the trainer's; the denoiser autocasts to it where Lightning does not
            (sampling, evaluation, generate).
    """

    def __init__(
        self,
        denoiser: Callable[..., nn.Module],
        text_encoder: TextEncoder,
        diffusion: Diffusion,
        optimizer: Callable[..., torch.optim.Optimizer],
        lr_scheduler: Callable[..., Any] | None = None,
        num_frames: int = 8,
        image_size: int = 16,
        cond_drop_prob: float = 0.1,
        val_timesteps: Sequence[int] = (100, 300, 500, 700, 900),
        sample_steps: int = 50,
        guidance_scale: float = 3.0,
        seed: int = 0,
        nonfinite_loss: NonFiniteLoss = NonFiniteLoss.fail,
        conditioning: Conditioning = Conditioning.text,
        fast_path: FastPath | None = None,
        precision: str = "32-true",
    ):
        super().__init__()
        if not 0 <= cond_drop_prob < 1:
            raise ValueError(f"model.cond_drop_prob={cond_drop_prob} must be in [0, 1)")
        self.text_encoder = text_encoder
        self.fast_path = fast_path or FastPath()
        self.denoiser = denoiser(context_dim=text_encoder.hidden_size,
                                 gradient_checkpointing=self.fast_path.gradient_checkpointing,
                                 channels_last=self.fast_path.channels_last,
                                 autocast_dtype=AUTOCAST_DTYPES.get(str(precision)))
        self.diffusion = diffusion
        self.optimizer_factory, self.lr_scheduler_factory = optimizer, lr_scheduler
        self.video_shape = (3, num_frames, image_size, image_size)
        self.cond_drop_prob = cond_drop_prob
        self.val_timesteps = list(val_timesteps)
        self.sample_steps, self.guidance_scale = sample_steps, guidance_scale
        self.seed, self.nonfinite_loss = seed, NonFiniteLoss(nonfinite_loss)
        self.conditioning = Conditioning(conditioning)
        self.skipped_steps = 0  # steps skipped for a non-finite loss (nonfinite_loss=skip)
        self.micro_batches = 0  # training batches so far: numbers the random draws
        self._micro_batch_losses: list[torch.Tensor] = []
        # (step, its loss) of the last optimizer step, read on the host a step later
        self.last_loss: tuple[int, HostScalar] | None = None
        self.run_config: dict | None = None  # the resolved run config, kept in checkpoints
        # where Lightning placed the module (device, dtype): its teardown moves it to the CPU,
        # and the phases after training (samples, evaluation) run where it trained
        self.placement = (self.device, self.dtype)

    # ----------------------------------------------------------------------------- training
    def denoising_errors(
        self, x0: torch.Tensor, captions: list[str], t: torch.Tensor, noise: torch.Tensor
    ) -> torch.Tensor:
        """Per-clip mean squared error (B,) of the denoiser's prediction at timesteps t."""
        context, mask = self.text_encoder(self._conditions(captions))
        x_t, target = self.diffusion.noisy_input_and_target(x0, noise, t)
        prediction = self.denoiser(x_t, t, context, mask)
        return (prediction.float() - target.float()).square().flatten(1).mean(1)

    def diffusion_loss(self, x0: torch.Tensor, captions: list[str], t: torch.Tensor,
                       noise: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
        """The mean denoising error, each clip's weighted by `weights` (B,) when given."""
        errors = self.denoising_errors(x0, captions, t, noise)
        return errors.mean() if weights is None else (weights * errors).mean()

    def caption_errors(self, videos: torch.Tensor, captions: list[str], t: torch.Tensor,
                       noise: torch.Tensor) -> torch.Tensor:
        """`denoising_errors` of uint8 clips: what caption retrieval compares."""
        return self.denoising_errors(to_model_range(videos.to(self.device)), captions,
                                     t.to(self.device), noise.to(self.device))

    def _conditions(self, captions: Sequence[str]) -> list[str]:
        """The captions the denoiser sees: the empty caption for all under conditioning=none."""
        if self.conditioning == Conditioning.none:
            return [UNCONDITIONAL_CAPTION] * len(captions)
        return list(captions)

    def step_loss(self, batch: dict) -> torch.Tensor:
        """The training loss of one micro-batch: condition dropout, timesteps and noise drawn
        from the step's generator. The training step and the bench (cli/bench.py) both run it."""
        x0 = to_model_range(batch["video"])
        key = self._step_key()
        rng = generator(*key, device=self.device)
        # which captions to drop is decided on the host: drawn there, the host needs no GPU value
        host_rng = rng if self.device.type == "cpu" else generator(*key)
        n = len(batch["caption"])
        drop = (torch.rand(n, generator=host_rng) < self.cond_drop_prob).tolist()
        captions = [UNCONDITIONAL_CAPTION if d else c for c, d in zip(batch["caption"], drop)]
        t = self.diffusion.sample_timesteps(n, self.device, rng)
        noise = torch.randn(x0.shape, generator=rng, device=self.device, dtype=x0.dtype)
        return self.diffusion_loss(x0, captions, t, noise, self.diffusion.loss_weights(t))

    def training_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.step_loss(batch)
        self._micro_batch_losses.append(loss.detach())
        return loss

    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None:
        """The loss of the step (the mean over its micro-batches and DDP ranks), read on the
        host a step later (`last_loss`; TrainingLog logs it, the ProgressBar shows it): reading
        it now would make the host wait for the GPU inside every step. A non-finite loss fails
        the run when it is read, before the next optimizer step or checkpoint;
        nonfinite_loss=skip must decide now, and reads it now."""
        step_loss = torch.stack(self._micro_batch_losses).mean()
        self._micro_batch_losses.clear()
        if self.nonfinite_loss == NonFiniteLoss.skip and self._on_any_rank(
                not torch.isfinite(step_loss)):
            self._skip(optimizer)
            return
        self.settled_loss()
        mean = step_loss if self._trainer is None else self.trainer.strategy.reduce(step_loss)
        self.last_loss = (self.global_step + 1, HostScalar(mean))

    def settled_loss(self) -> float | None:
        """The loss of the last step (`last_loss`), failing the run if it is not finite."""
        if self.last_loss is None:
            return None
        step, loss = self.last_loss[0], self.last_loss[1].value()
        if not math.isfinite(loss):
            raise NonFiniteLossError(
                f"training loss is {loss} at step {step}: lower optimizer.lr, set "
                "trainer.gradient_clip_val, or model.nonfinite_loss=skip to skip such steps")
        return loss

    def on_train_end(self) -> None:
        self.settled_loss()

    def _on_any_rank(self, flag: bool) -> bool:
        """True on every rank if it is on one: a step skipped on one DDP rank only would hang."""
        trainer = self._trainer
        return flag if trainer is None else trainer.strategy.reduce_boolean_decision(flag, all=False)

    def _step_key(self) -> tuple[int, int, int]:
        """(seed, rank, micro-batch number): the step's random draws, resumable from one counter."""
        key = (self.seed, self.global_rank, self.micro_batches)
        self.micro_batches += 1
        return key

    def _skip(self, optimizer: torch.optim.Optimizer) -> None:
        """Skip the optimizer step of a non-finite loss and count it (nonfinite_loss=skip)."""
        self.skipped_steps += 1
        self.last_loss = None  # no loss to record for this step
        # the optimizer steps no parameter without a gradient; under fp16 the GradScaler, which
        # needs the gradients, finds them non-finite and skips the step itself
        if getattr(self.trainer.precision_plugin, "scaler", None) is None:
            optimizer.zero_grad(set_to_none=True)
        log.warning("non-finite training loss at step %d: step skipped (%d so far)",
                    self.global_step, self.skipped_steps)
        self.log("train/skipped_steps", float(self.skipped_steps), on_step=True, on_epoch=False)

    def validation_loss(self, batch: dict, seed: int) -> torch.Tensor:
        """Loss at the fixed `val_timesteps` with noise fixed by `seed`, so that it is
        comparable across epochs and runs."""
        x0 = to_model_range(batch["video"])
        generator = torch.Generator().manual_seed(seed)
        losses = []
        for timestep in self.val_timesteps:
            noise = torch.randn(x0.shape, generator=generator).to(self.device)
            t = torch.full((len(x0),), timestep, device=self.device)
            losses.append(self.diffusion_loss(x0, list(batch["caption"]), t, noise))
        return torch.stack(losses).mean()

    def validation_step(self, batch: dict, batch_idx: int) -> torch.Tensor:
        loss = self.validation_loss(batch, seed=batch_idx)
        self.log("val/loss", loss, on_epoch=True, prog_bar=True, batch_size=len(batch["caption"]),
                 sync_dist=True)
        return loss

    def on_fit_start(self) -> None:
        self.placement = (self.device, self.dtype)

    on_validation_start = on_fit_start  # train=false validates without fitting

    def to_placement(self) -> TextToSignModule:
        """Back where Lightning last trained or validated the module (`placement`)."""
        return self.to(*self.placement)

    def configure_model(self) -> None:
        """Lightning's hook before fit, validate and test (generate and the bench call it too):
        the fast path's run-time part. Idempotent: the denoiser is compiled once."""
        self.fast_path.apply_global_settings()
        if self.fast_path.compiles() and not self.denoiser.compiled:
            self.denoiser.compile(**self.fast_path.compile_options())

    def parameter_groups(self) -> list[dict[str, Any]]:
        """The optimizer's parameter groups, named: the denoiser at the optimizer's lr, then the
        trainable text encoder's (TextEncoder.parameter_groups), each with its own lr."""
        return [{"name": "denoiser", "params": list(self.denoiser.parameters())},
                *self.text_encoder.parameter_groups()]

    def parameter_counts(self) -> dict[str, float]:
        """results.json's `model`: parameters in millions."""
        return {"num_parameters_millions": _millions(self.parameters()),
                "trainable_parameters_millions": _millions(
                    p for p in self.parameters() if p.requires_grad),
                "denoiser_parameters_millions": _millions(self.denoiser.parameters())}

    def parameter_group_sizes(self, default_lr: float | None) -> list[dict[str, Any]]:
        """metadata.json's `parameter_groups`: each optimizer group's name, learning rate (before
        the schedule; `default_lr`, the optimizer's, where the group sets none) and size."""
        return [{"name": group["name"], "lr": group.get("lr", default_lr),
                 "parameters": sum(p.numel() for p in group["params"])}
                for group in self.parameter_groups()]

    def configure_optimizers(self) -> Any:
        groups = self.parameter_groups()
        params = [p for group in groups for p in group["params"]]
        optimizer = self.optimizer_factory(
            groups, **self.fast_path.optimizer_options(self.optimizer_factory, params))
        if self.lr_scheduler_factory is None:
            return optimizer
        scheduler = self.lr_scheduler_factory(optimizer)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def configure_gradient_clipping(self, optimizer: torch.optim.Optimizer,
                                    gradient_clip_val: float | None = None,
                                    gradient_clip_algorithm: str | None = None) -> None:
        """Lightning's AMP plugin refuses to clip for an optimizer that unscales its own
        gradients (the fast path's fused AdamW), even in bf16, which has no loss scale. Unscale
        first where there is a scale (fp16), then clip as Lightning's plain plugin does."""
        if not (gradient_clip_val and getattr(optimizer, "_step_supports_amp_scaling", False)):
            return super().configure_gradient_clipping(optimizer, gradient_clip_val,
                                                       gradient_clip_algorithm)
        plugin = self.trainer.precision_plugin
        if getattr(plugin, "scaler", None) is not None:
            plugin.scaler.unscale_(optimizer)  # its step() then skips the unscaling
        Precision.clip_gradients(plugin, optimizer, gradient_clip_val,
                                 gradient_clip_algorithm or "norm")

    # ----------------------------------------------------------------------------- sampling
    @torch.no_grad()
    def sample(
        self,
        prompts: Sequence[str],
        steps: int | None = None,
        guidance_scale: float | None = None,
        seed: int = 0,
    ) -> torch.Tensor:
        """Generate one video per prompt: uint8 (B, C, T, H, W).

        Each clip starts from noise drawn from (seed, prompt), so a prompt's clip does not
        depend on the other prompts of the call, their order or the batch size."""
        steps = steps or self.sample_steps
        scale = self.guidance_scale if guidance_scale is None else guidance_scale
        # drawn on the CPU so that a seed gives the same videos on every device
        noise = torch.stack([torch.randn(self.video_shape, generator=generator(seed, prompt))
                             for prompt in prompts])
        conditions = self._conditions(prompts)
        # under conditioning=none both branches would be the empty caption: nothing to guide
        guided = scale != 1.0 and self.conditioning == Conditioning.text
        captions = conditions + [UNCONDITIONAL_CAPTION] * len(prompts) if guided else conditions
        context, mask = self.text_encoder(captions)

        def denoise(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
            if not guided:
                return self.denoiser(x, t, context, mask)
            # conditional and unconditional branches in one batched forward pass
            cond, uncond = self.denoiser(x.repeat(2, 1, 1, 1, 1), t.repeat(2), context, mask).chunk(2)
            return uncond + scale * (cond - uncond)

        if self.fast_path.captures(self.device):
            denoise = CapturedCall(denoise)
        was_training = self.training
        self.eval()
        try:
            x = self.diffusion.sample(denoise, noise.to(self.device), steps)
        finally:
            self.train(was_training)
        return to_uint8(x)

    # ----------------------------------------------------------------------------- checkpoints
    def _frozen_text_encoder_keys(self) -> list[str]:
        trainable = {f"text_encoder.{n}" for n, p in self.text_encoder.named_parameters()
                     if p.requires_grad}
        return [k for k in self.state_dict() if k.startswith("text_encoder.") and k not in trainable]

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        self.settled_loss()  # a non-finite loss fails the run before its weights are saved
        # Frozen pretrained weights are reloaded from text_encoder.name, not stored again.
        for key in self._frozen_text_encoder_keys():
            checkpoint["state_dict"].pop(key, None)
        checkpoint["text_encoder"] = {"name": self.text_encoder.name,
                                      "trainable": self.text_encoder.trainable}
        checkpoint["text2sign_config"] = self.run_config
        checkpoint["training_counters"] = {"skipped_steps": self.skipped_steps,
                                           "micro_batches": self.micro_batches}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        saved = checkpoint.get("text_encoder", {})
        if saved.get("name") != self.text_encoder.name:
            raise ValueError(
                f"checkpoint was trained with text_encoder.name={saved.get('name')!r}, "
                f"this run uses {self.text_encoder.name!r}: set text_encoder.name to match"
            )
        counters = checkpoint.get("training_counters", {})
        self.skipped_steps = counters.get("skipped_steps", 0)
        self.micro_batches = counters.get("micro_batches", 0)
        own = self.state_dict()
        checkpoint["state_dict"].update({k: own[k] for k in self._frozen_text_encoder_keys()})


def _millions(parameters: Iterable[nn.Parameter]) -> float:
    return round(sum(p.numel() for p in parameters) / 1e6, 4)
