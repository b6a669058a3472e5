"""SSIM and PSNR of generated clips against real ones."""

from __future__ import annotations

import math
import sys

import pytest
import torch

from text2sign.metrics import fidelity


def clips(seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 250, (2, 3, 4, 16, 16), dtype=torch.uint8, generator=generator)


def test_identical_clips():
    real = clips(0)
    assert fidelity(real, real.clone()) == {"ssim": pytest.approx(1.0), "psnr": math.inf}


def test_psnr_of_a_constant_offset():
    real = clips(1)
    assert fidelity(real + 5, real)["psnr"] == pytest.approx(20 * math.log10(255 / 5), rel=1e-4)


def test_unrelated_clips_score_low_and_nothing_imports_torchvision():
    scores = fidelity(clips(2), clips(3))
    assert scores["ssim"] < 0.1 and scores["psnr"] < 12
    assert "torchvision" not in sys.modules
