"""Frozen and finetuned text encoders, and loading other model families by local path."""

from __future__ import annotations

import shutil

import pytest
import torch
from transformers import (
    BertConfig,
    BertModel,
    CLIPTextConfig,
    CLIPTextModel,
    T5Config,
    T5EncoderModel,
)

from text2sign.models.text_encoder import TextEncoder, resolve_model_path

CAPTIONS = ["hello friend", "thank you very much", "hello friend"]  # of two token counts


@pytest.fixture(scope="module")
def frozen():
    return TextEncoder()


def test_default_is_the_embedded_minilm(frozen):
    assert frozen.hidden_size == 384
    assert sum(p.numel() for p in frozen.parameters()) == 22_713_216


def test_frozen_encoder_has_no_gradients_and_stays_in_eval_mode(frozen):
    assert not any(p.requires_grad for p in frozen.parameters())
    frozen.train()
    assert not frozen.model.training
    features, mask = frozen(CAPTIONS)
    assert not features.requires_grad


def test_frozen_encoder_runs_once_per_caption(frozen):
    calls = []
    handle = frozen.model.register_forward_hook(lambda m, args, out: calls.append(1))
    try:
        before = frozen.num_encoded
        first, mask = frozen(["a new caption", "another one", "a new caption"])
        second, _ = frozen(["another one", "a new caption"])
    finally:
        handle.remove()
    assert frozen.num_encoded - before == 2 and len(calls) == 1
    assert torch.equal(second[1][mask[0]], first[0][mask[0]])


def test_cached_features_equal_a_direct_encoding(frozen):
    cached, mask = frozen(CAPTIONS)
    direct, direct_mask = frozen._encode(CAPTIONS)
    assert torch.equal(cached[mask], direct[direct_mask])
    # each caption alone gives the same features: a cache filled in another order (a resumed
    # run) holds exactly the same values
    alone = torch.cat([f[0][m[0]] for f, m in (frozen._encode([c]) for c in CAPTIONS)])
    assert torch.equal(alone, cached[mask])


def test_the_mask_is_none_when_no_caption_is_padded(frozen):
    # decided on the host: the denoiser never reads a device tensor to find out
    _, padded = frozen(["hello friend", "thank you very much"])
    assert padded is not None and not bool(padded.all())
    _, unpadded = frozen(["hello friend", "hello friend"])
    assert unpadded is None


def test_cached_features_move_with_the_encoder(frozen):
    # Lightning moves the module to the CPU when a fit ends and back for the phases after it:
    # cached captions must follow, or the denoiser gets them on the old device
    frozen(["a cached caption"])
    frozen.double()
    try:
        features, _ = frozen(["a cached caption", "thank you"])
        assert features.dtype == torch.float64
        assert {t.dtype for t in frozen._cache.values()} == {torch.float64}
    finally:
        frozen.float()


def test_finetuned_last_layers_train_and_change():
    encoder = TextEncoder(trainable=True, trainable_layers=2, lr=1e-3)
    trainable = {n for n, p in encoder.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("model.encoder.layer.4.", "model.encoder.layer.5."))
                             for n in trainable)
    before = {n: p.detach().clone() for n, p in encoder.named_parameters()}
    optimizer = torch.optim.SGD([p for p in encoder.parameters() if p.requires_grad], lr=1e-1)
    features, mask = encoder(CAPTIONS)
    features[mask].square().mean().backward()
    optimizer.step()
    changed = {n for n, p in encoder.named_parameters() if not torch.equal(p, before[n])}
    assert changed == trainable


def test_finetuned_all_layers_by_default():
    encoder = TextEncoder(trainable=True)
    assert all(p.requires_grad for p in encoder.parameters())
    encoder.train()
    assert encoder.model.training


def test_layer_lr_decay_gives_each_depth_its_rate():
    encoder = TextEncoder(trainable=True, lr=1e-3, layer_lr_decay=0.5)
    groups = encoder.parameter_groups()
    rates = {g["name"]: g["lr"] for g in groups}
    assert rates == {"text_encoder.embeddings": 1e-3 / 64, **{f"text_encoder.layer{l}": 1e-3 / 2 ** (6 - l)
                     for l in range(1, 6)}, "text_encoder": 1e-3}  # noqa: E741
    named = {id(p): n for n, p in encoder.model.named_parameters()}
    members = {g["name"]: {named[id(p)] for p in g["params"]} for g in groups}
    assert all(n.startswith("embeddings.") for n in members["text_encoder.embeddings"])
    assert all(n.startswith("encoder.layer.2.") for n in members["text_encoder.layer3"])
    assert {n.split(".")[0] for n in members["text_encoder"]} == {"encoder", "pooler"}
    assert sum(len(m) for m in members.values()) == len(named)  # each weight in one group
    assert [g["name"] for g in encoder.parameter_groups()] == list(rates)
    last_two = TextEncoder(trainable=True, trainable_layers=2, lr=1e-3, layer_lr_decay=0.5)
    assert {g["name"]: g["lr"] for g in last_two.parameter_groups()} == {
        "text_encoder.layer5": 5e-4, "text_encoder": 1e-3}
    assert [g["name"] for g in TextEncoder(trainable=True).parameter_groups()] == ["text_encoder"]


def test_inconsistent_settings_fail_with_the_key_to_fix():
    with pytest.raises(ValueError, match="text_encoder=finetuned"):
        TextEncoder(trainable=False, trainable_layers=2)
    with pytest.raises(ValueError, match="1..6"):
        TextEncoder(trainable=True, trainable_layers=9)
    with pytest.raises(ValueError, match="layer_lr_decay only applies to text_encoder=finetuned"):
        TextEncoder(trainable=False, layer_lr_decay=0.5)
    with pytest.raises(ValueError, match=r"layer_lr_decay=1.5 must be in \(0, 1\]"):
        TextEncoder(trainable=True, lr=1e-5, layer_lr_decay=1.5)
    with pytest.raises(ValueError, match="set text_encoder.lr"):
        TextEncoder(trainable=True, layer_lr_decay=0.5)
    with pytest.raises(FileNotFoundError, match="text_encoder.name"):
        TextEncoder(name="/no/such/model")


@pytest.mark.parametrize(
    ("config", "model_class"),
    [
        (BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                    intermediate_size=64), BertModel),
        (T5Config(d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=2), T5EncoderModel),
        (CLIPTextConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=2, max_position_embeddings=64), CLIPTextModel),
    ],
)
def test_other_model_families_load_from_a_local_path(tmp_path, config, model_class):
    """A local BERT, T5 or CLIP works like the default (tiny random weights, MiniLM vocab)."""
    config.vocab_size = 30522
    model_class(config).save_pretrained(tmp_path)
    source = resolve_model_path("sentence-transformers/all-MiniLM-L6-v2")
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copy(f"{source}/{name}", tmp_path)
    encoder = TextEncoder(name=str(tmp_path), trainable=True, trainable_layers=1)
    assert isinstance(encoder.model, model_class) and encoder.hidden_size == 32
    features, mask = encoder(CAPTIONS)
    assert features.shape[:2] == mask.shape and features.shape[-1] == 32
