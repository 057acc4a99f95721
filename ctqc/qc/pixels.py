"""Pixel-level helpers shared by the feature extractors: the uint8 boundary and content keys."""

from __future__ import annotations

import hashlib

import torch


def to_uint8_rgb(images: torch.Tensor) -> torch.Tensor:
    """N×1×H×W float in [-1, 1] → N×3×H×W uint8 (the torch-fidelity boundary)."""
    if images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"expected N×1×H×W images, got {tuple(images.shape)}")
    u8 = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return u8.expand(-1, 3, -1, -1).contiguous()



def image_hashes(images: torch.Tensor) -> list[str]:
    """Per-image hash of shape and float32 bytes (identical images → identical key)."""
    x = images.detach().float().contiguous().cpu().numpy()
    shape = str(tuple(x.shape[1:])).encode()
    return [hashlib.sha256(shape + img.tobytes()).hexdigest()[:24] for img in x]
