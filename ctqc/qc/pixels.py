"""Pixel-level helpers shared by the feature extractors: the uint8 boundary and content keys."""

from __future__ import annotations

import hashlib

import torch


def to_uint8_rgb(images: torch.Tensor) -> torch.Tensor:
    """N×1×H×W float in [-1, 1] → N×3×H×W uint8 (the torch-fidelity boundary)."""
    if images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"expected N×1×H×W images, got {tuple(images.shape)}")
    return _grey_levels(images).to(torch.uint8).expand(-1, 3, -1, -1).contiguous()


def _grey_levels(images: torch.Tensor) -> torch.Tensor:
    """The 8-bit grey level 0..255 of each pixel of float images in [-1, 1] (clamped), as float32: the one rounding rule."""
    return ((images.float().clamp(-1, 1) + 1) * 127.5).round()


def quantise(images: torch.Tensor) -> torch.Tensor:
    """Float images in [-1, 1] (any shape) rounded to the 256 grey levels of an 8-bit file, as float32 in [-1, 1].

    The grid of :func:`to_uint8_rgb` and of the pool's PNG files (:func:`gan.sampling.sample_pixels`):
    ``round((x + 1) · 127.5) / 127.5 − 1`` after clamping to [-1, 1]. Idempotent, so images already on the
    grid (8-bit files, the pool) are returned unchanged.
    """
    return _grey_levels(images) / 127.5 - 1


AIR_LEVEL = -0.9  # pixels at or below this (in [-1, 1]) are air; above it, the foreground (tissue, bone)


def head_mask(x: torch.Tensor) -> torch.Tensor:
    """1 where ``x`` (any shape, in [-1, 1]) is above :data:`AIR_LEVEL` (the head), 0 in the air; ``x``'s shape and dtype."""
    return (x > AIR_LEVEL).to(x.dtype)


IMAGENET_MEAN = (0.485, 0.456, 0.406)  # the RGB statistics ImageNet-trained networks (DINOv2, SwAV) normalise with
IMAGENET_STD = (0.229, 0.224, 0.225)


def to_normalised_rgb(images: torch.Tensor, size: int, mean: tuple[float, ...], std: tuple[float, ...]) -> torch.Tensor:
    """N×1×H×W float in [-1, 1] → N×3×size×size float32: grey copied to R, G, B in [0, 1], resized, then (x − mean) / std.

    The input boundary of ctqc's own pretrained extractors (:mod:`ctqc.qc.extractors`); the resize is
    bicubic with antialiasing (torchvision's default for these models), clamped back to [0, 1].
    """
    if images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"expected N×1×H×W images, got {tuple(images.shape)}")
    x = (images.float().clamp(-1, 1) + 1) / 2
    if x.shape[-2:] != (size, size):
        x = torch.nn.functional.interpolate(x, size=(size, size), mode="bicubic", antialias=True, align_corners=False).clamp(0, 1)
    x = x.expand(-1, 3, -1, -1)
    return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)


def image_hashes(images: torch.Tensor) -> list[str]:
    """Per-image hash of shape and float32 bytes (identical images → identical key)."""
    x = images.detach().float().contiguous().cpu().numpy()
    shape = str(tuple(x.shape[1:])).encode()
    return [hashlib.sha256(shape + img.tobytes()).hexdigest()[:24] for img in x]
