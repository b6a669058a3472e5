"""The EMA callback against a hand-computed average."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from text2sign.callbacks.ema import EMA


class Model(nn.Module):
    def __init__(self):
        super().__init__()
        self.trained = nn.Linear(2, 2)
        self.frozen = nn.Linear(2, 2).requires_grad_(False)


def simulate(ema: EMA, model: Model, updates: list[torch.Tensor]) -> None:
    """Run the callback as the trainer would: one call per optimizer step."""
    trainer = SimpleNamespace(global_step=0)
    ema.on_fit_start(trainer, model)
    ema.on_train_start(trainer, model)
    for step, value in enumerate(updates, start=1):
        with torch.no_grad():
            model.trained.weight.copy_(value)
        trainer.global_step = step
        ema.on_train_batch_end(trainer, model, None, None, step)
        # a micro-batch without an optimizer step must not update the average
        ema.on_train_batch_end(trainer, model, None, None, step)


def test_matches_a_hand_computed_ema_with_warmup():
    torch.manual_seed(0)
    model = Model()
    decay = 0.9
    updates = [torch.randn(2, 2) for _ in range(30)]
    expected = model.trained.weight.detach().clone()
    for n, value in enumerate(updates, start=1):
        d = min(decay, (1 + n) / (10 + n))
        expected = d * expected + (1 - d) * value
    ema = EMA(decay=decay)
    simulate(ema, model, updates)
    assert ema.num_updates == 30
    assert torch.allclose(ema.shadow["trained.weight"], expected, atol=1e-6)
    assert set(ema.shadow) == {"trained.weight", "trained.bias"}  # trainable parameters only


def test_swap_in_and_out_restores_the_raw_weights():
    model = Model()
    ema = EMA(decay=0.5)
    simulate(ema, model, [torch.ones(2, 2) * 5])
    raw = model.trained.weight.detach().clone()
    with ema.averaged_weights(model):
        assert torch.equal(model.trained.weight, ema.shadow["trained.weight"])
        assert not torch.equal(model.trained.weight, raw)
    assert torch.equal(model.trained.weight, raw)


def test_state_survives_a_checkpoint():
    model = Model()
    ema = EMA(decay=0.9)
    simulate(ema, model, [torch.randn(2, 2) for _ in range(3)])
    restored = EMA(decay=0.9)
    restored.load_state_dict(ema.state_dict())
    restored.on_fit_start(SimpleNamespace(global_step=3), model)
    assert restored.num_updates == 3
    assert torch.equal(restored.shadow["trained.weight"], ema.shadow["trained.weight"])


def test_disabled_ema_does_nothing():
    model = Model()
    ema = EMA(enabled=False)
    simulate(ema, model, [torch.randn(2, 2)])
    raw = model.trained.weight.detach().clone()
    with ema.averaged_weights(model):
        assert torch.equal(model.trained.weight, raw)
    assert ema.shadow == {}


def test_bad_decay_names_the_key():
    with pytest.raises(ValueError, match="callbacks.ema.decay"):
        EMA(decay=1.0)


def test_an_update_is_one_foreach_kernel_over_parameters_listed_once(monkeypatch):
    """The per-step cost a GPU's host pays: no walk over the module, one kernel launch."""
    model = Model()
    ema = EMA(decay=0.9)
    simulate(ema, model, [torch.ones(2, 2)])
    calls = []
    monkeypatch.setattr(torch, "_foreach_lerp_", lambda *args: calls.append(args))
    monkeypatch.setattr(Model, "named_parameters", lambda *a, **k: pytest.fail("walked the module"))
    ema.update()
    assert len(calls) == 1 and len(calls[0][0]) == 2  # the trainable weight and bias
