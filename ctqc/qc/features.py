"""Feature extractors for QC, and a cache keyed by image content and extractor.

Every extractor maps float32 images N×1×S×S in [-1, 1] to a float64 matrix
N×d. The conversion to uint8 3-channel images — torch-fidelity's input — happens
here only, in :func:`to_uint8_rgb`.

- ``pixels``: the raw pixels (PCA, when wanted, is fitted inside the C2ST folds);
- ``fft``: log radial power spectrum — GAN up-sampling leaves periodic traces there;
- ``histogram``: intensity histogram of the foreground — contrast and tissue-mix mismatches;
- ``structure``: local structure of the foreground wherever it is — noise, sharpness, holes, asymmetry,
  seams (:mod:`ctqc.qc.structure`);
- ``inception``: the 2048-d pool features of the FID Inception (offline weights), float32
  exactly as torch-fidelity computes them;
- ``inception-bf16``: the same network in bfloat16 on oneDNN (:mod:`ctqc.qc.fast_inception`:
  BN folded, fused conv + ReLU, reordered pools; AMX on this CPU): several times faster,
  features within ~2-3 % (relative L2) of the exact ones — for C2ST/embeddings, or FID
  when speed matters more than comparability with published FIDs;
- the pretrained extractors of :mod:`ctqc.qc.extractors` (CLIP, DINOv2, SwAV from local weight files);
- ``domain``: the 128-d embedding of a small CNN fitted on the run's real *training*
  images (:mod:`ctqc.qc.domain`). It has no fixed weights, so it is not in
  :data:`EXTRACTORS`: pass the fitted encoder's file as ``domain_weights``; its cache file
  is named after a hash of that file, so features of different encoders never mix.

Every extractor sees images on the 8-bit grid (:func:`ctqc.qc.pixels.quantise`), the precision the
pool's PNG files and the Inception input have: real images that arrive as floats (the phantoms, DICOM
after windowing, any image after resizing) would otherwise differ from the 8-bit pool in precision
alone, which the histogram tells apart (real vs real, one half quantised: C2ST AUC +0.02 to +0.04;
bench/RESULTS.md, "Comparing at the pool's precision").

The cache holds one row per *image* (keyed by a hash of its pixels), so a subset, a
superset or a re-run of the same images costs only the images not seen before.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import torch

from ctqc import atomic
from ctqc.qc import domain, extractors, inception
from ctqc.qc.pixels import AIR_LEVEL, image_hashes, quantise, to_uint8_rgb
from ctqc.qc.structure import structure_features


class FidelityInput(torch.utils.data.Dataset):
    """Images in [-1, 1] as torch-fidelity's ``calculate_metrics`` input: one 3×H×W uint8 tensor per item."""

    def __init__(self, images: torch.Tensor) -> None:
        self.images = to_uint8_rgb(images)

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images[index]


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
    """Intensity distribution of the *foreground*: a histogram over (-0.9, 1] plus its moments.

    Air (≤ -0.9) is left out: its share varies with head size and would mask shifts in
    tissue intensity, which is what this feature is for. The histogram's bins are 0.06
    wide, so a global shift smaller than a bin barely moves it; the foreground's mean,
    standard deviation and 5/25/50/75/95 % quantiles follow such a shift linearly.
    """
    x = images.reshape(len(images), -1).double().clamp(-1, 1)
    foreground = x > AIR_LEVEL
    weight = foreground.double()
    index = torch.clamp(((x + 0.9) / 1.9 * n_bins).long(), 0, n_bins - 1)
    hist = torch.zeros(len(x), n_bins, dtype=torch.float64).scatter_add_(1, index, weight)
    count = weight.sum(dim=1, keepdim=True).clamp_min(1)
    mean = (x * weight).sum(dim=1, keepdim=True) / count
    std = (((x - mean) ** 2 * weight).sum(dim=1, keepdim=True) / count).sqrt()
    masked = torch.where(foreground, x, torch.tensor(float("nan"), dtype=x.dtype))
    quantiles = torch.nanquantile(masked, torch.tensor([0.05, 0.25, 0.5, 0.75, 0.95], dtype=x.dtype), dim=1).T
    quantiles = torch.nan_to_num(quantiles, nan=-1.0)  # an image with no foreground at all
    return torch.cat([hist / count, mean, std, quantiles], dim=1).numpy()


def inception_features(images: torch.Tensor) -> np.ndarray:
    return inception.inception_features(to_uint8_rgb(images)).numpy()


def inception_bf16_features(images: torch.Tensor) -> np.ndarray:
    return inception.inception_features(to_uint8_rgb(images), precision="bf16").numpy()


CACHE_VERSION = 4  # bump when an extractor's output changes: older cache files are then ignored

EXTRACTORS: dict[str, Callable[[torch.Tensor], np.ndarray]] = {
    "pixels": pixel_features,
    "fft": fft_features,
    "histogram": histogram_features,
    "structure": structure_features,
    "inception": inception_features,
    "inception-bf16": inception_bf16_features,
}


DOMAIN = "domain"  # fitted per run: needs extract(..., domain_weights=<encoder .pt>)


def extract(name: str, images: torch.Tensor, cache_dir: Path | None = None, domain_weights: Path | None = None, weights: Mapping[str, str | Path] | None = None) -> np.ndarray:
    """Features of ``images`` by extractor ``name``; cached per image under ``cache_dir``.

    ``images``: N×1×S×S float in [-1, 1], put on the 8-bit grid first (:func:`~ctqc.qc.pixels.quantise`; the
    cache is keyed by the quantised pixels). ``domain_weights``: the encoder file for ``name == "domain"``;
    ``weights``: ``qc.weights`` (name → local file) for the pretrained extractors of :mod:`ctqc.qc.extractors`.
    Each is ignored by the other extractors.
    """
    compute, cache_name = _extractor(name, domain_weights, weights)
    images = quantise(images)
    if cache_dir is None or len(images) == 0:
        return compute(images)
    keys = image_hashes(images)
    path = Path(cache_dir) / f"{cache_name}.v{CACHE_VERSION}.npz"
    stored_keys, stored = _read_cache(path)
    row = {key: r for r, key in enumerate(stored_keys)}
    unique_missing = list({key: i for i, key in enumerate(keys) if key not in row}.values())
    if unique_missing:
        fresh = compute(images[unique_missing])
        stored = fresh if stored is None else np.vstack([stored, fresh.astype(stored.dtype)])
        for i in unique_missing:
            row[keys[i]] = len(row)
        stored_keys = stored_keys + [keys[i] for i in unique_missing]
        with atomic.atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, keys=np.asarray(stored_keys), features=stored)
    return stored[[row[key] for key in keys]]


def _extractor(name: str, domain_weights, weights) -> tuple[Callable[[torch.Tensor], np.ndarray], str]:
    """The function computing extractor ``name`` and its cache file's stem — the one place cache keys are made.

    Fixed extractors are keyed by name; the fitted ``domain`` encoder and the pretrained extractors by name and
    a hash of their weights, so features of different weights never mix.
    """
    if name == DOMAIN:
        if domain_weights is None:
            raise ValueError("the 'domain' extractor needs domain_weights: an encoder fitted on the real training images (ctqc.qc.domain)")
        return functools.partial(domain.domain_features, weights=Path(domain_weights)), f"{DOMAIN}-{domain.weights_digest(domain_weights)}"
    if name in extractors.SPECS:
        path = (weights or {}).get(name)
        if path is None:
            raise extractors.refuse(name, "(not set)", "no weights file given")
        if not Path(path).expanduser().is_file():
            raise extractors.refuse(name, path, "file not found")
        return functools.partial(extractors.pretrained_features, name=name, weights=path), f"{name}-{extractors.weights_digest(Path(path).expanduser())}"
    if name in EXTRACTORS:
        return EXTRACTORS[name], name
    raise ValueError(f"unknown feature extractor {name!r}; choose from {', '.join([*EXTRACTORS, DOMAIN, *extractors.SPECS])}")


def _read_cache(path: Path) -> tuple[list[str], np.ndarray | None]:
    if not path.is_file():
        return [], None
    try:
        with np.load(path, allow_pickle=False) as z:
            return z["keys"].tolist(), z["features"]
    except (OSError, ValueError, KeyError):  # a damaged cache is recomputed, never trusted
        return [], None


def feature_matrix(
    images: torch.Tensor, names: list[str], cache_dir: Path | None = None, domain_weights: Path | None = None, weights: Mapping[str, str | Path] | None = None
) -> tuple[np.ndarray, int | None]:
    """Concatenated features of ``images``, pixels first; returns (matrix, width of the pixel block or None)."""
    ordered = sorted(names, key=lambda n: n != "pixels")
    blocks = [extract(name, images, cache_dir, domain_weights, weights) for name in ordered]
    return np.hstack(blocks), (blocks[0].shape[1] if ordered[0] == "pixels" else None)
