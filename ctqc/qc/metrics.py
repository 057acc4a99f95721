"""Distribution metrics — FID, KID, precision/recall — with bootstrap CIs and real-vs-real floors.

All three are torch-fidelity's definitions, computed on feature matrices (the
Inception features come from :mod:`ctqc.qc.features`, cached per image):

- **KID** and **precision/recall** call torch-fidelity's own
  ``kid_features_to_metric`` / ``prc_features_to_metric``.
- **FID** equals torch-fidelity's ``fid_statistics_to_metric`` (tested to 1e-6),
  but computes the trace term tr sqrt(Σ₁Σ₂) in the low-rank form: with centred
  features A₁ (n₁×d) and A₂ (n₂×d), Σ₁Σ₂ has the same non-zero eigenvalues as
  MMᵀ for M = A₁A₂ᵀ / sqrt((n₁-1)(n₂-1)), so the trace is M's nuclear norm — an
  n₁×n₂ SVD instead of a d×d non-symmetric eigenproblem (2048³, ~30 s here). That
  is what makes 200 bootstrap replicates affordable.

Every synthetic-vs-real number comes with its **floor**: the same metric between
two disjoint *real* sets — the held-out real images against the reference
(training) images. A synthetic value near its floor means "as close to the
training images as unseen real images are". Because FID is biased by sample size,
the floor and a size-matched synthetic value (``matched``: synthetic subsets of
the held-out set's size, averaged) are computed with the same n. FID and KID are
judged against their floor there: ``gap`` is synthetic − floor at the floor's n
with a bootstrap CI whose replicates share one reference set, and a verdict —
above the floor, within it, or below it (closer to the training images than
unseen real images: a copying signal); see :mod:`ctqc.qc.gap`.

CIs are 95 % bootstrap intervals over images (both sets resampled, computed
from resampling counts: :class:`_Resampled`). KID's replicates leave out pairs
of an image with its own repeat; FID's interval is
centred on the estimate (see :func:`_interval`); for precision/recall the k-NN
manifolds are held fixed and the per-image indicators are resampled.
"""

from __future__ import annotations

import numpy as np
import torch

from ctqc.qc.fidelity_metrics import fidelity_indicators
from ctqc.qc.gap import matched_subsets, size_matched_gap
from ctqc.qc.mmd import SCALE, mmd_from_counts, rbf_kernels, rbf_mmd

FID_FEATURE_WARNING = 2048


def fid(features_1: np.ndarray, features_2: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature matrices (torch-fidelity's FID)."""
    a1 = features_1 - features_1.mean(axis=0)
    a2 = features_2 - features_2.mean(axis=0)
    n1, n2 = len(a1), len(a2)
    if n1 < 2 or n2 < 2:
        raise ValueError("FID needs at least two images on each side")
    diff = features_1.mean(axis=0) - features_2.mean(axis=0)
    trace_1 = float(np.einsum("ij,ij->", a1, a1)) / (n1 - 1)
    trace_2 = float(np.einsum("ij,ij->", a2, a2)) / (n2 - 1)
    cross = (a1 @ a2.T) / np.sqrt((n1 - 1) * (n2 - 1))
    tr_covmean = float(np.linalg.svd(cross, compute_uv=False).sum())
    return float(diff @ diff + trace_1 + trace_2 - 2 * tr_covmean)


def kid_subset_size(n1: int, n2: int) -> int:
    """torch-fidelity's default 1000, capped at half the smaller set (subsets of all n images have zero spread)."""
    return min(1000, max(2, min(n1, n2) // 2))


def kid(features_1: np.ndarray, features_2: np.ndarray, subsets: int = 100, seed: int = 0) -> tuple[float, float]:
    """torch-fidelity's KID (polynomial kernel, unbiased MMD² over random subsets): (mean, std)."""
    from torch_fidelity.metric_kid import KEY_METRIC_KID_MEAN, KEY_METRIC_KID_STD, kid_features_to_metric

    out = kid_features_to_metric(
        torch.from_numpy(features_1),
        torch.from_numpy(features_2),
        kid_subsets=subsets,
        kid_subset_size=kid_subset_size(len(features_1), len(features_2)),
        kid_degree=3,
        kid_gamma=None,
        kid_coef0=1,
        kid_kernel="poly",
        rng_seed=seed,
        verbose=False,
    )
    return out[KEY_METRIC_KID_MEAN], out[KEY_METRIC_KID_STD]


def precision_recall(generated: np.ndarray, real: np.ndarray, neighborhood: int = 3) -> tuple[float, float]:
    """torch-fidelity's improved precision/recall (Kynkäänniemi et al. 2019) of ``generated`` w.r.t. ``real``."""
    from torch_fidelity.metric_prc import KEY_METRIC_PRECISION, KEY_METRIC_RECALL, prc_features_to_metric

    k = _neighborhood(len(generated), len(real), neighborhood)
    out = prc_features_to_metric(torch.from_numpy(generated).float(), torch.from_numpy(real).float(), prc_neighborhood=k, prc_batch_size=10000, save_cpu_ram=False, verbose=False)
    return out[KEY_METRIC_PRECISION], out[KEY_METRIC_RECALL]


def _neighborhood(n1: int, n2: int, k: int) -> int:
    return max(1, min(k, n1 - 1, n2 - 1))


def _pr_indicators(generated: np.ndarray, real: np.ndarray, neighborhood: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-image indicators behind precision (per generated image) and recall (per real image)."""
    k = _neighborhood(len(generated), len(real), neighborhood)
    g, r = torch.from_numpy(generated).float(), torch.from_numpy(real).float()
    radius_g = torch.cdist(g, g).kthvalue(k + 1, dim=1).values
    radius_r = torch.cdist(r, r).kthvalue(k + 1, dim=1).values
    d_rg = torch.cdist(r, g)
    recall = (d_rg <= radius_g[None, :]).any(dim=1).numpy()
    precision = (d_rg.T <= radius_r[None, :]).any(dim=1).numpy()
    return precision.astype(float), recall.astype(float)


_GRAM_CHUNK = 32  # replicates whose small Gram matrices are decomposed together


class _Resampled:
    """Bootstrap replicates of FID, KID and precision/recall from resampling *counts*, not copied rows.

    A resample is a count per image (how often it was drawn). Everything is computed from
    matrices built once: the cross Gram matrix G = F₁F₂ᵀ and the KID kernels. For FID, the
    resampled centred cross matrix has the same singular values as D₁^½ C D₂^½, with C the
    centred cross matrix of the distinct images and D the counts — so a replicate costs one
    small eigendecomposition (see :meth:`fid`) instead of re-centring n×2048 copies. For KID,
    pairs of an image with its own repeat are left out of the within-set terms (they would
    count k(x, x) as a pair).
    """

    def __init__(self, generated: np.ndarray, real: np.ndarray, prec_ind: np.ndarray, rec_ind: np.ndarray) -> None:
        self.n1, self.n2 = len(generated), len(real)
        dim = generated.shape[1]
        # Gram matrices: every FID/KID replicate is then a few products with count vectors, never 2,048-d work
        self.g11, self.g12, self.g22 = generated @ generated.T, generated @ real.T, real @ real.T
        self.k11, self.k12, self.k22 = (self.g11 / dim + 1) ** 3, (self.g12 / dim + 1) ** 3, (self.g22 / dim + 1) ** 3
        self.sq1, self.sq2 = np.diag(self.g11).copy(), np.diag(self.g22).copy()
        self.prec_ind, self.rec_ind = prec_ind, rec_ind
        self.rbf = rbf_kernels(generated, real)
        self.fidelity = fidelity_indicators(generated, real)

    def fid(self, c1: np.ndarray, c2: np.ndarray) -> np.ndarray:
        """FID of each resample (rows of the count matrices c1: B×n₁, c2: B×n₂; 1-d for one resample).

        Means and cross terms come from the Gram matrices (m₁·m₂ = c₁ᵀG₁₂c₂ / n₁n₂, …). The trace
        term's nuclear norm is that of W = D₁^½ P₁ G₁₂ P₂ᵀ D₂^½ / s, with P = I - 1cᵀ/n centring
        by the counts; it is taken from the eigenvalues of the small Gram matrix of W, built
        without forming W: WᵀW = D₂^½ P₂ (G₁₂ᵀ D₁ G₁₂ - vvᵀ/n₁) P₂ᵀ D₂^½ / s², v = G₁₂ᵀc₁, as
        P₁ᵀD₁P₁ = D₁ - c₁c₁ᵀ/n₁. One product per resample, then one batched eigvalsh.
        """
        c1, c2 = np.atleast_2d(c1), np.atleast_2d(c2)
        n1, n2 = self.n1, self.n2
        mm11 = np.einsum("bi,bi->b", c1 @ self.g11, c1) / n1**2
        mm22 = np.einsum("bi,bi->b", c2 @ self.g22, c2) / n2**2
        mm12 = np.einsum("bi,bi->b", c1 @ self.g12, c2) / (n1 * n2)
        trace_1 = (c1 @ self.sq1 - n1 * mm11) / (n1 - 1)
        trace_2 = (c2 @ self.sq2 - n2 * mm22) / (n2 - 1)
        # the Gram matrix on the smaller side (W and Wᵀ have the same singular values)
        g, ca, cb = (self.g12, c1, c2) if n1 >= n2 else (self.g12.T, c2, c1)
        na, nb = g.shape  # each resample draws as many images as its set has
        nuclear = np.empty(len(c1))
        for start in range(0, len(c1), _GRAM_CHUNK):  # bounded memory for any number of replicates
            rows = range(start, min(start + _GRAM_CHUNK, len(c1)))
            grams = np.empty((len(rows), nb, nb))
            for i, b in enumerate(rows):
                v = ca[b] @ g
                inner = (g.T * ca[b]) @ g - np.outer(v, v) / na
                inner -= (inner @ cb[b])[:, None] / nb  # · P_bᵀ
                inner -= (cb[b] @ inner)[None, :] / nb  # P_b ·
                root = np.sqrt(cb[b])
                grams[i] = root[:, None] * inner * root[None, :] / ((n1 - 1) * (n2 - 1))
            nuclear[start : start + len(rows)] = np.sqrt(np.clip(np.linalg.eigvalsh(grams), 0.0, None)).sum(axis=1)
        return mm11 + mm22 - 2 * mm12 + trace_1 + trace_2 - 2 * nuclear

    def kid(self, c1: np.ndarray, c2: np.ndarray) -> np.ndarray:
        """KID of each resample (rows of c1, c2), NaN where a resample has no pairs (:func:`ctqc.qc.mmd.mmd_from_counts`)."""
        return mmd_from_counts(self.k11, self.k12, self.k22, c1, c2)

    def replicates(self, c1: np.ndarray, c2: np.ndarray) -> dict[str, np.ndarray]:
        """Every metric for each resample: c1 is B×n₁, c2 B×n₂ (draw counts per image)."""
        return {
            "fid": self.fid(c1, c2),
            "kid": self.kid(c1, c2),
            "precision": c1 @ self.prec_ind / self.n1,
            "recall": c2 @ self.rec_ind / self.n2,
            "rbf_mmd": SCALE * mmd_from_counts(*self.rbf, c1, c2),
            **self.fidelity.scalars(c1, c2),  # α-precision, β-recall, authenticity: supports fixed, indicators resampled
        }


def _interval(values: list[float], estimate: float, centred: bool) -> tuple[float | None, float | None]:
    """95 % percentile interval; ``centred`` shifts the bootstrap distribution's mean onto the estimate.

    FID is a plug-in estimate whose bias grows as the number of distinct images falls, and a
    resample holds only ~63 % distinct images, so raw FID replicates sit above the estimate; the
    centred interval keeps their spread and drops that resampling artefact.
    """
    finite = np.asarray([v for v in values if np.isfinite(v)])
    if len(finite) < 10:
        return None, None
    shift = estimate - finite.mean() if centred else 0.0
    return float(np.percentile(finite, 2.5) + shift), float(np.percentile(finite, 97.5) + shift)


def compare_sets(generated: np.ndarray, real: np.ndarray, n_bootstrap: int, seed: int, neighborhood: int = 3) -> dict:
    """FID, KID (mean ± std), precision/recall, RBF-MMD (:mod:`ctqc.qc.mmd`) and α-precision/β-recall/authenticity
    (:mod:`ctqc.qc.fidelity_metrics`) of ``generated`` vs ``real``, each with a bootstrap 95 % CI."""
    rng = np.random.default_rng(seed)
    n1, n2 = len(generated), len(real)
    k_mean, k_std = kid(generated, real, seed=seed)
    precision, recall = precision_recall(generated, real, neighborhood)
    resampled = _Resampled(generated, real, *_pr_indicators(generated, real, neighborhood))
    counts = [
        (np.bincount(rng.integers(0, n1, n1), minlength=n1), np.bincount(rng.integers(0, n2, n2), minlength=n2)) for _ in range(n_bootstrap)
    ]  # drawn in the same order as one replicate at a time, so the intervals are unchanged
    c1 = np.array([c for c, _ in counts], dtype=float).reshape(n_bootstrap, n1)
    c2 = np.array([c for _, c in counts], dtype=float).reshape(n_bootstrap, n2)
    boot = {name: list(values) for name, values in resampled.replicates(c1, c2).items()}
    values = {"fid": fid(generated, real), "kid": k_mean, "precision": precision, "recall": recall, "rbf_mmd": rbf_mmd(generated, real), **resampled.fidelity.point()}
    out = {}
    for name, value in values.items():
        low, high = _interval(boot[name], value, centred=name == "fid")
        out[name] = {"value": float(value), "ci_low": low, "ci_high": high}
    out["kid"]["std"] = float(k_std)
    return out


def distribution_metrics(synthetic: np.ndarray, reference: np.ndarray, heldout: np.ndarray, n_bootstrap: int = 200, seed: int = 0, matched_draws: int = 10) -> dict:
    """Synthetic vs reference (training) images, next to the floor: held-out real vs reference.

    Returns ``{"n_real", "n_synthetic", "n_floor", "warnings", "fid"|"kid"|"precision"|"recall"|"rbf_mmd"|"alpha_precision"|"beta_recall"|"authenticity": {value,
    ci_low, ci_high, matched, floor, floor_ci_low, floor_ci_high}}`` — ``matched`` is the synthetic value
    at the floor's sample size (mean over ``matched_draws`` random synthetic subsets). FID and KID also
    carry ``gap`` (:func:`ctqc.qc.gap.size_matched_gap`: synthetic − floor at that n, on the same
    subsets as ``matched``, with its CI and verdict) whenever there is a floor. Features are n×d
    matrices (any d; 2048-d Inception in a run); raises ValueError with fewer than two synthetic or
    reference images.
    """
    if len(synthetic) < 2 or len(reference) < 2:
        raise ValueError("distribution metrics need at least two synthetic and two reference images")
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):  # many small matrix products: BLAS threads only add overhead here
        return _distribution_metrics(synthetic, reference, heldout, n_bootstrap, seed, matched_draws)


def _distribution_metrics(synthetic, reference, heldout, n_bootstrap, seed, matched_draws) -> dict:
    result: dict = {"n_real": len(reference), "n_synthetic": len(synthetic), "n_floor": len(heldout), "warnings": []}
    main = compare_sets(synthetic, reference, n_bootstrap, seed)
    floor = compare_sets(heldout, reference, n_bootstrap, seed + 1) if len(heldout) >= 2 else None
    rng = np.random.default_rng(seed + 2)
    matched: dict[str, list[float]] = {name: [] for name in main}
    subsets = matched_subsets(len(synthetic), len(heldout), matched_draws, rng) if floor is not None and len(heldout) < len(synthetic) else []
    for idx in subsets:
        sub = synthetic[idx]
        matched["fid"].append(fid(sub, reference))
        matched["kid"].append(kid(sub, reference, subsets=20, seed=seed)[0])
        p, r = precision_recall(sub, reference)
        matched["precision"].append(p)
        matched["recall"].append(r)
        matched["rbf_mmd"].append(rbf_mmd(sub, reference))
        for name, value in fidelity_indicators(sub, reference).point().items():
            matched[name].append(value)
    gaps = size_matched_gap(synthetic, reference, heldout, n_bootstrap, seed + 3, matched_draws, subsets or None) if floor is not None else {}
    for name, entry in main.items():
        entry["matched"] = float(np.mean(matched[name])) if matched[name] else entry["value"]
        entry["floor"] = None if floor is None else floor[name]["value"]
        entry["floor_ci_low"] = None if floor is None else floor[name]["ci_low"]
        entry["floor_ci_high"] = None if floor is None else floor[name]["ci_high"]
        if name in gaps:
            entry["gap"] = gaps[name]
        result[name] = entry
    dim = synthetic.shape[1]
    small = min(len(synthetic), len(reference))
    if small < min(dim, FID_FEATURE_WARNING):
        result["warnings"].append(
            f"FID from {small} images < {dim} feature dimensions: its covariance is rank-deficient and the value is biased "
            "upwards and high-variance — compare it with the floor at the same n, and prefer KID"
        )
    if floor is None:
        result["warnings"].append("fewer than two held-out real images: no real-vs-real floor")
    return result
