"""The LightningModule: learning, loss logging under accumulation, sampling, checkpoints."""

from __future__ import annotations

from functools import partial

import pytest
import torch

from text2sign.data.synthetic import SyntheticSignDataset
from text2sign.models.diffusion import Diffusion
from text2sign.models.text_encoder import TextEncoder
from text2sign.models.unet3d import UNet3D
from text2sign.module import TextToSignModule


@pytest.fixture(scope="module")
def text_encoder():
    return TextEncoder()


def make_module(text_encoder, **kwargs) -> TextToSignModule:
    torch.manual_seed(0)
    return TextToSignModule(
        denoiser=partial(UNet3D, base_channels=16, num_heads=2),
        text_encoder=text_encoder,
        diffusion=Diffusion(),
        optimizer=partial(torch.optim.AdamW, lr=3e-3),
        num_frames=4,
        image_size=8,
        **kwargs,
    )


def fixed_batch(n=4):
    data = SyntheticSignDataset("train", num_clips=n, num_frames=4, image_size=8)
    items = [data[i] for i in range(n)]
    return {"video": torch.stack([i["video"] for i in items]),
            "caption": [i["caption"] for i in items]}


def test_overfits_a_fixed_batch(text_encoder):
    """Loss at fixed timesteps and noise falls by a large factor on one repeated batch."""
    module = make_module(text_encoder, cond_drop_prob=0.0)
    batch = fixed_batch()
    optimizer = module.configure_optimizers()

    def fixed_loss() -> float:
        with torch.no_grad():
            return module.validation_loss(batch, seed=0).item()

    before = fixed_loss()
    for step in range(150):
        optimizer.zero_grad()
        module.training_step(batch, step).backward()
        optimizer.step()
    after = fixed_loss()
    assert after < before / 5, (before, after)


def test_step_loss_is_the_mean_over_accumulated_micro_batches(text_encoder):
    module = make_module(text_encoder)
    optimizer = module.configure_optimizers()
    losses = []
    for step in ([1.0, 2.0, 6.0], [4.0]):  # 3 micro-batches, then the epoch's last one
        module._micro_batch_losses += [torch.tensor(loss) for loss in step]
        module.on_before_optimizer_step(optimizer)
        losses.append(module.settled_loss())
    assert losses == [3.0, 4.0]  # one value per optimizer step


class NoHostRead(torch.Tensor):
    """A loss whose value must not be read on the host (on a GPU: a synchronisation)."""

    def __bool__(self):
        raise AssertionError("the loss was read on the host")

    item = __float__ = __bool__


def test_a_step_reads_its_loss_on_the_host_only_a_step_later(text_encoder, monkeypatch):
    """Neither the training step nor the optimizer step reads the loss: on a GPU the host would
    wait for the step's kernels. The non-finite check reads it a step later (settled_loss)."""
    step_loss = TextToSignModule.step_loss
    monkeypatch.setattr(TextToSignModule, "step_loss",
                        lambda self, batch: step_loss(self, batch).as_subclass(NoHostRead))
    module = make_module(text_encoder)
    optimizer = module.configure_optimizers()
    module.training_step(fixed_batch(), 0).backward()
    module.on_before_optimizer_step(optimizer)
    with pytest.raises(AssertionError, match="read on the host"):  # the next step reads it
        module.settled_loss()


def test_nan_loss_stops_with_the_step_and_a_fix(text_encoder):
    module = make_module(text_encoder)
    module.denoiser.forward = lambda x, *args: torch.full_like(x, float("nan"))
    module.training_step(fixed_batch(), 0)
    module.on_before_optimizer_step(module.configure_optimizers())
    with pytest.raises(FloatingPointError, match="nan at step 1: lower optimizer.lr"):
        module.settled_loss()


def test_sample_returns_uint8_videos_fixed_by_the_seed(text_encoder):
    module = make_module(text_encoder)
    with torch.no_grad():  # random weights so the output depends on the prompt
        for p in module.denoiser.parameters():
            p.add_(0.05 * torch.randn_like(p))
    videos = module.sample(["hello", "thank you"], steps=3, seed=7)
    assert videos.dtype == torch.uint8 and videos.shape == (2, 3, 4, 8, 8)
    assert torch.equal(videos, module.sample(["hello", "thank you"], steps=3, seed=7))
    assert not torch.equal(videos, module.sample(["hello", "thank you"], steps=3, seed=8))
    unguided = module.sample(["hello", "thank you"], steps=3, seed=7, guidance_scale=1.0)
    assert not torch.equal(videos, unguided)
    assert module.training  # sampling restores the mode


def test_a_prompts_clip_does_not_depend_on_its_batch(text_encoder):
    """The starting noise comes from (seed, prompt): alone, second in a batch, or in a batch of
    another size, "hello" gives the same clip (up to float rounding of batched kernels)."""
    module = make_module(text_encoder)
    with torch.no_grad():
        for p in module.denoiser.parameters():
            p.add_(0.05 * torch.randn_like(p))
    alone = module.sample(["hello"], steps=3, seed=7)[0].int()
    second = module.sample(["thank you", "hello"], steps=3, seed=7)[1].int()
    third = module.sample(["good", "bad", "hello"], steps=3, seed=7)[2].int()
    assert (alone - second).abs().max() <= 1 and (alone - third).abs().max() <= 1
    other = module.sample(["thank you"], steps=3, seed=7)[0].int()
    assert (alone - other).abs().float().mean() > 10  # another prompt: other noise


def test_conditioning_none_never_shows_the_text(text_encoder):
    module = make_module(text_encoder, conditioning="none")
    with torch.no_grad():
        for p in module.denoiser.parameters():
            p.add_(0.05 * torch.randn_like(p))
    seen = []
    encode = module.text_encoder.forward
    module.text_encoder.forward = lambda captions: seen.extend(captions) or encode(captions)
    videos = torch.randint(0, 256, (2, 3, 4, 8, 8), dtype=torch.uint8)
    t, noise = torch.tensor([500, 500]), torch.randn(2, 3, 4, 8, 8)
    errors = module.caption_errors(videos, ["hello", "thank you"], t, noise)
    with_text = module.caption_errors(videos, ["good", "bad"], t, noise)
    assert torch.equal(errors, with_text)  # the caption cannot change the error
    module.validation_loss(fixed_batch(), seed=0)
    module.sample(["hello", "thank you"], steps=2, seed=0)
    assert seen and set(seen) == {""}


def test_checkpoint_leaves_out_frozen_weights_and_restores_them(text_encoder):
    module = make_module(text_encoder)
    checkpoint = {"state_dict": module.state_dict()}
    module.on_save_checkpoint(checkpoint)
    assert not any(k.startswith("text_encoder.") for k in checkpoint["state_dict"])
    assert any(k.startswith("denoiser.") for k in checkpoint["state_dict"])
    module.on_load_checkpoint(checkpoint)
    module.load_state_dict(checkpoint["state_dict"])  # strict: nothing missing
    checkpoint["text_encoder"]["name"] = "another-model"
    with pytest.raises(ValueError, match="text_encoder.name"):
        module.on_load_checkpoint(checkpoint)
