"""The fast path (text2sign/perf.py) computes what the plain path computes."""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import pytest
import pytorch_lightning as pl
import torch
import torch.nn.functional as F
from hydra.utils import instantiate
from omegaconf import OmegaConf
from pytorch_lightning.plugins.precision import MixedPrecision

from text2sign.data.synthetic import SyntheticSignDataset
from text2sign.models import unet3d
from text2sign.module import to_model_range
from text2sign.perf import FastPath
from text2sign.run.job import build_module
from text2sign.rundir.record import plain as plain_data

PLAIN = [f"perf.{key}={value}" for key, value in dataclasses.asdict(FastPath()).items()]
# every switch on; aot_eager runs dynamo and AOT autograd (the checkpointing graph) without
# inductor's code generation, which takes minutes on a CPU (the slow test below runs it)
FAST = ["perf.compile=true", "perf.compile_backend=aot_eager", "perf.gradient_checkpointing=true",
        "perf.channels_last=true", "perf.fused_optimizer=true"]


def batch_and_noise(n: int = 4):
    data = SyntheticSignDataset("train", num_clips=n, num_frames=4, image_size=8)
    items = [data[i] for i in range(n)]
    x0 = to_model_range(torch.stack([i["video"] for i in items]))
    generator = torch.Generator().manual_seed(0)
    noise = torch.randn(x0.shape, generator=generator)
    t = torch.randint(0, 1000, (n,), generator=generator)
    return x0, [i["caption"] for i in items], t, noise


def twin_modules(tiny_config, fast: list[str], plain: list[str] = PLAIN):
    """(fast, plain) modules with the same weights; the fast one loads the plain state_dict.
    Both are configured (compiled) as Lightning's fit would."""
    torch.manual_seed(0)
    reference = build_module(tiny_config(*plain))
    with torch.no_grad():  # zero-initialised layers would leave every gradient but the head's 0
        for p in reference.denoiser.parameters():
            if not p.any():
                p.normal_(std=0.1)
    candidate = build_module(tiny_config(*fast))
    for module in (reference, candidate):
        module.configure_model()
    assert list(candidate.state_dict()) == list(reference.state_dict())  # no _orig_mod. keys
    candidate.load_state_dict(reference.state_dict())
    return candidate, reference


def one_training_step(module, x0, captions, t, noise):
    optimizer = module.configure_optimizers()["optimizer"]
    for group in optimizer.param_groups:
        # the warm-up schedule starts at lr 0; an eps above the rounding noise of the
        # gradients keeps Adam's first step (g / |g|) from turning 1e-9 into +-lr
        group.update(lr=1e-3, eps=1e-5)
    loss = module.diffusion_loss(x0, captions, t, noise)
    loss.backward()
    grads = {n: p.grad.clone() for n, p in module.denoiser.named_parameters()}
    optimizer.step()
    return loss.detach(), grads, {n: p.detach().clone() for n, p in module.denoiser.named_parameters()}


def gradient_norm(module) -> torch.Tensor:
    return torch.nn.utils.get_total_norm([p.grad for p in module.parameters() if p.grad is not None])


def assert_close_dicts(a: dict, b: dict, **tolerance) -> None:
    assert a.keys() == b.keys()
    for name, value in a.items():
        torch.testing.assert_close(value, b[name], msg=name, **tolerance)


@pytest.mark.slow  # over 10 s: the default suite keeps under 5 minutes
def test_fast_path_equals_the_plain_path_in_training_and_sampling(tiny_config):
    fast, plain = twin_modules(tiny_config, FAST)
    assert fast.denoiser.gradient_checkpointing and fast.denoiser.memory_format is torch.channels_last_3d
    assert fast.denoiser.compiled and not plain.denoiser.compiled
    assert next(fast.denoiser.stem.parameters()).is_contiguous(memory_format=torch.channels_last_3d)
    assert fast.configure_optimizers()["optimizer"].defaults["fused"] is True
    inputs = batch_and_noise()
    before = {n: p.detach().clone() for n, p in plain.denoiser.named_parameters()}
    loss_f, grads_f, weights_f = one_training_step(fast, *inputs)
    loss_p, grads_p, weights_p = one_training_step(plain, *inputs)
    torch.testing.assert_close(loss_f, loss_p, rtol=1e-5, atol=1e-6)
    assert_close_dicts(grads_f, grads_p, rtol=1e-4, atol=1e-6)
    # within 1% of one step (lr 1e-3): biases before a GroupNorm get ~1e-8 gradients (rounding
    # noise) that Adam scales up to a visible step
    assert_close_dicts(weights_f, weights_p, rtol=0, atol=1e-5)
    assert all((weights_p[n] != before[n]).any() for n in before)  # every weight was updated

    # one sampling step, at the batch size compiled above (a new size would recompile)
    _, captions, t, noise = inputs
    context, mask = plain.text_encoder(captions)
    with torch.no_grad():
        expected = plain.eval().denoiser(noise, t, context, mask)
        actual = fast.eval().denoiser(noise, t, context, mask)
    torch.testing.assert_close(actual, expected, rtol=1e-5, atol=1e-5)
    diff = (fast.sample(captions, steps=1, guidance_scale=1.0).int()
            - plain.sample(captions, steps=1, guidance_scale=1.0).int())
    assert diff.abs().max() <= 1  # uint8 rounding at most


def test_bf16_mixed_on_cpu_is_close_to_fp32(tiny_config):
    bf16, fp32 = twin_modules(tiny_config, ["trainer.precision=bf16-mixed"])
    assert bf16.denoiser.autocast_dtype is torch.bfloat16 and fp32.denoiser.autocast_dtype is None
    inputs = batch_and_noise()
    loss_b, grads_b, _ = one_training_step(bf16, *inputs)
    loss_f, grads_f, _ = one_training_step(fp32, *inputs)
    assert loss_b != loss_f  # bf16 really ran
    torch.testing.assert_close(loss_b, loss_f, rtol=2e-2, atol=1e-3)
    flat_b, flat_f = (torch.cat([g.flatten() for g in grads.values()]) for grads in (grads_b, grads_f))
    cosine = F.cosine_similarity(flat_b, flat_f, dim=0)
    assert cosine > 0.99, cosine


def test_norms_and_timestep_embedding_stay_fp32_under_bf16_autocast():
    norm = unet3d.GroupNorm32(4, 8)
    x = torch.randn(2, 8, 2, 4, 4).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = norm(x)
    assert y.dtype == torch.bfloat16
    torch.testing.assert_close(y, F.group_norm(x.float(), 4, norm.weight, norm.bias).bfloat16())

    model = unet3d.UNet3D(context_dim=8, base_channels=8, num_heads=2)
    dtypes = []
    model.time_mlp.register_forward_hook(lambda m, i, out: dtypes.append(out.dtype))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(torch.randn(1, 3, 2, 4, 4), torch.tensor([5]), torch.randn(1, 3, 8),
                    torch.ones(1, 3, dtype=torch.bool))
    assert dtypes == [torch.float32] and out.dtype == torch.bfloat16


def test_cross_attention_drops_the_mask_without_padding(monkeypatch):
    masks, kernel = [], F.scaled_dot_product_attention

    def sdpa(q, k, v, attn_mask=None):
        masks.append(attn_mask)
        return kernel(q, k, v, attn_mask=attn_mask)

    monkeypatch.setattr(unet3d.F, "scaled_dot_product_attention", sdpa)
    model = unet3d.UNet3D(context_dim=8, base_channels=8, num_heads=2)
    blocks = sum(isinstance(m, unet3d.TransformerBlock) for m in model.modules())
    x, t, context = torch.randn(2, 3, 2, 4, 4), torch.tensor([1, 2]), torch.randn(2, 3, 8)
    model(x, t, context, None)  # the text encoder's answer when no caption is padded
    assert masks and all(m is None for m in masks)  # flash-eligible everywhere
    masks.clear()
    model(x, t, context, torch.tensor([[True, True, False], [True, True, True]]))
    assert sum(m is not None for m in masks) == blocks  # the cross-attentions only


class CountingBackend:
    """A torch.compile backend that runs each graph as traced, counting graphs and their runs."""

    def __init__(self):
        self.graphs, self.runs = 0, 0

    def __call__(self, graph, example_inputs):
        self.graphs += 1

        def run(*args):
            self.runs += 1
            return graph.forward(*args)
        return run


def small_unet(**kwargs) -> unet3d.UNet3D:
    torch.manual_seed(0)
    return unet3d.UNet3D(context_dim=8, base_channels=8, channel_mults=(1, 2), num_res_blocks=1,
                         attention_levels=(1,), num_heads=2, **kwargs)


@pytest.mark.slow  # over 10 s: the default suite keeps under 5 minutes
def test_regional_compile_runs_every_block_compiled_and_train_val_sampling_share_graphs():
    """Each residual and transformer block is compiled (not the whole network), with no graph
    break (gradient checkpointing and a padding mask included), blocks of one shape share their
    graphs, and after one round of training, validation and sampling at their batch sizes, a
    second round compiles nothing: no phase recompiles another's."""
    model, backend = small_unet(gradient_checkpointing=True), CountingBackend()
    model.compile(backend=backend)
    torch._dynamo.utils.counters.clear()
    blocks = model.blocks()
    context = torch.randn(8, 3, 8)
    padded = torch.tensor([[True, True, False], [True, True, True]])

    def one_round():
        model.train()
        model(torch.randn(2, 3, 2, 8, 8), torch.tensor([1, 2]), context[:2], padded).sum().backward()
        model.eval()
        with torch.no_grad():
            for batch in (2, 8, 3, 1):  # validation, guided sampling, evaluation, one clip
                model(torch.randn(batch, 3, 2, 8, 8), torch.arange(batch), context[:batch], None)

    one_round()
    graphs, runs = backend.graphs, backend.runs
    shapes = {unet3d.block_shape(block) for block in blocks}
    assert len(shapes) < len(blocks)  # some blocks share a shape: their graphs are shared
    # per shape: training, inference, inference at batch 1: within the cache UNet3D.compile sizes
    assert graphs <= 4 * len(shapes) <= torch._dynamo.config.recompile_limit
    one_round()
    assert backend.graphs == graphs  # nothing recompiled
    # every block of the 5 passes ran compiled (a checkpointed training pass: twice)
    assert backend.runs - runs >= 5 * len(blocks)
    assert not torch._dynamo.utils.counters["graph_break"]


@pytest.mark.slow
def test_inductor_compile_with_checkpointing_trains_like_eager(tiny_config):
    """The real GPU path's compiler (inductor) on the CPU: minutes of compilation."""
    fast, plain = twin_modules(tiny_config, ["perf.compile=true", "perf.compile_backend=inductor",
                                             "perf.gradient_checkpointing=true"])
    inputs = batch_and_noise()
    loss_f, grads_f, _ = one_training_step(fast, *inputs)
    loss_p, grads_p, _ = one_training_step(plain, *inputs)
    torch.testing.assert_close(loss_f, loss_p, rtol=1e-4, atol=1e-5)
    assert_close_dicts(grads_f, grads_p, rtol=1e-3, atol=1e-5)


def test_bad_switch_values_fail_with_the_key(tiny_config):
    with pytest.raises(ValueError, match=r"perf.compile='maybe': use auto, true or false"):
        build_module(tiny_config("perf.compile=maybe"))
    assert FastPath(fused_optimizer="auto").on("fused_optimizer", auto=True) is True
    assert FastPath(fused_optimizer=False).on("fused_optimizer", auto=True) is False


def test_configure_model_compiles_once_and_no_perf_is_the_plain_path(tiny_config):
    module = build_module(tiny_config("perf.compile=true", "perf.compile_backend=aot_eager"))
    assert not module.denoiser.compiled  # Lightning's configure_model compiles, not the build
    module.configure_model()
    compiled = [block._compiled_call_impl for block in module.denoiser.blocks()]
    module.configure_model()  # Lightning calls it again for validate: nothing changes
    assert module.denoiser.compiled and all(compiled)
    assert [block._compiled_call_impl for block in module.denoiser.blocks()] == compiled
    assert module.denoiser.context_multiple == unet3d.CONTEXT_MULTIPLE
    saved = plain_data(tiny_config())  # as a checkpoint stores it
    del saved["perf"]  # one written before the fast path existed
    plain = build_module(OmegaConf.create(saved))
    plain.configure_model()
    assert plain.fast_path == FastPath() and not plain.denoiser.compiled


def test_fused_optimizer_auto_is_off_on_cpu_and_rejected_where_unsupported(tiny_config):
    module = build_module(tiny_config())
    assert not module.configure_optimizers()["optimizer"].defaults["fused"]
    with pytest.raises(ValueError, match="no fused kernel"):
        FastPath(fused_optimizer=True).optimizer_options(torch.optim.Adadelta, [torch.zeros(1)])


@pytest.mark.parametrize("precision", ["bf16-mixed", "32-true"])
def test_fused_adamw_clips_gradients_under_lightning_amp(tiny_config, precision):
    """scale=full's recipe on a GPU: bf16-mixed, fused AdamW (auto) and gradient clipping.
    Lightning's AMP plugin refuses to clip for a fused optimizer; the module clips itself."""
    clip = 1e-3  # far under the gradient norm of a first step

    class GradientNorm(pl.Callback):
        def on_train_batch_end(self, trainer, pl_module, *args):  # before the next zero_grad
            self.norm = gradient_norm(pl_module)

    cfg = tiny_config(f"trainer.precision={precision}", "perf.fused_optimizer=true")
    module, norm = build_module(cfg), GradientNorm()
    trainer = pl.Trainer(max_steps=1, precision=precision, gradient_clip_val=clip,
                         callbacks=[norm], logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, datamodule=instantiate(cfg.data))
    assert trainer.optimizers[0].defaults["fused"] is True
    assert 0 < norm.norm <= clip * 1.001


def test_fused_adamw_under_fp16_unscales_before_clipping(tiny_config, monkeypatch):
    """16-mixed (a GPU's GradScaler; here the CPU's): the gradients are unscaled, then clipped,
    and the scaler's step does not unscale them a second time."""
    module = build_module(tiny_config("perf.fused_optimizer=true"))
    optimizer = torch.optim.AdamW(module.parameters(), lr=0.0, fused=True)
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**10)
    plugin = MixedPrecision("16-mixed", "cpu", scaler)
    monkeypatch.setattr(type(module), "trainer", property(lambda self: SimpleNamespace(precision_plugin=plugin)))
    x0, captions, t, noise = batch_and_noise()
    scaler.scale(module.diffusion_loss(x0, captions, t, noise)).backward()
    module.configure_gradient_clipping(optimizer, gradient_clip_val=1e-3, gradient_clip_algorithm="norm")
    assert 0 < gradient_norm(module) <= 1e-3 * 1.001
    with pytest.raises(RuntimeError, match="already been called"):
        scaler.unscale_(optimizer)  # unscaled before the clipping: step() will not unscale again
    scaler.step(optimizer)


def test_padding_the_text_tokens_for_compilation_changes_nothing():
    torch.manual_seed(0)
    model = unet3d.UNet3D(context_dim=8, base_channels=8, num_heads=2).eval()
    x, t, context = torch.randn(2, 3, 2, 4, 4), torch.tensor([1, 2]), torch.randn(2, 3, 8)
    mask = torch.tensor([[True, True, False], [True, True, True]])
    with torch.no_grad():
        expected = model(x, t, context, mask)
        model.context_multiple = unet3d.CONTEXT_MULTIPLE
        torch.testing.assert_close(model(x, t, context, mask), expected, rtol=1e-5, atol=1e-6)
