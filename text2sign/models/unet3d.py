"""A 3D UNet denoiser for video diffusion, factorised in space and time by default.

Factorised (the default), space and time are handled by separate layers, so the cost grows
linearly with the number of frames: every residual block is a (2+1)D block (a 3x3 convolution
within each frame, then a 3-tap convolution across frames), and every transformer block attends
within each frame, cross-attends to the text tokens, then attends across frames at each pixel.
The two ablations of this design (`attention`, `conv`): one joint self-attention over all
T*H*W tokens of a block, and full 3x3x3 convolutions (the "UNet3D baseline").

Tensors are (B, C, T, H, W) throughout; attention runs on (batch, tokens, channels).
Under bf16 autocast the norms and the timestep/text embedding MLPs still run in fp32 (their
statistics and the sinusoids lose too much in bf16); everything else runs in bf16.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from enum import Enum
from typing import Any

import psutil
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

CONTEXT_MULTIPLE = 8  # text tokens are padded to a multiple of this for a compiled network
GIB = 1024**3


class AttentionKind(str, Enum):
    """Self-attention of a transformer block: within each frame, then across frames at each
    pixel (factorised), or one joint attention over all T*H*W tokens (full)."""

    factorised = "factorised"
    full = "full"


class ConvKind(str, Enum):
    """Convolutions: 3x3 within each frame plus a 3-tap one across frames in each residual
    block ((2+1)D, factorised), or 3x3x3 everywhere (full: the UNet3D baseline)."""

    factorised = "factorised"
    full = "full"


class AttentionTooLarge(ValueError):
    """A joint attention whose attention matrices cannot fit in the memory available."""


def sinusoidal_embedding(positions: torch.Tensor, dim: int) -> torch.Tensor:
    """(N,) positions (timesteps or frame indices) -> (N, dim) sin/cos features, in fp32."""
    half = dim // 2
    freqs = torch.exp(-math.log(10_000) * torch.arange(half, device=positions.device) / half)
    angles = positions.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


def fp32(device_type: str) -> torch.autocast:
    """A region where autocast is off, so that the ops inside run in fp32."""
    return torch.autocast(device_type, enabled=False)


class GroupNorm32(nn.GroupNorm):
    """GroupNorm computed in fp32 and cast back to the input's dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return in_fp32(super().forward, x)


class LayerNorm32(nn.LayerNorm):
    """LayerNorm computed in fp32 and cast back to the input's dtype."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return in_fp32(super().forward, x)


def in_fp32(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    if x.dtype == torch.float32 and not torch.is_autocast_enabled(x.device.type):
        return fn(x)  # already fp32: skip the context and casts (the plain path's speed)
    with fp32(x.device.type):
        return fn(x.float()).to(x.dtype)


def group_norm(channels: int) -> nn.GroupNorm:
    return GroupNorm32(math.gcd(32, channels), channels)


def memory_format_of(x: torch.Tensor) -> torch.memory_format:
    """channels_last_3d for a tensor laid out that way (perf.channels_last), else contiguous."""
    if not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last_3d):
        return torch.channels_last_3d
    return torch.contiguous_format


def spatial_conv(in_ch: int, out_ch: int, stride: int = 1,
                 conv: ConvKind = ConvKind.factorised) -> nn.Conv3d:
    """A 3x3 convolution within each frame, or 3x3x3 (conv=full); frames are never strided."""
    frames = 3 if conv == ConvKind.full else 1
    return nn.Conv3d(in_ch, out_ch, (frames, 3, 3), stride=(1, stride, stride),
                     padding=(frames // 2, 1, 1))


def zero_init(module: nn.Module) -> nn.Module:
    """Zero the last layer of a residual branch so the branch starts as the identity."""
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """Residual block conditioned on the time (and pooled text) embedding: (2+1)D, or with
    3x3x3 convolutions and no separate temporal one (conv=full)."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float = 0.0,
                 conv: ConvKind = ConvKind.factorised):
        super().__init__()
        self.norm1 = group_norm(in_ch)
        self.conv1 = spatial_conv(in_ch, out_ch, conv=conv)
        self.emb = nn.Linear(emb_dim, 2 * out_ch)  # per-channel scale and shift
        self.norm2 = group_norm(out_ch)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = zero_init(spatial_conv(out_ch, out_ch, conv=conv))
        self.norm_t = self.temporal = None
        if conv == ConvKind.factorised:
            self.norm_t = group_norm(out_ch)
            self.temporal = zero_init(nn.Conv3d(out_ch, out_ch, (3, 1, 1), padding=(1, 0, 0)))
        self.skip = nn.Conv3d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.emb(F.silu(emb))[:, :, None, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        if self.temporal is not None:
            h = h + self.temporal(F.silu(self.norm_t(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    """Multi-head attention through PyTorch's fused scaled-dot-product kernel.

    `mask` (B, L) marks the context tokens that may be attended to (True = real token); None
    (no padding) lets PyTorch pick the flash kernel, which takes no mask.
    """

    def __init__(self, dim: int, num_heads: int, context_dim: int | None = None):
        super().__init__()
        self.num_heads = num_heads
        self.to_q = nn.Linear(dim, dim, bias=False)
        self.to_kv = nn.Linear(context_dim or dim, 2 * dim, bias=False)
        self.out = nn.Linear(dim, dim)

    def forward(
        self,
        x: torch.Tensor,
        context: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        context = x if context is None else context
        q = self._heads(self.to_q(x))
        k, v = (self._heads(t) for t in self.to_kv(context).chunk(2, dim=-1))
        attn_mask = None if mask is None else mask[:, None, None, :]
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
        return self.out(y.transpose(1, 2).flatten(2))

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        b, n, d = t.shape
        return t.view(b, n, self.num_heads, d // self.num_heads).transpose(1, 2)


def feed_forward(dim: int) -> nn.Sequential:
    """The transformer blocks' MLP: 4x wide, GELU."""
    return nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))


class TransformerBlock(nn.Module):
    """Spatial self-attention, text cross-attention, temporal self-attention, MLP."""

    def __init__(self, dim: int, context_dim: int, num_heads: int, temporal_attention: bool):
        super().__init__()
        self.norm_spatial = LayerNorm32(dim)
        self.spatial = Attention(dim, num_heads)
        self.norm_cross = LayerNorm32(dim)
        self.cross = Attention(dim, num_heads, context_dim)
        self.norm_temporal = LayerNorm32(dim) if temporal_attention else None
        self.temporal = Attention(dim, num_heads) if temporal_attention else None
        self.norm_mlp = LayerNorm32(dim)
        self.mlp = feed_forward(dim)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        b, c, t, h, w = x.shape
        # tokens of one frame: (B*T, H*W, C)
        s = x.permute(0, 2, 3, 4, 1).reshape(b * t, h * w, c)
        s = s + self.spatial(self.norm_spatial(s))
        ctx = context.repeat_interleave(t, dim=0)
        ctx_mask = None if mask is None else mask.repeat_interleave(t, dim=0)
        s = s + self.cross(self.norm_cross(s), ctx, ctx_mask)
        # tokens of one pixel across time: (B*H*W, T, C)
        s = s.view(b, t, h * w, c).transpose(1, 2).reshape(b * h * w, t, c)
        if self.temporal is not None:
            frame_pos = sinusoidal_embedding(torch.arange(t, device=x.device), c).to(s.dtype)
            s = s + self.temporal(self.norm_temporal(s) + frame_pos)
        s = s + self.mlp(self.norm_mlp(s))
        # back to frame-major order: (B, C, T, H, W) in the input's memory format
        s = s.view(b, h * w, t, c).transpose(1, 2).reshape(b, t, h, w, c)
        return s.permute(0, 4, 1, 2, 3).contiguous(memory_format=memory_format_of(x))


class JointTransformerBlock(nn.Module):
    """Self-attention over all T*H*W tokens of the video at once, text cross-attention, MLP.

    Each token's frame is added to the attention's input as a sinusoid relative to the first
    frame (zero there), so a one-frame clip attends exactly as TransformerBlock's spatial
    attention with the same weights does.
    """

    def __init__(self, dim: int, context_dim: int, num_heads: int):
        super().__init__()
        self.norm_joint = LayerNorm32(dim)
        self.joint = Attention(dim, num_heads)
        self.norm_cross = LayerNorm32(dim)
        self.cross = Attention(dim, num_heads, context_dim)
        self.norm_mlp = LayerNorm32(dim)
        self.mlp = feed_forward(dim)

    def forward(
        self, x: torch.Tensor, context: torch.Tensor, mask: torch.Tensor | None
    ) -> torch.Tensor:
        b, c, t, h, w = x.shape
        s = x.permute(0, 2, 3, 4, 1).reshape(b, t * h * w, c)  # frame-major tokens
        frames = torch.arange(t, device=x.device)
        offset = sinusoidal_embedding(frames, c) - sinusoidal_embedding(frames[:1], c)
        s = s + self.joint(self.norm_joint(s) + offset.to(s.dtype).repeat_interleave(h * w, 0))
        s = s + self.cross(self.norm_cross(s), context, mask)
        s = s + self.mlp(self.norm_mlp(s))
        s = s.view(b, t, h, w, c).permute(0, 4, 1, 2, 3)
        return s.contiguous(memory_format=memory_format_of(x))


class Downsample(nn.Module):
    """Halve height and width; frames are kept."""

    def __init__(self, ch: int, conv: ConvKind = ConvKind.factorised):
        super().__init__()
        self.conv = spatial_conv(ch, ch, stride=2, conv=conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, ch: int, conv: ConvKind = ConvKind.factorised):
        super().__init__()
        self.conv = spatial_conv(ch, ch, conv=conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=(1, 2, 2), mode="nearest"))


class Stage(nn.Module):
    """A residual block, optionally followed by a transformer block."""

    def __init__(self, in_ch, out_ch, emb_dim, dropout, conv: ConvKind,
                 attention: TransformerBlock | JointTransformerBlock | None):
        super().__init__()
        self.res = ResBlock(in_ch, out_ch, emb_dim, dropout, conv)
        self.attn = attention

    def forward(self, x, emb, context, mask):
        x = self.res(x, emb)
        return x if self.attn is None else self.attn(x, context, mask)


def size_divisor(channel_mults: Sequence[int]) -> int:
    """What the frame size must be a multiple of: every level but the last halves it."""
    return 2 ** (len(channel_mults) - 1)


class UNet3D(nn.Module):
    """Predicts the diffusion target (noise or velocity) of a noisy video.

    Args:
        context_dim: hidden size of the text encoder's token features.
        base_channels: width of the first level; level i has base_channels * channel_mults[i].
        channel_mults: one entry per resolution level; every level but the last halves H and W.
        num_res_blocks: residual blocks per level on the way down (one more on the way up).
        attention_levels: levels (0 = full resolution) that get transformer blocks; the
            middle block always has one, so the text is always attended to.
        temporal_attention: attend across frames in the transformer blocks of
            attention=factorised (temporal convolutions in the residual blocks are always on).
        attention: "factorised" (self-attention within each frame, then across frames at each
            pixel) or "full" (one joint self-attention over all T*H*W tokens of a block).
        conv: "factorised" ((2+1)D residual blocks) or "full" (3x3x3 convolutions everywhere).
        gradient_checkpointing, channels_last: the fast path's (perf.*): recompute each stage
            in backward; channels_last_3d weights and activations.
        autocast_dtype: autocast to this dtype when the caller has not (sampling outside
            Lightning's precision plugin); None: the caller's precision.
    """

    def __init__(
        self,
        context_dim: int,
        in_channels: int = 3,
        base_channels: int = 32,
        channel_mults: Sequence[int] = (1, 2),
        num_res_blocks: int = 1,
        attention_levels: Sequence[int] = (1,),
        num_heads: int = 4,
        temporal_attention: bool = True,
        dropout: float = 0.0,
        attention: AttentionKind = AttentionKind.factorised,
        conv: ConvKind = ConvKind.factorised,
        gradient_checkpointing: bool = False,
        channels_last: bool = False,
        autocast_dtype: torch.dtype | None = None,
    ):
        super().__init__()
        unknown = set(attention_levels) - set(range(len(channel_mults)))
        if unknown:
            raise ValueError(
                f"attention_levels {sorted(unknown)} do not exist: the model has levels "
                f"0..{len(channel_mults) - 1} (one per entry of channel_mults)"
            )
        attention, conv = AttentionKind(attention), ConvKind(conv)
        if attention == AttentionKind.full and not temporal_attention:
            raise ValueError(
                "model.denoiser.temporal_attention=false applies to attention=factorised: "
                "attention=full attends across frames by construction. Set "
                "model.denoiser.temporal_attention=true or model.denoiser.attention=factorised")
        self.base_channels, self.num_heads, self.attention = base_channels, num_heads, attention
        self.size_divisor = size_divisor(channel_mults)
        # (level, its transformer blocks, their width): for the joint attention's memory check
        last = len(channel_mults) - 1
        self.attention_blocks = [
            (level, (2 * num_res_blocks + 1) * (level in attention_levels) + (level == last),
             base_channels * mult) for level, mult in enumerate(channel_mults)]
        emb_dim = 4 * base_channels
        self.time_mlp = nn.Sequential(
            nn.Linear(base_channels, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )
        self.text_mlp = nn.Sequential(
            nn.Linear(context_dim, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim)
        )

        def stage(in_ch: int, out_ch: int, with_attention: bool) -> Stage:
            # built also where it is not used: its random draws fix every later initial weight
            # (tests/test_golden.py)
            if attention == AttentionKind.full:
                block = JointTransformerBlock(out_ch, context_dim, num_heads)
            else:
                block = TransformerBlock(out_ch, context_dim, num_heads, temporal_attention)
            return Stage(in_ch, out_ch, emb_dim, dropout, conv, block if with_attention else None)

        self.stem = spatial_conv(in_channels, base_channels, conv=conv)
        self.down = nn.ModuleList()
        skip_channels, ch = [base_channels], base_channels
        for level, mult in enumerate(channel_mults):
            for _ in range(num_res_blocks):
                self.down.append(stage(ch, base_channels * mult, level in attention_levels))
                ch = base_channels * mult
                skip_channels.append(ch)
            if level < len(channel_mults) - 1:
                self.down.append(Downsample(ch, conv))
                skip_channels.append(ch)

        self.mid = nn.ModuleList([stage(ch, ch, True), stage(ch, ch, False)])

        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(channel_mults))):
            for _ in range(num_res_blocks + 1):
                in_ch = ch + skip_channels.pop()
                self.up.append(stage(in_ch, base_channels * mult, level in attention_levels))
                ch = base_channels * mult
            if level > 0:
                self.up.append(Upsample(ch, conv))

        self.head = nn.Sequential(
            group_norm(ch), nn.SiLU(), zero_init(spatial_conv(ch, in_channels, conv=conv))
        )
        self.gradient_checkpointing, self.autocast_dtype = gradient_checkpointing, autocast_dtype
        self.memory_format = torch.channels_last_3d if channels_last else torch.contiguous_format
        if channels_last:
            self.to(memory_format=self.memory_format)
        self.context_multiple = 1  # pad the text tokens to a multiple of this (compiled: few shapes)
        self.compiled = False

    def compile(self, **options: Any) -> None:
        """torch.compile each residual and transformer block in place (regional compilation),
        as nn.Module.compile does: blocks of one shape share their compiled code, so a cold
        start compiles a few small graphs instead of the whole network; the glue between the
        blocks (a few convolutions) stays eager, and no state_dict key changes, so the
        checkpoints of the compiled and the plain network are interchangeable. `options` go
        to torch.compile."""
        # Captions vary in length: padded to a multiple of 8 tokens they make a few static
        # shapes (inductor's backward failed on a dynamic token count: stride 5 vs 6).
        self.context_multiple = CONTEXT_MULTIPLE
        blocks = self.blocks()
        # Dynamo keeps a block kind's graphs with its code, for every network of the process:
        # the earlier jobs of a sweep would fill the cache (each shape: training, inference,
        # inference at batch 1), and whatever does not fit runs eagerly
        torch._dynamo.reset()
        needed = 4 * len({block_shape(block) for block in blocks})
        torch._dynamo.config.recompile_limit = max(torch._dynamo.config.recompile_limit, needed)
        for block in blocks:
            block.compile(**options)
        self.compiled = True

    def blocks(self) -> list[nn.Module]:
        """The repeated blocks: every residual and transformer block."""
        kinds = (ResBlock, TransformerBlock, JointTransformerBlock)
        return [module for module in self.modules() if isinstance(module, kinds)]

    def forward(
        self,
        x: torch.Tensor,
        timesteps: torch.Tensor,
        context: torch.Tensor,
        mask: torch.Tensor | None,
    ) -> torch.Tensor:
        """x (B, C, T, H, W); timesteps (B,); context (B, L, D) text tokens; mask (B, L) bool,
        True = real token, or None where no token is padding (the flash kernel applies).

        Checks and data-dependent choices run here, eagerly; the network itself is `denoise`,
        whose blocks `compile` compiles.
        """
        if x.shape[-1] % self.size_divisor or x.shape[-2] % self.size_divisor:
            raise ValueError(
                f"frame size {tuple(x.shape[-2:])} must be divisible by {self.size_divisor} "
                "(2 ** number of downsampling levels): change data.image_size"
            )
        if self.attention == AttentionKind.full:
            self.check_attention_memory(x)
        context, mask = pad_tokens(context, mask, self.context_multiple)
        x = x.contiguous(memory_format=self.memory_format)
        if self.autocast_dtype is None or torch.is_autocast_enabled(x.device.type):
            return self.denoise(x, timesteps, context, mask)
        # no cache of cast weights kept past the call: sampling captures it as a CUDA graph
        with torch.autocast(x.device.type, dtype=self.autocast_dtype, cache_enabled=False):
            return self.denoise(x, timesteps, context, mask).float()

    def check_attention_memory(self, x: torch.Tensor) -> None:
        """Raise AttentionTooLarge when the joint attention's matrices cannot fit in the memory
        free on x's device. Only PyTorch's math kernel builds them (batch x heads x N^2 for N
        = T*H*W tokens); the fused kernels (flash, memory-efficient), which SDPA picks where it
        can (this CPU build does for fp32 and bf16), never do: their memory grows with N."""
        b, _, t, h, w = x.shape
        dtype = compute_dtype(x, self.autocast_dtype)
        built = []  # (tokens, bytes of one matrix, blocks) where the math kernel runs
        for level, blocks, width in self.attention_blocks:
            if blocks and materialises_attention(x.device, dtype, self.num_heads,
                                                 width // self.num_heads):
                n = t * (h >> level) * (w >> level)
                built.append((n, b * self.num_heads * n * n * dtype.itemsize, blocks))
        if not built:
            return
        # training keeps every block's probabilities for backward (not when recomputed);
        # the block that runs also holds its scores
        keeps = self.training and torch.is_grad_enabled() and not self.gradient_checkpointing
        needed = 2 * max(m for _, m, _ in built) + keeps * sum(m * k for _, m, k in built)
        free = available_memory(x.device)
        if needed > free:
            where = "GPU memory free" if x.device.type == "cuda" else "RAM available"
            raise AttentionTooLarge(
                f"model.denoiser.attention=full needs about {needed / GIB:.3g} GiB for its "
                f"attention matrices (up to {max(n for n, _, _ in built)} tokens: "
                f"data.num_frames={t} x {h}x{w} pixels (data.image_size) at the first level, "
                f"batch {b}, {self.num_heads} heads, {dtype}) but {where} is {free / GIB:.3g} "
                "GiB: lower data.image_size or data.num_frames (or data.batch_size), or set "
                "model.denoiser.attention=factorised")

    def denoise(
        self,
        x: torch.Tensor,
        timesteps: torch.Tensor,
        context: torch.Tensor,
        mask: torch.Tensor | None,
    ) -> torch.Tensor:
        with fp32(x.device.type):
            emb = self.time_mlp(sinusoidal_embedding(timesteps, self.base_channels))
            emb = emb + self.text_mlp(masked_mean(context.float(), mask))
        h = self.stem(x)
        skips = [h]
        for layer in self.down:
            if isinstance(layer, Downsample):
                h = layer(h)
            else:
                h = self._stage(layer, h, emb, context, mask)
            skips.append(h)
        for layer in self.mid:
            h = self._stage(layer, h, emb, context, mask)
        for layer in self.up:
            if isinstance(layer, Upsample):
                h = layer(h)
            else:
                h = self._stage(layer, torch.cat([h, skips.pop()], dim=1), emb, context, mask)
        return self.head(h)

    def _stage(self, stage: Stage, h, emb, context, mask) -> torch.Tensor:
        if self.compiled:  # compiled blocks: one graph for any batch size from the first call
            for t in (h, emb, context, mask):
                if t is not None:
                    torch._dynamo.maybe_mark_dynamic(t, 0)
        if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
            # recompute the stage's activations in backward; the non-reentrant variant is the
            # one torch.compile can trace
            return checkpoint(stage, h, emb, context, mask, use_reentrant=False)
        return stage(h, emb, context, mask)


def block_shape(block: nn.Module) -> tuple:
    """What tells blocks apart for the compiler: their kind and their parameters' shapes."""
    return type(block), tuple((name, p.shape) for name, p in block.named_parameters())


def compute_dtype(x: torch.Tensor, autocast_dtype: torch.dtype | None) -> torch.dtype:
    """The dtype attention runs in: the caller's autocast, the network's own, or x's."""
    if torch.is_autocast_enabled(x.device.type):
        return torch.get_autocast_dtype(x.device.type)
    return autocast_dtype or x.dtype


@functools.cache
def materialises_attention(device: torch.device, dtype: torch.dtype, heads: int,
                           head_dim: int) -> bool:
    """Whether scaled_dot_product_attention runs PyTorch's math kernel for self-attention of
    this kind, the one that builds the attention matrix (asked of SDPA's dispatcher; a torch
    without that query is assumed to)."""
    choose = getattr(torch, "_fused_sdp_choice", None)
    if choose is None:
        return True
    q = torch.zeros(1, heads, 8, head_dim, device=device, dtype=dtype)
    return choose(q, q, q) == int(torch.nn.attention.SDPBackend.MATH)


def available_memory(device: torch.device) -> int:
    """Bytes free for new tensors: free GPU memory plus what PyTorch's cache holds unused, or
    the RAM available to new allocations."""
    if device.type == "cuda":
        cached = torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
        return torch.cuda.mem_get_info(device)[0] + cached
    return psutil.virtual_memory().available


def pad_tokens(
    tokens: torch.Tensor, mask: torch.Tensor | None, multiple: int
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Pad (B, L, D) tokens and their (B, L) mask (None: all real) with masked-out tokens to a
    multiple of `multiple` tokens."""
    extra = -tokens.shape[1] % multiple
    if not extra:
        return tokens, mask
    if mask is None:
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
    return F.pad(tokens, (0, 0, 0, extra)), F.pad(mask, (0, extra), value=False)


def masked_mean(tokens: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Mean of the real tokens: (B, L, D), (B, L) or None (all real) -> (B, D)."""
    if mask is None:
        return tokens.sum(1) / tokens.shape[1]
    weights = mask.to(tokens.dtype).unsqueeze(-1)
    return (tokens * weights).sum(1) / weights.sum(1).clamp(min=1)
