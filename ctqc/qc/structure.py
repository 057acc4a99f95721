"""``structure``: translation-invariant local-structure features of the foreground, for the C2ST.

The C2ST's other fixed features see *global* properties: the pixels (through a PCA,
which needs a defect at the same place in every image), the radial power spectrum
of the whole image (head outline included) and the intensity histogram. Defects
that are local and at a different place in each image — noise, holes, anatomy
out of place — move those little. This extractor summarises the image's local
structure wherever it is, on the *foreground* only (pixels above
:data:`ctqc.qc.pixels.AIR_LEVEL`, i.e. not air), with the edge of the head kept out
of each filter's window by eroding the mask:

======  ============================================================================
column  feature
======  ============================================================================
0       log robust noise scale of the Laplacian residual r = ∇²x (5-point stencil,
        ``scipy.ndimage.laplace``) on the foreground eroded by the stencil's
        4-neighbour cross: 1.4826 · median |r| — the median-absolute-deviation
        estimator of Donoho & Johnstone (1994) applied to a high-pass residual; for
        white noise of SD σ on flat tissue it is σ·√20
1–3     log mean, 90 % and 99 % quantile of |r| on the same mask (blur lowers them;
        checkerboards, blockiness and noise raise them)
4–6     log median, 90 % and 99 % quantile of the Sobel gradient magnitude
        (``scipy.ndimage.sobel``) on the foreground eroded by the Sobel filter's 3×3
        window, so a flat head gives log(1e-6) whatever its outline
7       holes: share of the filled head (``scipy.ndimage.binary_fill_holes``) that
        is air — missing tissue inside the head (raw foreground; a share, no log)
8       left–right asymmetry: mean |x − x mirrored| about the vertical midline of the
        largest connected foreground region (the head: stray bright pixels in the air
        do not move it), where both are foreground (an intensity, no log)
9–14    seams, on the foreground eroded twice: per column, the mean |horizontal
        difference|; log(max / median), log(second largest / median) and log(SD /
        mean) over the columns; then the same per row with vertical differences —
        a straight discontinuity (tiles or patches put together) stands out of the
        profile
======  ============================================================================

Logs are of the value + 1e-6. Images: N×1×S×S, finite, in [-1, 1]; returns an N×15
float64 matrix, finite for such input. A mask with fewer than 6 pixels measures
nothing: columns 0–6 then take log(1e-6) (when the eroded mask is that small, the
uneroded foreground is used first, edge included) and 9–14 take 0; columns 7–8 are
computed for any foreground (0 without any). The features were chosen with the
self-test's defect families (noise, blur, checkerboard, blockiness, cut-out, patch
shuffle; :mod:`ctqc.qc.selftest`) in view, so the self-test's rates for those
families are in-design figures, not evidence for defects of other kinds.
"""

from __future__ import annotations

import numpy as np
import torch
from scipy import ndimage

from ctqc.qc.pixels import AIR_LEVEL

N_FEATURES = 15
EPS = 1e-6
MAD_TO_SD = 1.4826  # 1 / Φ⁻¹(3/4): median |X| · this = SD for a normal X
MIN_PIXELS = 6  # fewer pixels in a mask, a column or a row: not measured
CROSS = ndimage.generate_binary_structure(2, 1)  # the 5-point Laplacian's window
SQUARE = np.ones((3, 3), bool)  # the Sobel filter's window


def structure_features(images: torch.Tensor) -> np.ndarray:
    """N×1×S×S finite images in [-1, 1] → N×15 float64 (columns in the module docstring)."""
    x = images[:, 0].double().cpu().numpy()
    return np.stack([_one(img) for img in x]) if len(x) else np.zeros((0, N_FEATURES))


def _one(img: np.ndarray) -> np.ndarray:
    foreground = img > AIR_LEVEL
    out = np.zeros(N_FEATURES)
    out[:7] = np.log(EPS)
    cross = _mask(foreground, CROSS)
    if cross is not None:
        residual = np.abs(ndimage.laplace(img)[cross])
        out[:4] = np.log(np.array([MAD_TO_SD * np.median(residual), residual.mean(), *np.quantile(residual, [0.9, 0.99])]) + EPS)
    square = _mask(foreground, SQUARE)
    if square is not None:
        gradient = np.hypot(ndimage.sobel(img, axis=0), ndimage.sobel(img, axis=1))[square]
        out[4:7] = np.log(np.quantile(gradient, [0.5, 0.9, 0.99]) + EPS)
    filled = ndimage.binary_fill_holes(foreground)
    out[7] = (filled & ~foreground).sum() / max(int(filled.sum()), 1)
    out[8] = _asymmetry(img, foreground)
    deep = ndimage.binary_erosion(foreground, structure=CROSS, iterations=2)
    out[9:12] = _seam(np.abs(np.diff(img, axis=1)), deep[:, 1:] & deep[:, :-1])
    out[12:15] = _seam(np.abs(np.diff(img, axis=0)).T, (deep[1:, :] & deep[:-1, :]).T)
    return out


def _mask(foreground: np.ndarray, window: np.ndarray) -> np.ndarray | None:
    """The foreground eroded by a filter's ``window`` (the window then sees no air), else the foreground; None below 6 px."""
    eroded = ndimage.binary_erosion(foreground, structure=window)
    mask = eroded if eroded.sum() >= MIN_PIXELS else foreground
    return mask if mask.sum() >= MIN_PIXELS else None


def _asymmetry(img: np.ndarray, foreground: np.ndarray) -> float:
    """Mean |x − x mirrored| about the vertical midline of the largest foreground region, where both are foreground."""
    regions, n = ndimage.label(foreground)
    if n == 0:
        return 0.0
    largest = 1 + int(np.argmax(ndimage.sum_labels(foreground, regions, index=np.arange(1, n + 1))))
    columns = np.flatnonzero((regions == largest).any(axis=0))
    head, mask = img[:, columns[0] : columns[-1] + 1], foreground[:, columns[0] : columns[-1] + 1]
    both = mask & mask[:, ::-1]
    return float(np.abs(head - head[:, ::-1])[both].mean()) if both.any() else 0.0


def _seam(differences: np.ndarray, mask: np.ndarray) -> list[float]:
    """Profile of the mean masked difference per column of ``differences``: log(max/median), log(2nd/median), log(SD/mean)."""
    counts = mask.sum(axis=0)
    keep = counts >= MIN_PIXELS
    if keep.sum() < 3:
        return [0.0, 0.0, 0.0]
    profile = np.where(mask, differences, 0.0).sum(axis=0)[keep] / counts[keep]
    median, ordered = np.median(profile), np.sort(profile)
    return [float(np.log((ordered[-1] + EPS) / (median + EPS))), float(np.log((ordered[-2] + EPS) / (median + EPS))), float(np.log((profile.std() + EPS) / (profile.mean() + EPS)))]
