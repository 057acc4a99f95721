"""What a per-image p(synthetic) means: reliability (calibration) and a conformal operating point.

:func:`reliability` bins equal-prior scores and compares each bin's mean score with the
share of synthetic images in it (or with a known true posterior, in simulations);
real images are weighted n_synthetic / n_real so that both sets count equally, as the
equal-prior score assumes. Its ECE is the weighted mean gap (Guo et al. 2017, binned).

:func:`conformal_threshold` is split conformal (Vovk et al. 2005; Angelopoulos & Bates
2021, §1): given the scores of n real images that took no part in fitting, the
⌈(n + 1)(1 − α)⌉-th smallest is a threshold that a new, exchangeable genuine image
exceeds with probability at most α (and at least α − 1/(n + 1)); exactly 1 − k/(n + 1) for
k = that rank and untied scores (:func:`conformal_expected_rejection`).

Neither changes a score: the filter applies them to the stored scores of ``qc/scores.csv``.
"""

from __future__ import annotations

import math

import numpy as np

N_BINS = 10


def reliability(scores: np.ndarray, labels: np.ndarray, target: np.ndarray | None = None, n_bins: int = N_BINS) -> dict:
    """Binned reliability curve and ECE of equal-prior scores.

    ``scores``: (n,) p(synthetic) in [0, 1]; ``labels``: (n,) 1 = synthetic, 0 = real (they set
    the weights: real images count n_synthetic / n_real each); ``target``: (n,) what the score
    should equal — the label (default) or, with known truth, the true equal-prior posterior.
    Bins: ``n_bins`` equal-width bins of the score. Returns ``{"ece": float in [0, 1],
    "bins": [{"lower", "upper", "n", "mean_score", "observed"}, ...]}`` over the non-empty bins,
    where ``observed`` is the weighted mean target (the synthetic share under equal priors).
    """
    scores, labels = np.asarray(scores, float), np.asarray(labels, int)
    target = labels.astype(float) if target is None else np.asarray(target, float)
    n_syn, n_real = int(labels.sum()), int((labels == 0).sum())
    if n_syn == 0 or n_real == 0:
        raise ValueError("reliability needs real and synthetic images")
    weights = np.where(labels == 1, 1.0, n_syn / n_real)
    which = np.clip((scores * n_bins).astype(int), 0, n_bins - 1)
    total = np.bincount(which, weights, n_bins)
    mean_score = np.bincount(which, weights * scores, n_bins) / np.maximum(total, 1e-300)
    observed = np.bincount(which, weights * target, n_bins) / np.maximum(total, 1e-300)
    counts = np.bincount(which, minlength=n_bins)
    ece = float(np.sum(total * np.abs(mean_score - observed)) / total.sum())
    bins = [
        {"lower": k / n_bins, "upper": (k + 1) / n_bins, "n": int(counts[k]), "mean_score": round(float(mean_score[k]), 4), "observed": round(float(observed[k]), 4)}
        for k in range(n_bins)
        if counts[k]
    ]
    return {"ece": round(ece, 4), "bins": bins}


def conformal_threshold(calibration_scores: np.ndarray, alpha: float) -> float | None:
    """The split-conformal threshold: reject a score above it, and a genuine image is rejected with probability ≤ α.

    ``calibration_scores``: (n,) p(synthetic) of real images that took no part in fitting;
    ``alpha`` in (0, 1). Returns the ⌈(n + 1)(1 − α)⌉-th smallest score, or None when
    n < 1/α − 1 (too few images for that guarantee: every image would have to be kept).
    """
    scores = np.sort(np.asarray(calibration_scores, float)[~np.isnan(np.asarray(calibration_scores, float))])
    rank = conformal_rank(len(scores), alpha)
    return None if rank is None else float(scores[rank - 1])


def conformal_rank(n: int, alpha: float) -> int | None:
    """⌈(n + 1)(1 − α)⌉, the rank of the conformal threshold among n calibration scores; None when it exceeds n."""
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must be between 0 and 1 (got {alpha})")
    rank = math.ceil((n + 1) * (1 - alpha) - 1e-9)  # guard 0.9 · 20 = 18.000000000000004
    return None if rank > n else rank


def conformal_expected_rejection(n: int, alpha: float) -> float | None:
    """P(a new exchangeable genuine score exceeds the conformal threshold) = 1 − k/(n + 1) ≤ α (untied scores; ties only lower it)."""
    rank = conformal_rank(n, alpha)
    return None if rank is None else 1 - rank / (n + 1)


def rejection_rate(scores: np.ndarray, threshold: float) -> dict:
    """Share of ``scores`` (real images' p(synthetic)) above ``threshold``, with a 95 % Wilson interval."""
    scores = np.asarray(scores, float)
    scores = scores[~np.isnan(scores)]
    n = len(scores)
    if n == 0:
        return {"rate": None, "ci": None, "n": 0}
    k = int(np.sum(scores > threshold))
    return {"rate": round(k / n, 4), "ci": wilson_interval(k, n), "n": n}


def wilson_interval(k: int, n: int) -> list[float]:
    """95 % Wilson score interval [low, high] of a share of ``k`` successes in ``n`` ≥ 1 independent trials (Wilson 1927)."""
    p, z = k / n, 1.959964
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return [round(max(0.0, centre - half), 4), round(min(1.0, centre + half), 4)]
