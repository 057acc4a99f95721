"""Feature extractors for QC, and a cache keyed by image content and extractor.

Every extractor maps float32 images N×1×S×S in [-1, 1] to a float64 matrix
N×d. The conversion to uint8 3-channel images — torch-fidelity's input — happens
here only, in :func:`to_uint8_rgb`.

- ``pixels``: the raw pixels (PCA, when wanted, is fitted inside the C2ST folds);
- ``fft``: log radial power spectrum — GAN up-sampling leaves periodic traces there;
- ``histogram``: intensity histogram of the foreground — contrast and tissue-mix mismatches;
- ``inception``: the 2048-d pool features of the FID Inception (offline weights).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from ctqc import atomic


def to_uint8_rgb(images: torch.Tensor) -> torch.Tensor:
    """N×1×H×W float in [-1, 1] → N×3×H×W uint8 (the torch-fidelity boundary)."""
    if images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"expected N×1×H×W images, got {tuple(images.shape)}")
    u8 = ((images.float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return u8.expand(-1, 3, -1, -1).contiguous()


def pixel_features(images: torch.Tensor) -> np.ndarray:
    return images.reshape(len(images), -1).double().numpy()


def fft_features(images: torch.Tensor, n_bins: int = 16) -> np.ndarray:
    """Log power averaged over ``n_bins`` rings of spatial frequency (DC excluded)."""
    x = images[:, 0].double()
    power = torch.fft.fftshift(torch.fft.fft2(x - x.mean(dim=(1, 2), keepdim=True)), dim=(-2, -1)).abs() ** 2
    h, w = x.shape[-2:]
    yy, xx = torch.meshgrid(torch.arange(h) - h // 2, torch.arange(w) - w // 2, indexing="ij")
    radius = torch.sqrt(yy.double() ** 2 + xx.double() ** 2)
    ring = torch.clamp((radius / radius.max() * n_bins).long(), max=n_bins - 1)
    sums = torch.zeros(len(x), n_bins, dtype=torch.float64).index_add_(1, ring.flatten(), power.flatten(1))
    counts = torch.bincount(ring.flatten(), minlength=n_bins).double()
    return torch.log1p(sums / counts.clamp_min(1)).numpy()


def histogram_features(images: torch.Tensor, n_bins: int = 32) -> np.ndarray:
    """Fraction of *foreground* pixels per intensity bin over (-0.9, 1].

    Air (≤ -0.9) is left out: its share varies with head size and would mask
    shifts in tissue intensity, which is what this feature is for.
    """
    x = images.reshape(len(images), -1).double().clamp(-1, 1)
    foreground = (x > -0.9).double()
    index = torch.clamp(((x + 0.9) / 1.9 * n_bins).long(), 0, n_bins - 1)
    hist = torch.zeros(len(x), n_bins, dtype=torch.float64).scatter_add_(1, index, foreground)
    return (hist / foreground.sum(dim=1, keepdim=True).clamp_min(1)).numpy()


def inception_features(images: torch.Tensor) -> np.ndarray:
    from ctqc.qc import inception

    return inception.inception_features(to_uint8_rgb(images)).numpy()


EXTRACTORS: dict[str, Callable[[torch.Tensor], np.ndarray]] = {
    "pixels": pixel_features,
    "fft": fft_features,
    "histogram": histogram_features,
    "inception": inception_features,
}


def extract(name: str, images: torch.Tensor, cache_dir: Path | None = None) -> np.ndarray:
    """Features of ``images`` by extractor ``name``; cached under ``cache_dir`` by content hash."""
    if name not in EXTRACTORS:
        raise ValueError(f"unknown feature extractor {name!r}; choose from {', '.join(EXTRACTORS)}")
    if cache_dir is None:
        return EXTRACTORS[name](images)
    path = Path(cache_dir) / f"{name}-{content_hash(images)}.npy"
    if path.is_file():
        return np.load(path, allow_pickle=False)
    features = EXTRACTORS[name](images)
    with atomic.atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.save(fh, features, allow_pickle=False)
    return features


def content_hash(images: torch.Tensor) -> str:
    """Hash of the images' shape and float32 bytes (identical images → identical key)."""
    x = images.detach().float().contiguous().cpu()
    h = hashlib.sha256(str(tuple(x.shape)).encode())
    h.update(x.numpy().tobytes())
    return h.hexdigest()[:20]


def feature_matrix(images: torch.Tensor, names: list[str], cache_dir: Path | None = None) -> tuple[np.ndarray, int | None]:
    """Concatenated features of ``images``, pixels first; returns (matrix, width of the pixel block or None)."""
    ordered = sorted(names, key=lambda n: n != "pixels")
    blocks = [extract(name, images, cache_dir) for name in ordered]
    return np.hstack(blocks), (blocks[0].shape[1] if ordered[0] == "pixels" else None)
