"""The denoiser and the diffusion wrapper."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F

from text2sign.callbacks.step_cost import flop_counter
from text2sign.models import unet3d
from text2sign.models.diffusion import Diffusion
from text2sign.models.unet3d import (
    AttentionTooLarge,
    JointTransformerBlock,
    ResBlock,
    TransformerBlock,
    UNet3D,
    masked_mean,
)

ARCHITECTURES = [dict(attention=a, conv=c) for a, c in itertools.product(("factorised", "full"),
                                                                          repeat=2)]


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


@pytest.mark.parametrize("architecture", ARCHITECTURES)
def test_output_has_the_input_shape_and_every_weight_learns(architecture):
    model = tiny_unet(**architecture).train()
    x, t, context, mask = inputs()
    out = model(x, t, context, mask)
    assert out.shape == x.shape
    out.square().mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())


@pytest.mark.parametrize("attention", ["factorised", "full"])
def test_masked_text_tokens_are_ignored(attention):
    model = tiny_unet(attention=attention)
    x, t, context, mask = inputs()
    changed = context.clone()
    changed[0, 3:] = 100.0  # padding of sample 0
    assert torch.allclose(model(x, t, context, mask), model(x, t, changed, mask), atol=1e-5)
    changed[0, 0] = 100.0  # a real token
    assert not torch.allclose(model(x, t, context, mask)[0], model(x, t, changed, mask)[0])


@pytest.mark.parametrize("settings", [dict(temporal_attention=True), dict(temporal_attention=False),
                                      dict(attention="full"), dict(conv="full")])
def test_frames_exchange_information(settings):
    model = tiny_unet(**settings)
    x, t, context, mask = inputs()
    changed = x.clone()
    changed[:, :, -1] += 1.0  # only the last frame
    difference = (model(x, t, context, mask) - model(changed, t, context, mask)).abs()
    assert difference[:, :, 0].max() > 1e-4  # the first frame sees it


def test_the_architectures_differ_where_they_should():
    def blocks(model, kind):
        return sum(isinstance(m, kind) for m in model.modules())
    full, factorised = tiny_unet(attention="full", conv="full"), tiny_unet()
    assert blocks(full, JointTransformerBlock) == blocks(factorised, TransformerBlock) == 7
    assert blocks(full, TransformerBlock) == blocks(factorised, JointTransformerBlock) == 0
    kernels = {m.kernel_size for m in full.modules() if isinstance(m, torch.nn.Conv3d)}
    assert kernels == {(3, 3, 3), (1, 1, 1)}  # 3x3x3 everywhere; 1x1x1: the skip projections
    assert all(m.temporal is None for m in full.modules() if isinstance(m, ResBlock))


def test_joint_attention_on_one_frame_is_spatial_attention():
    torch.manual_seed(0)
    spatial, joint = TransformerBlock(8, 12, 2, temporal_attention=False), JointTransformerBlock(8, 12, 2)
    renamed = {k.replace("spatial", "joint"): v for k, v in spatial.state_dict().items()}
    joint.load_state_dict(renamed)
    _, _, context, mask = inputs()
    x = torch.randn(2, 8, 1, 4, 4)
    assert torch.allclose(joint(x, context, mask), spatial(x, context, mask), atol=1e-6)
    x = torch.randn(2, 8, 3, 4, 4)  # more frames: the joint attention mixes them, spatial not
    assert not torch.allclose(joint(x, context, mask), spatial(x, context, mask), atol=1e-3)


def test_joint_attention_is_one_softmax_over_every_token_of_the_clip():
    torch.manual_seed(0)
    block = JointTransformerBlock(8, 12, 2)
    x = torch.randn(2, 8, 3, 4, 4)
    seen = {}
    block.joint.register_forward_hook(lambda m, args, out: seen.update(inp=args[0], out=out))
    block(x, *inputs()[2:])
    tokens = seen["inp"]  # (B, T*H*W, C): every token of the clip at once
    assert tokens.shape == (2, 3 * 4 * 4, 8)
    q, k, v = block.joint.to_q(tokens), *block.joint.to_kv(tokens).chunk(2, dim=-1)
    heads = [slice(0, 4), slice(4, 8)]
    by_hand = torch.cat([F.softmax(q[..., h] @ k[..., h].transpose(1, 2) / 2, -1) @ v[..., h]
                         for h in heads], dim=-1)  # scale 1/sqrt(head dim 4)
    assert torch.allclose(seen["out"], block.joint.out(by_hand), atol=1e-5)


def test_attention_flops_are_counted_on_a_cpu():
    """scaled_dot_product_attention runs its own flash kernel on a CPU, which torch's counter
    misses: counted as the CUDA kernels are, 4bhn^2d forward, 10bhn^2d backward (with the
    scores recomputed)."""
    q = torch.randn(2, 2, 16, 4, requires_grad=True)
    with flop_counter() as counter:
        F.scaled_dot_product_attention(q, q, q).sum().backward()
    assert counter.get_total_flops() == (4 + 10) * 2 * 2 * 16 ** 2 * 4


def test_a_3x3x3_residual_block_with_one_frame_tap_is_the_factorised_block():
    """A (2+1)D block without temporal mixing (its temporal convolution starts at zero) equals
    the 3x3x3 block whose kernels are the 3x3 ones at the middle frame tap."""
    torch.manual_seed(0)
    factorised, full = ResBlock(4, 8, 16), ResBlock(4, 8, 16, conv="full")
    state = factorised.state_dict()
    for name in ("conv1.weight", "conv2.weight"):
        state[name] = torch.randn_like(state[name])
        kernel = torch.zeros(full.state_dict()[name].shape)
        kernel[:, :, 1] = state[name][:, :, 0]
        full.state_dict()[name].copy_(kernel)
    factorised.load_state_dict(state)
    full.load_state_dict({k: v for k, v in state.items() if not k.startswith(("norm_t", "temporal"))}
                         | {n: full.state_dict()[n] for n in ("conv1.weight", "conv2.weight")})
    x, emb = torch.randn(2, 4, 3, 6, 6), torch.randn(2, 16)
    assert torch.allclose(full(x, emb), factorised(x, emb), atol=1e-5)


def test_joint_attention_that_cannot_fit_fails_before_it_runs(monkeypatch):
    model = tiny_unet(attention="full")
    x, t, context, mask = inputs()
    # the fused kernels never build the matrix: nothing to check, whatever the memory
    monkeypatch.setattr(unet3d, "available_memory", lambda device: 0)
    assert model(x, t, context, mask).shape == x.shape
    monkeypatch.setattr(unet3d, "materialises_attention", lambda *args: True)
    monkeypatch.setattr(unet3d, "available_memory", lambda device: 2 * (2 * 2 * 256 ** 2 * 4) - 1)
    with pytest.raises(AttentionTooLarge, match=r"data.image_size.*data.num_frames.*attention=factorised"):
        model(x, t, context, mask)  # two 256-token matrices (batch 2, 2 heads, fp32) do not fit
    monkeypatch.setattr(unet3d, "available_memory", lambda device: 2 * (2 * 2 * 256 ** 2 * 4))
    assert model(x, t, context, mask).shape == x.shape
    with pytest.raises(ValueError, match="temporal_attention=true or model.denoiser.attention=factorised"):
        tiny_unet(attention="full", temporal_attention=False)


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


@pytest.mark.parametrize(("kind", "gamma", "expected"), [
    ("epsilon", 5.0, [5 / 9999, 5 / 48.756195]),
    ("v_prediction", 5.0, [5 / 10000, 5 / 49.756195]),
    ("epsilon", 100.0, [100 / 9999, 1.0]),
    ("v_prediction", 100.0, [100 / 10000, 48.756195 / 49.756195]),
])
def test_min_snr_weights_by_hand(kind, gamma, expected):
    """Two linear-schedule steps, betas 1e-4 and 0.02: alpha_bar 0.9999 and 0.9999 * 0.98, SNR
    = alpha_bar / (1 - alpha_bar) = 9999 and 48.756195; the weight is min(SNR, gamma) / SNR
    for epsilon and min(SNR, gamma) / (SNR + 1) for v (diffusers' train_text_to_image.py)."""
    diffusion = Diffusion(num_train_timesteps=2, beta_schedule="linear", prediction_type=kind,
                          snr_gamma=gamma)
    weights = diffusion.loss_weights(torch.tensor([0, 1]))
    # rtol: 1 - alpha_bar at t=0 keeps 3-4 digits in float32
    assert torch.allclose(weights, torch.tensor(expected), rtol=1e-3)


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
