"""LPIPS (Zhang et al. 2018), AlexNet trunk with the "v0.1" linear calibration.

Written out here because the lpips package imports torchvision, which this project must
not import. The AlexNet layers mirror torchvision's ``alexnet().features`` so that its
ImageNet checkpoint (alexnet-owt-7be5be79.pth) loads as is, and the linear heads load the
lpips package's weights/v0.1/alex.pth (keys lin{k}.model.1.weight).
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from text2sign.metrics.frames import paired_frames
from text2sign.metrics.weights import WeightFile, resolve_weights

ALEXNET_WEIGHTS = WeightFile(
    description="torchvision's ImageNet AlexNet weights",
    filename="alexnet-owt-7be5be79.pth",
    url="https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
    sha256="7be5be79",  # torchvision's file-name hash prefix (torch.hub's check_hash convention)
    config_key="eval.lpips.backbone_path",
)
LPIPS_LINEAR_WEIGHTS = WeightFile(
    description="the LPIPS v0.1 AlexNet linear calibration (lpips package, weights/v0.1/alex.pth)",
    filename="lpips-v0.1-alex.pth",
    url="https://github.com/richzhang/PerceptualSimilarity/raw/master/lpips/weights/v0.1/alex.pth",
    # sha256 of weights/v0.1/alex.pth in the lpips 0.1.4 wheel on PyPI
    sha256="df73285e35b22355a2df87cdb6b70b343713b667eddbda73e1977e0c860835c0",
    config_key="eval.lpips.linear_path",
)
# AlexNet needs >= 31 px to reach its 5th layer. Frames whose shorter side is below MIN_SIZE
# are upsampled bilinearly (align_corners=False, as lpips' own upsample) to MIN_SIZE, so 16 px
# and 64 px runs are compared at the same 64 px footprint, with a 3x3 map at the 5th layer.
MIN_SIZE = 64
CHANNELS = (64, 192, 384, 256, 256)
TAPS = (1, 4, 7, 9, 11)  # indices in features of the ReLUs whose outputs LPIPS compares


class AlexNetFeatures(nn.Module):
    """torchvision's ``alexnet().features`` (same layers and state_dict keys), returning the
    five ReLU activations LPIPS uses."""

    def __init__(self) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(384, 256, kernel_size=3, padding=1), nn.ReLU(),
            nn.Conv2d(256, 256, kernel_size=3, padding=1), nn.ReLU(),
            nn.MaxPool2d(kernel_size=3, stride=2),
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        taps = []
        for i, layer in enumerate(self.features[: TAPS[-1] + 1]):
            x = layer(x)
            if i in TAPS:
                taps.append(x)
        return taps


class LPIPS(nn.Module):
    """d(a, b) = sum_l mean_hw w_l . (f_l(a) - f_l(b))^2, f_l unit-normalised over channels.

    Inputs are images (N, 3, H, W) in [-1, 1]; the output (N,) is >= 0 for non-negative
    calibration weights (the published ones are), 0 for identical images, and symmetric.
    """

    def __init__(self) -> None:
        super().__init__()
        # lpips' ScalingLayer: ImageNet normalisation expressed for [-1, 1] inputs.
        self.register_buffer("shift", torch.tensor([-0.030, -0.088, -0.188]).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor([0.458, 0.448, 0.450]).view(1, 3, 1, 1))
        self.net = AlexNetFeatures()
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, kernel_size=1, bias=False) for c in CHANNELS)

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        feats_a = self.net((a - self.shift) / self.scale)
        feats_b = self.net((b - self.shift) / self.scale)
        total = 0.0
        for lin, fa, fb in zip(self.lins, feats_a, feats_b, strict=True):
            total = total + lin((_unit(fa) - _unit(fb)) ** 2).mean(dim=(1, 2, 3))
        return total

    def load_weights(self, alexnet_state: dict, linear_state: dict) -> None:
        """Load a torchvision AlexNet state_dict (classifier ignored) and lpips' linear heads."""
        self.net.load_state_dict({k: v for k, v in alexnet_state.items()
                                  if k.startswith("features.")})
        self.lins.load_state_dict({f"{k}.weight": linear_state[f"lin{k}.model.1.weight"]
                                   for k in range(len(CHANNELS))})


def _unit(x: torch.Tensor, eps: float = 1e-10) -> torch.Tensor:
    """Normalise each spatial position's feature vector to unit length (lpips' normalize_tensor)."""
    return x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + eps)


def load_lpips(backbone_path: str | Path | None = None, linear_path: str | Path | None = None,
               cache_dir: str | Path | None = None, download: bool = False,
               device: str | torch.device = "cpu") -> LPIPS:
    """The LPIPS model in eval mode; MetricUnavailable (naming eval.lpips.backbone_path or
    eval.lpips.linear_path) when a weight file is neither given, cached nor downloadable."""
    backbone = resolve_weights(ALEXNET_WEIGHTS, backbone_path, cache_dir, download)
    linear = resolve_weights(LPIPS_LINEAR_WEIGHTS, linear_path, cache_dir, download)
    model = LPIPS()
    model.load_weights(torch.load(backbone, map_location="cpu", weights_only=True),
                       torch.load(linear, map_location="cpu", weights_only=True))
    return model.eval().requires_grad_(False).to(device)


@torch.no_grad()
def clip_lpips(model: LPIPS, fake: torch.Tensor, real: torch.Tensor,
               batch_size: int = 64) -> torch.Tensor:
    """(B,) LPIPS of each generated clip against its real clip, averaged over frames.

    fake and real: uint8 (B, C, T, H, W) of the same shape; clip i of ``real`` is the real
    clip with clip i's caption. Lower is more similar; 0 for identical clips.
    """
    a, b = paired_frames(fake, real)
    device = model.shift.device
    scores = torch.cat([model(_prepare(a[i:i + batch_size], device),
                              _prepare(b[i:i + batch_size], device)).cpu()
                        for i in range(0, len(a), batch_size)])
    return scores.view(fake.shape[0], fake.shape[2]).mean(dim=1)


def _prepare(frames: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 frames -> float in [-1, 1], upsampled to MIN_SIZE on the shorter side if smaller."""
    x = frames.to(device).float() / 127.5 - 1.0
    height, width = x.shape[-2:]
    if min(height, width) < MIN_SIZE:
        factor = MIN_SIZE / min(height, width)
        x = F.interpolate(x, size=(round(height * factor), round(width * factor)), mode="bilinear",
                          align_corners=False)
    return x
