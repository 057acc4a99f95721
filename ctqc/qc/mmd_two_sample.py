"""Kernel two-sample test: unbiased MMD² with a Gaussian RBF kernel and a permutation p-value.

Gretton, Borgwardt, Rasch, Schölkopf & Smola (2012), "A kernel two-sample test", JMLR 13:
with real features X (m × d), synthetic features Y (n × d) and a kernel k,

    MMD²_u = 1/(m(m−1)) Σ_{i≠j} k(x_i, x_j) + 1/(n(n−1)) Σ_{i≠j} k(y_i, y_j) − 2/(mn) Σ_{i,j} k(x_i, y_j)

(their eq. 3), an unbiased estimate of the squared distance between the two distributions' kernel
mean embeddings: 0 in expectation when both sets come from one distribution, > 0 otherwise for a
characteristic kernel such as the Gaussian k(a, b) = exp(−‖a − b‖² / (2σ²)). Unlike the linear
C2ST, which sees a difference of means, the MMD also sees a loss of spread, a few repeated modes
or duplicated images (a set with half the real spread: see ``tests/test_mmd.py``).

Features (:func:`mmd_features`): standardise, PCA of a pixel block (when there is one) to
``qc.pca_components``, standardise (:func:`ctqc.qc.classifiers.feature_transform`, the C2ST's
transform; without a pixel block only standardised, whereas the C2ST then reduces all columns) —
fitted on the *pooled* images, so it does not depend on which image is real.
Bandwidth σ: the median pairwise Euclidean distance of the pooled, transformed features (the
median heuristic, Gretton et al. 2012, section 8). Both are label-free, so the permutation test is
exact: the kernel matrix is computed once and each permutation only relabels its rows — p-value
(1 + #{MMD²_perm ≥ MMD²}) / (B + 1).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctqc.qc.classifiers import feature_transform

KERNEL = "gaussian RBF, median-heuristic bandwidth"


@dataclass(frozen=True)
class MMDTest:
    """What :func:`mmd_test` found: the statistic, its permutation null and p-value, the bandwidth."""

    mmd2: float  # unbiased MMD² (can be slightly negative under the null)
    p_value: float | None  # permutation p-value in (0, 1]; None without permutations
    bandwidth: float  # σ of the Gaussian kernel, in transformed-feature units
    null: np.ndarray  # (B,) MMD² of the permuted labellings
    n_real: int
    n_synthetic: int


def rbf_kernel(z: np.ndarray, bandwidth: float) -> np.ndarray:
    """(N × N) Gaussian kernel exp(−‖z_i − z_j‖² / (2σ²)) of the rows of ``z`` (N × d); σ = ``bandwidth`` > 0.

    Equals scikit-learn's ``rbf_kernel(z, gamma=1 / (2σ²))`` (tested).
    """
    if not bandwidth > 0:
        raise ValueError(f"the kernel bandwidth must be positive, got {bandwidth}")
    return np.exp(-_squared_distances(z) / (2.0 * bandwidth**2))


def median_bandwidth(z: np.ndarray) -> float:
    """The median heuristic: median Euclidean distance over the distinct pairs of rows of ``z`` (N × d, N ≥ 2).

    Falls back to 1.0 when more than half the pairs coincide (median 0), e.g. a set of identical images.
    """
    if len(z) < 2:
        raise ValueError("the median heuristic needs at least two points")
    sq = _squared_distances(z)
    median = float(np.sqrt(np.median(sq[np.triu_indices(len(z), k=1)])))
    return median if median > 0 else 1.0


def mmd2_unbiased(kernel: np.ndarray, is_x: np.ndarray) -> np.ndarray:
    """Unbiased MMD² (Gretton et al. 2012, eq. 3) from a pooled kernel matrix, for one or many labellings.

    ``kernel``: (N × N) symmetric kernel matrix of the pooled samples. ``is_x``: (N,) bool — True for
    the rows of X — or (N × B) for B labellings at once, each with the same m X rows (m ≥ 2, N − m ≥ 2).
    Returns a float (one labelling) or a (B,) array. With s the X indicator and K₀ the kernel with a
    zero diagonal, Σ_{i≠j∈X} k = sᵀK₀s, Σ_{i≠j∈Y} k = (1−s)ᵀK₀(1−s) and Σ_{X×Y} k = sᵀK₀(1−s),
    so all B statistics cost one N × N × B matrix product.
    """
    s = np.asarray(is_x, dtype=np.float64)
    single = s.ndim == 1
    s = s[:, None] if single else s
    m = s.sum(axis=0)
    n = len(s) - m
    if np.any(m < 2) or np.any(n < 2):
        raise ValueError("the unbiased MMD² needs at least two samples on each side")
    k0 = np.array(kernel, dtype=np.float64)
    np.fill_diagonal(k0, 0.0)
    ks = k0 @ s  # N × B
    total = k0.sum(axis=1)[:, None]  # K₀·1
    xx = np.sum(s * ks, axis=0)
    xy = np.sum((1 - s) * ks, axis=0)
    yy = np.sum((1 - s) * (total - ks), axis=0)
    out = xx / (m * (m - 1)) + yy / (n * (n - 1)) - 2 * xy / (m * n)
    return float(out[0]) if single else out


def mmd_test(real: np.ndarray, synthetic: np.ndarray, n_permutations: int = 200, seed: int = 0, bandwidth: float | None = None) -> MMDTest:
    """Unbiased MMD² of ``real`` (m × d) vs ``synthetic`` (n × d) with a Gaussian kernel, and its permutation p-value.

    The features are used as given (see :func:`mmd_features` for the C2ST's transform). σ: the
    median heuristic on the pooled rows unless ``bandwidth`` is given. p-value: (1 + #{MMD²_perm ≥
    MMD²}) / (B + 1) over B = ``n_permutations`` random relabellings of the pooled rows (None for
    B = 0). Needs m, n ≥ 2 (ValueError otherwise). Cost: one N × N kernel and one N × N × B product.
    """
    real, synthetic = np.asarray(real, dtype=np.float64), np.asarray(synthetic, dtype=np.float64)
    if real.ndim != 2 or synthetic.ndim != 2 or real.shape[1] != synthetic.shape[1]:
        raise ValueError(f"expected two 2-D feature matrices with equal widths, got {real.shape} and {synthetic.shape}")
    if min(len(real), len(synthetic)) < 2:
        raise ValueError(f"the MMD test needs at least two real and two synthetic images (got {len(real)} and {len(synthetic)})")
    pooled = np.vstack([real, synthetic])
    sigma = median_bandwidth(pooled) if bandwidth is None else float(bandwidth)
    kernel = rbf_kernel(pooled, sigma)
    is_real = np.r_[np.ones(len(real), bool), np.zeros(len(synthetic), bool)]
    observed = mmd2_unbiased(kernel, is_real)
    null, p_value = np.zeros(0), None
    if n_permutations:
        rng = np.random.default_rng(seed)
        labellings = np.stack([rng.permutation(is_real) for _ in range(n_permutations)], axis=1)
        null = mmd2_unbiased(kernel, labellings)
        p_value = float((1 + np.sum(null >= observed - 1e-12)) / (n_permutations + 1))
    return MMDTest(mmd2=observed, p_value=p_value, bandwidth=sigma, null=null, n_real=len(real), n_synthetic=len(synthetic))


def mmd_features(real: np.ndarray, synthetic: np.ndarray, pca_components: int, pixel_columns: int | None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(real, synthetic) after a label-free transform, fitted on both sets pooled.

    Standardise; with a pixel block (``pixel_columns``) and ``pca_components`` > 0, PCA of that
    block to min(``pca_components``, N − 1) dimensions, re-standardised, the other columns
    standardised (:func:`ctqc.qc.classifiers.feature_transform`). Fitting on the pooled rows keeps
    the transform blind to which rows are real, as the permutation test needs.
    """
    pooled = np.vstack([real, synthetic]).astype(np.float64)
    z = feature_transform(seed, len(pooled), pca_components, pixel_columns).fit_transform(pooled)
    return z[: len(real)], z[len(real) :]


def configured_mmd(real: np.ndarray, synthetic: np.ndarray, qc, seed: int, pixel_columns: int | None, n_permutations: int | None = None) -> MMDTest | None:
    """The MMD test as ``qc`` (a :class:`ctqc.config.QCConfig`) configures it, on the C2ST's features.

    B = ``qc.n_permutations`` unless ``n_permutations`` is given; None when either set has < 2 rows.
    """
    if min(len(real), len(synthetic)) < 2:
        return None
    x, y = mmd_features(real, synthetic, qc.pca_components, pixel_columns, seed)
    return mmd_test(x, y, qc.n_permutations if n_permutations is None else n_permutations, seed=seed + 30_011)


def mmd_summary(test: MMDTest | None) -> dict:
    """JSON-ready result of a fitted test (``ctqc.artefacts.MMDResult``); None entries and a note without one."""
    if test is None:
        return {"mmd2": None, "p_value": None, "kernel": KERNEL, "note": "too few images for an MMD test"}
    return {
        "mmd2": round(test.mmd2, 6),
        "p_value": None if test.p_value is None else round(test.p_value, 6),
        "bandwidth": round(test.bandwidth, 6),
        "n_permutations": len(test.null),
        "kernel": KERNEL,
        "n_real": test.n_real,
        "n_synthetic": test.n_synthetic,
    }


def _squared_distances(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    sq = (z * z).sum(axis=1)
    return np.maximum(sq[:, None] + sq[None, :] - 2.0 * z @ z.T, 0.0)
