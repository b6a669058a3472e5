"""The denoiser and the diffusion wrapper."""

from __future__ import annotations

import pytest
import torch

from text2sign.models.diffusion import Diffusion
from text2sign.models.unet3d import UNet3D, masked_mean


def tiny_unet(**kwargs) -> UNet3D:
    torch.manual_seed(0)
    model = UNet3D(context_dim=12, base_channels=8, num_heads=2, attention_levels=(0, 1), **kwargs)
    # the residual branches start at zero; give them weights so every input matters
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    return model.eval()


def inputs(batch=2, frames=4, size=8, tokens=5):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(batch, 3, frames, size, size, generator=g)
    t = torch.tensor([10, 900])[:batch]
    context = torch.randn(batch, tokens, 12, generator=g)
    mask = torch.ones(batch, tokens, dtype=torch.bool)
    mask[0, 3:] = False
    return x, t, context, mask


def test_output_has_the_input_shape():
    model = tiny_unet()
    x, t, context, mask = inputs()
    assert model(x, t, context, mask).shape == x.shape


def test_masked_text_tokens_are_ignored():
    model = tiny_unet()
    x, t, context, mask = inputs()
    changed = context.clone()
    changed[0, 3:] = 100.0  # padding of sample 0
    assert torch.allclose(model(x, t, context, mask), model(x, t, changed, mask), atol=1e-5)
    changed[0, 0] = 100.0  # a real token
    assert not torch.allclose(model(x, t, context, mask)[0], model(x, t, changed, mask)[0])


@pytest.mark.parametrize("temporal_attention", [True, False])
def test_frames_exchange_information(temporal_attention):
    model = tiny_unet(temporal_attention=temporal_attention)
    x, t, context, mask = inputs()
    changed = x.clone()
    changed[:, :, -1] += 1.0  # only the last frame
    difference = (model(x, t, context, mask) - model(changed, t, context, mask)).abs()
    assert difference[:, :, 0].max() > 1e-4  # the first frame sees it


def test_conditioning_on_time_and_text_matters():
    model = tiny_unet()
    x, t, context, mask = inputs()
    out = model(x, t, context, mask)
    assert not torch.allclose(out, model(x, t.flip(0), context, mask))
    assert not torch.allclose(out, model(x, t, context.flip(0), mask.flip(0)))


def test_bad_sizes_are_rejected_with_the_fix():
    with pytest.raises(ValueError, match="attention_levels"):
        UNet3D(context_dim=12, channel_mults=(1, 2), attention_levels=(2,))
    x, t, context, mask = inputs(size=6)
    with pytest.raises(ValueError, match="data.image_size"):
        tiny_unet(channel_mults=(1, 2, 4))(x, t, context, mask)


def test_masked_mean_ignores_padding():
    tokens = torch.tensor([[[1.0], [3.0], [100.0]]])
    assert masked_mean(tokens, torch.tensor([[True, True, False]])).item() == 2.0


@pytest.mark.parametrize("prediction_type", ["epsilon", "v_prediction"])
def test_training_target_follows_the_cosine_schedule(prediction_type):
    diffusion = Diffusion(prediction_type=prediction_type)
    x0, noise = torch.randn(2, 3, 2, 4, 4), torch.randn(2, 3, 2, 4, 4)
    t = torch.tensor([0, 999])
    x_t, target = diffusion.noisy_input_and_target(x0, noise, t)
    alpha_bar = diffusion.train_scheduler.alphas_cumprod[t].view(-1, 1, 1, 1, 1)
    assert torch.allclose(x_t, alpha_bar.sqrt() * x0 + (1 - alpha_bar).sqrt() * noise, atol=1e-5)
    expected = noise if prediction_type == "epsilon" else (
        alpha_bar.sqrt() * noise - (1 - alpha_bar).sqrt() * x0)
    assert torch.allclose(target, expected, atol=1e-5)
    assert alpha_bar[0] > 0.99 and alpha_bar[1] < 1e-3  # clean at t=0, pure noise at the end


def test_unknown_prediction_type_is_rejected():
    with pytest.raises(ValueError, match="x0"):
        Diffusion(prediction_type="x0")


def test_ddim_sampling_with_an_oracle_recovers_the_data():
    """A denoiser that knows x0 exactly must lead DDIM back to x0."""
    diffusion = Diffusion(prediction_type="epsilon")
    x0 = torch.rand(1, 3, 2, 4, 4) * 1.6 - 0.8
    alphas = diffusion.train_scheduler.alphas_cumprod

    def oracle(x_t, t):  # the noise that turns x0 into x_t
        a = alphas[t].view(-1, 1, 1, 1, 1)
        return (x_t - a.sqrt() * x0) / (1 - a).sqrt()

    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    sample = diffusion.sample(oracle, noise, steps=10)
    assert torch.allclose(sample, x0, atol=1e-3)



@pytest.mark.parametrize("gamma", [1.0, 5.0])
def test_min_snr_weighting_is_the_same_x0_weighting_for_epsilon_and_v(gamma):
    """min-SNR-gamma weighs the x0 error by min(SNR, gamma), whatever the network predicts: the
    weighted epsilon error and the weighted v error of one wrong x0 estimate agree."""
    torch.manual_seed(0)
    x0, noise = torch.rand(6, 3, 2, 4, 4) * 2 - 1, torch.randn(6, 3, 2, 4, 4)
    t = torch.tensor([0, 50, 300, 600, 900, 999])
    x0_hat = x0 + 0.1 * torch.randn_like(x0)
    weighted = {}
    for kind in ("epsilon", "v_prediction"):
        diffusion = Diffusion(prediction_type=kind, snr_gamma=gamma)
        x_t, target = diffusion.noisy_input_and_target(x0, noise, t)
        a = diffusion.train_scheduler.alphas_cumprod[t].view(-1, 1, 1, 1, 1)
        eps_hat = (x_t - a.sqrt() * x0_hat) / (1 - a).sqrt()  # the epsilon that implies x0_hat
        prediction = eps_hat if kind == "epsilon" else a.sqrt() * eps_hat - (1 - a).sqrt() * x0_hat
        errors = (prediction - target).square().flatten(1).mean(1)
        weighted[kind] = diffusion.loss_weights(t) * errors
    snr = diffusion.train_scheduler.alphas_cumprod[t] / (1 - diffusion.train_scheduler.alphas_cumprod[t])
    x0_errors = (x0_hat - x0).square().flatten(1).mean(1)
    assert torch.allclose(weighted["epsilon"], weighted["v_prediction"], rtol=1e-3)
    assert torch.allclose(weighted["v_prediction"], snr.clamp(max=gamma) * x0_errors, rtol=1e-3)


def test_without_snr_gamma_every_timestep_weighs_one():
    assert torch.equal(Diffusion().loss_weights(torch.tensor([0, 999])), torch.ones(2))
    with pytest.raises(ValueError, match="snr_gamma"):
        Diffusion(snr_gamma=0)


def test_logit_normal_timesteps_favour_mid_noise_and_follow_the_generator():
    def draw(kind, seed=0):
        return Diffusion(timestep_sampling=kind).sample_timesteps(
            20000, torch.device("cpu"), torch.Generator().manual_seed(seed))
    uniform, logit_normal = draw("uniform"), draw("logit_normal")
    mid = lambda t: ((t >= 300) & (t < 700)).float().mean().item()  # noqa: E731
    assert abs(mid(uniform) - 0.4) < 0.02 and abs(mid(logit_normal) - 0.60) < 0.02
    assert logit_normal.min() >= 0 and logit_normal.max() <= 999
    assert torch.equal(logit_normal, draw("logit_normal")) and not torch.equal(logit_normal, draw("logit_normal", 1))
