"""``structure``: translation-invariant local-structure features of the foreground, for the C2ST.

The C2ST's other fixed features see *global* properties: the pixels (through a PCA,
which needs a defect at the same place in every image), the radial power spectrum
of the whole image (head outline included) and the intensity histogram. Defects
that are local and at a different place in each image — noise, holes, anatomy
out of place — move those little. This extractor summarises the image's local
structure wherever it is, on the *foreground* only (pixels > −0.9, i.e. not air;
the edge of the head is left out by eroding the mask):

======  ============================================================================
column  feature (all on the eroded foreground; logs of non-negative values + 1e-6)
======  ============================================================================
0       log robust noise scale of the Laplacian residual r = ∇²x (5-point stencil,
        ``scipy.ndimage.laplace``): 1.4826 · median |r| — the median-absolute-
        deviation estimator of Donoho & Johnstone (1994) applied to a high-pass
        residual; for white noise of SD σ on flat tissue it is σ·√20
1–3     log mean, 90 % and 99 % quantile of |r| (blur lowers them; checkerboards,
        blockiness and noise raise them)
4–6     log median, 90 % and 99 % quantile of the Sobel gradient magnitude
        (``scipy.ndimage.sobel``)
7       holes: share of the filled head (``scipy.ndimage.binary_fill_holes``) that
        is air — missing tissue inside the head
8       left–right asymmetry: mean |x − x mirrored| about the head's vertical midline
        (the middle of its bounding box), where both are foreground
9–14    seams: per column, the mean |horizontal difference| over the foreground;
        log(max / median), log(second largest / median) and log(SD / mean) over the
        columns; then the same per row with vertical differences — a straight
        discontinuity (tiles or patches put together) stands out of the profile
======  ============================================================================

Images: N×1×S×S float in [-1, 1]; returns an N×15 float64 matrix, finite for any
input (an image with too little foreground gets the values of an empty one: 0 for
shares and ratios, log(1e-6) for scales). The features were chosen with the
self-test's defect families (noise, blur, checkerboard, blockiness, cut-out, patch
shuffle; :mod:`ctqc.qc.selftest`) in view, so the self-test's rates for those
families are in-design figures, not evidence for defects of other kinds.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

N_FEATURES = 15
AIR = -0.9  # the foreground threshold of the other features (histogram, self-test)
EPS = 1e-6
MAD_TO_SD = 1.4826  # 1 / Φ⁻¹(3/4): median |X| · this = SD for a normal X
MIN_PIXELS = 6  # fewer foreground pixels in a mask, a column or a row: not measured


def structure_features(images: torch.Tensor) -> np.ndarray:
    """N×1×S×S images in [-1, 1] → N×15 float64 (columns in the module docstring)."""
    x = images[:, 0].double().cpu().numpy()
    return np.stack([_one(img) for img in x]) if len(x) else np.zeros((0, N_FEATURES))


def _one(img: np.ndarray) -> np.ndarray:
    foreground = img > AIR
    inner = ndimage.binary_erosion(foreground, iterations=1)
    if inner.sum() < MIN_PIXELS:
        inner = foreground
    out = np.zeros(N_FEATURES)
    out[:7] = np.log(EPS)
    if inner.sum() >= MIN_PIXELS:
        residual = np.abs(ndimage.laplace(img)[inner])
        gradient = np.hypot(ndimage.sobel(img, axis=0), ndimage.sobel(img, axis=1))[inner]
        scales = [MAD_TO_SD * np.median(residual), residual.mean(), *np.quantile(residual, [0.9, 0.99]), *np.quantile(gradient, [0.5, 0.9, 0.99])]
        out[:7] = np.log(np.asarray(scales) + EPS)
    filled = ndimage.binary_fill_holes(foreground)
    out[7] = (filled & ~foreground).sum() / max(int(filled.sum()), 1)
    out[8] = _asymmetry(img, foreground)
    deep = ndimage.binary_erosion(foreground, iterations=2)
    out[9:12] = _seam(np.abs(np.diff(img, axis=1)), deep[:, 1:] & deep[:, :-1])
    out[12:15] = _seam(np.abs(np.diff(img, axis=0)).T, (deep[1:, :] & deep[:-1, :]).T)
    return out


def _asymmetry(img: np.ndarray, foreground: np.ndarray) -> float:
    """Mean |x − x mirrored| about the head's own vertical midline (its bounding box's), where both are foreground."""
    columns = np.flatnonzero(foreground.any(axis=0))
    if len(columns) == 0:
        return 0.0
    head, mask = img[:, columns[0] : columns[-1] + 1], foreground[:, columns[0] : columns[-1] + 1]
    both = mask & mask[:, ::-1]
    return float(np.abs(head - head[:, ::-1])[both].mean()) if both.any() else 0.0


def _seam(differences: np.ndarray, mask: np.ndarray) -> list[float]:
    """Profile of the mean masked difference per column of ``differences``: log(max/median), log(2nd/median), log(SD/mean)."""
    counts = mask.sum(axis=0)
    keep = counts >= MIN_PIXELS
    if keep.sum() < 3:
        return [0.0, 0.0, 0.0]
    profile = (differences * mask).sum(axis=0)[keep] / counts[keep]
    median, ordered = np.median(profile), np.sort(profile)
    return [float(np.log((ordered[-1] + EPS) / (median + EPS))), float(np.log((ordered[-2] + EPS) / (median + EPS))), float(np.log((profile.std() + EPS) / (profile.mean() + EPS)))]
