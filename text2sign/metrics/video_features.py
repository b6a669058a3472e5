"""Video feature extractors for FVD: uint8 videos (B, C, T, H, W) -> (B, D) float64 features.

``i3d`` (the standard FVD): the Kinetics-400 I3D TorchScript detector of the StyleGAN-V
evaluation code (Skorokhodov et al. 2022; universome/stylegan-v,
src/metrics/frechet_video_distance.py), a port of the tf.hub I3D of the original FVD.
StyleGAN-V calls it on uint8 (B, C, T, H, W) videos in [0, 255] with
``rescale=True, resize=True, return_features=True``: the detector rescales to [-1, 1] and
resizes to 224x224 itself, and returns the 400 pre-softmax Kinetics logits.
No checksum of the file is published (StyleGAN-V loads it unverified), so a download
needs eval.fvd.detector_sha256.

``videomae`` (an alternative backbone, not comparable with published FVD): a transformers
VideoMAE model by name or local path, features the mean over tokens of its last hidden state.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from pathlib import Path

import torch
import torch.nn.functional as F

from text2sign.metrics.errors import MetricUnavailable
from text2sign.metrics.weights import WeightFile, resolve_weights

VideoFeatureExtractor = Callable[[torch.Tensor], torch.Tensor]

I3D_DETECTOR = WeightFile(
    description="the StyleGAN-V I3D TorchScript detector (Kinetics-400)",
    filename="i3d_torchscript.pt",
    url="https://www.dropbox.com/s/ge9e5ujwgetktms/i3d_torchscript.pt?dl=1",
    sha256=None,
    config_key="eval.fvd.detector_path",
)
I3D_KWARGS = {"rescale": True, "resize": True, "return_features": True}
# I3D halves time three times (stride-2 conv and two stride-2 pools) before a 2-frame
# average pool: 8 frames shrink to 1 and fail inside the TorchScript module ("input image
# (T: 1 ...) smaller than kernel size (kT: 2 ...)", reported in royalmelon0505/dist4d#26 and
# JunyaoHu/common_metrics_on_video_quality#3).
MIN_I3D_FRAMES = 9
# VideoMAE checkpoints are trained on ImageNet-normalised frames (VideoMAEImageProcessor).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class FVDBackbone(str, Enum):
    """eval.fvd.backbone: the feature extractor of FVD."""

    i3d = "i3d"
    videomae = "videomae"



def load_video_feature_extractor(
    backbone: str = "i3d",
    detector_path: str | Path | None = None,
    detector_sha256: str | None = None,
    videomae_name: str = "MCG-NJU/videomae-base",
    local_files_only: bool = True,
    cache_dir: str | Path | None = None,
    download: bool = False,
    device: str | torch.device = "cpu",
    batch_size: int = 8,
) -> VideoFeatureExtractor:
    """A function from uint8 videos (B, C, T, H, W) to (B, D) float64 features on the CPU.

    i3d: the detector from ``detector_path``, else ``cache_dir``/i3d_torchscript.pt, else a
    download verified against ``detector_sha256``. videomae: ``videomae_name`` through
    transformers (``local_files_only`` keeps it offline). MetricUnavailable names the config
    key to set when the weights cannot be found.
    """
    if backbone == "i3d":
        path = resolve_weights(I3D_DETECTOR, detector_path, cache_dir, download, detector_sha256)
        detector = torch.jit.load(str(path), map_location=device).eval()
        return lambda videos: _batched(lambda x: _i3d_features(detector, x, device), videos,
                                       batch_size)
    if backbone == "videomae":
        model = _load_videomae(videomae_name, local_files_only).to(device)
        return lambda videos: _batched(lambda x: _videomae_features(model, x, device), videos,
                                       batch_size)
    choices = tuple(b.value for b in FVDBackbone)
    raise ValueError(f"eval.fvd.backbone={backbone!r} is not one of {choices}")


@torch.no_grad()
def _batched(features: Callable[[torch.Tensor], torch.Tensor], videos: torch.Tensor,
             batch_size: int) -> torch.Tensor:
    if videos.dtype != torch.uint8 or videos.ndim != 5:
        raise ValueError(f"expected uint8 videos (B, C, T, H, W), got {videos.dtype} "
                         f"{tuple(videos.shape)}")
    return torch.cat([features(videos[i:i + batch_size]).double().cpu()
                      for i in range(0, len(videos), batch_size)])


def _i3d_features(detector: torch.jit.ScriptModule, videos: torch.Tensor,
                  device: str | torch.device) -> torch.Tensor:
    if videos.shape[2] < MIN_I3D_FRAMES:
        raise MetricUnavailable(
            f"I3D needs at least {MIN_I3D_FRAMES} frames, the videos have {videos.shape[2]}: "
            "generate longer clips (data.num_frames) or set eval.fvd.backbone=videomae")
    return detector(videos.to(device), **I3D_KWARGS)


def _load_videomae(name: str, local_files_only: bool) -> torch.nn.Module:
    from transformers import VideoMAEModel  # deferred: transformers is slow to import

    try:
        return VideoMAEModel.from_pretrained(name, local_files_only=local_files_only).eval()
    except OSError as error:
        fix = "set eval.fvd.videomae_name to a local model directory"
        if local_files_only:
            fix += ", or eval.fvd.local_files_only=false to download it"
        raise MetricUnavailable(f"VideoMAE model {name!r} not found ({error}): {fix}") from error


def _videomae_features(model: torch.nn.Module, videos: torch.Tensor,
                       device: str | torch.device) -> torch.Tensor:
    """Frames resampled to the model's clip length (nearest, evenly spaced), resized to its
    image size (bilinear), ImageNet-normalised; the mean of the last hidden state over tokens."""
    config = model.config
    index = torch.linspace(0, videos.shape[2] - 1, config.num_frames).round().long()
    x = videos[:, :, index].to(device).float().div(255).transpose(1, 2)  # B, T, C, H, W
    batch, frames = x.shape[:2]
    x = F.interpolate(x.flatten(0, 1), size=(config.image_size, config.image_size), mode="bilinear",
                      align_corners=False, antialias=True)
    mean, std = (torch.tensor(v, device=x.device).view(1, 3, 1, 1)
                 for v in (IMAGENET_MEAN, IMAGENET_STD))
    x = ((x - mean) / std).view(batch, frames, *x.shape[1:])
    return model(pixel_values=x).last_hidden_state.mean(dim=1)
