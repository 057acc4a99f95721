"""CMMD and RBF-MMD: the Gaussian-kernel MMD² of Jayasumana et al. 2024 ("Rethinking FID: Towards a Better
Evaluation Metric for Image Generation", CVPR).

CMMD is the unbiased MMD² estimate between CLIP ViT-L/14 (336 px) image embeddings of two sets, with the
Gaussian RBF kernel k(x, y) = exp(−‖x − y‖² / (2σ²)), σ = 10, multiplied by 1,000. The embeddings are
L2-normalised first, as in the authors' code (google-research/cmmd, ``embedding.py``). ctqc computes
CMMD only on the ``clip-vit-l-14-336px`` extractor (:mod:`ctqc.qc.extractors`, local weights); the same
computation on any other extractor's features is reported as "RBF-MMD (<extractor>)" (:func:`ctqc.artefacts.qc.rbf_mmd_label`) — same kernel,
σ and scale, not comparable with published CMMD values. Note that the authors' released code averages
over all pairs including i = j (a biased V-statistic) while the paper states the unbiased estimator;
ctqc follows the paper (pairs of distinct samples), so values differ from that code by O(1/n).
Images reach CLIP through torch-fidelity's bilinear resize; the authors' code resizes bicubically.

The estimate and its bootstrap replicates come from one formula over kernel matrices and draw counts
(:func:`mmd_from_counts`), shared with KID's polynomial kernel in :mod:`ctqc.qc.metrics`.
"""

from __future__ import annotations

import numpy as np

SIGMA = 10.0  # the authors' bandwidth
SCALE = 1000.0  # the authors' reporting scale


def normalise(features: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (a zero row stays zero)."""
    norms = np.linalg.norm(features, axis=1, keepdims=True)
    return features / np.where(norms == 0, 1.0, norms)


def rbf_kernels(x: np.ndarray, y: np.ndarray, sigma: float = SIGMA) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gaussian kernel matrices (k_xx, k_xy, k_yy) of the L2-normalised rows of x (n×d) and y (m×d)."""
    x, y = normalise(x), normalise(y)
    sx, sy = (x * x).sum(1), (y * y).sum(1)

    def k(a, sa, b, sb):
        return np.exp(-np.clip(sa[:, None] + sb[None, :] - 2 * a @ b.T, 0.0, None) / (2 * sigma**2))

    return k(x, sx, x, sx), k(x, sx, y, sy), k(y, sy, y, sy)


def mmd_from_counts(k11: np.ndarray, k12: np.ndarray, k22: np.ndarray, c1: np.ndarray, c2: np.ndarray) -> np.ndarray:
    """Unbiased MMD² of resamples given as draw counts (rows of c1: B×n₁, c2: B×n₂; 1-d for one), from kernel matrices.

    Within-set terms leave out pairs of an image with itself *and with its own repeats* (they would count
    k(x, x) as a pair); NaN where a side has no such pair. All-ones counts give the usual unbiased estimate.
    """
    c1, c2 = np.atleast_2d(c1).astype(float), np.atleast_2d(c2).astype(float)
    n1, n2 = c1.sum(axis=1), c2.sum(axis=1)
    pairs_1, pairs_2 = n1**2 - np.einsum("bi,bi->b", c1, c1), n2**2 - np.einsum("bi,bi->b", c2, c2)
    within_1 = np.einsum("bi,bi->b", c1 @ k11, c1) - (c1**2) @ np.diag(k11)
    within_2 = np.einsum("bi,bi->b", c2 @ k22, c2) - (c2**2) @ np.diag(k22)
    cross = np.einsum("bi,bi->b", c1 @ k12, c2) / (n1 * n2)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = within_1 / pairs_1 + within_2 / pairs_2 - 2 * cross
    return np.where((pairs_1 == 0) | (pairs_2 == 0), np.nan, out)


def rbf_mmd(x: np.ndarray, y: np.ndarray, sigma: float = SIGMA, scale: float = SCALE) -> float:
    """CMMD's statistic of two feature matrices (n×d, m×d; n, m ≥ 2): scale × unbiased RBF MMD² of their normalised rows.

    In units of 10⁻³ MMD²; can be slightly negative (unbiased); 0 = same distribution.
    """
    if len(x) < 2 or len(y) < 2:
        raise ValueError("RBF-MMD needs at least two samples on each side")
    return float(scale * mmd_from_counts(*rbf_kernels(x, y, sigma), np.ones(len(x)), np.ones(len(y)))[0])
