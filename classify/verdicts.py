"""Image-level uncertainty for comparing classifier arms: estimates, paired bootstrap intervals, sign-flip test, MDE (issue 16).

What is estimated (the *estimand*): a metric of the trained pipeline on images
like the test images, averaged over training seeds — e.g. "balanced accuracy of
the trained pipeline on images like these, averaged over training seeds". Its
uncertainty has two sources, and the interval includes both:

- **test images** (which images happened to be drawn): a class-stratified
  bootstrap over images (Efron & Tibshirani 1993, ch. 13, percentile interval);
  every arm uses the *same* resample, so a difference of two arms is paired;
- **training seeds** (the inner level): each image's per-seed correctness is
  averaged over seeds (and over repeats of a k-fold design) before images are
  resampled. Seeds are averaged rather than resampled because a bootstrap over 3
  to 10 seeds has a handful of distinct outcomes and shrinks their variance by
  (S − 1)/S. What averaging leaves out — a shift shared by every image of one
  training (one seed is luckier than another) — is added as a component
  whose variance is the between-seed variance of the metric net of the
  image × seed noise (two-way random-effects ANOVA, method of moments; Searle,
  Casella & McCulloch 1992, ch. 4), divided by the number of seeds, drawn from a
  t distribution with (seeds − 1) degrees of freedom because that variance is
  itself estimated from a few seeds.

Data layout. ``correct`` is an array ``(..., R, N)`` of 0/1 (or fractions in
[0, 1]) over R *replicates* and N test images: a replicate is one complete set
of predictions of every test image — in a holdout design one seed, in a k-fold
design one (repeat, seed) whose out-of-fold predictions of the K fold models are
pooled first, so that every real image is tested once per replicate (folds are
never resampled as clusters: five clusters give intervals that are too narrow).
Leading dimensions ``...`` are independent data sets (simulations) that share
one resample. ``labels`` is ``(N,)`` of class indices 0..K-1 (binary: 1 is the
positive class).

Metrics (:data:`METRICS`; fractions in [0, 1], differences in [-1, 1]) are
weighted means of per-image correctness with fixed weights (:func:`image_weights`);
stratifying the bootstrap by class keeps the class sizes and so the weights fixed.

The test (:func:`sign_flip_test`) is a paired permutation test over images on the
seed-averaged per-image differences (Fisher 1935; Good 2005, ch. 3): exact
(all 2ᵐ sign patterns of the m non-zero differences) when m ≤ :data:`EXACT_MAX`,
Monte Carlo otherwise with p = (1 + b) / (1 + M), which is a valid level-α test
at any n (Phipson & Smyth 2010). It conditions on the trained models (seeds); the
interval does not, and :func:`classify.decisions.decide` asks both.

The decision (:func:`classify.decisions.decide`, the one rule used by the table, summary.json and
the report): "evidence of an improvement/decrease" only when the interval
excludes 0 *and* p ≤ α; otherwise "no evidence of a difference" with the minimum
detectable difference (:func:`minimum_detectable_difference`); "not estimable"
without per-image predictions or with a zero-width interval.

Several comparisons (:func:`classify.decisions.adjust`): a pre-specified primary family tested in
fixed sequence (Maurer, Hothorn & Lehmacher 1995; each step at α, later steps only
if every earlier one is evidence), all other comparisons secondary with Holm's
step-down adjusted p-values (Holm 1979).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import numpy as np

#: The image-level metrics (all weighted means of per-image correctness).
METRICS = ("balanced_accuracy", "sensitivity", "specificity", "accuracy")
#: Exact enumeration of sign patterns up to this many non-zero differences (2¹⁶ = 65 536 patterns).
EXACT_MAX = 16
#: Differences smaller than this are zero (seed averages of a few 0/1 values are exact in binary only up to rounding).
ZERO = 1e-12
#: The verdict labels.
IMPROVEMENT, DECREASE, NO_EVIDENCE, NOT_ESTIMABLE = (
    "evidence of an improvement", "evidence of a decrease", "no evidence of a difference", "not estimable",
)  # fmt: skip
#: What every interval of this module includes, for tables and summary.json.
INTERVAL_NOTE = (
    "95 % percentile bootstrap over test images (stratified by class; the same resample for every arm, so differences are paired), "
    "each image's correctness averaged over training seeds (and k-fold repeats), plus the between-seed variance"
)


def estimand(metric: str) -> str:
    """The sentence that says what ``metric``'s numbers estimate."""
    return f"{metric.replace('_', ' ')} of the trained pipeline on images like these, averaged over training seeds"


# --------------------------------------------------------------------------- weights and resamples


def image_weights(labels: Sequence[int], metric: str) -> np.ndarray:
    """Weights ``(N,)``, summing to 1, such that ``metric = Σᵢ wᵢ · correctᵢ``.

    balanced accuracy: 1 / (K · n_class) per image; accuracy: 1 / N; sensitivity
    (binary): 1 / n₁ on positives (class 1), 0 on negatives; specificity: the converse.
    Raises ``ValueError`` for sensitivity/specificity with K ≠ 2 and for an empty class in play.
    """
    y = np.asarray(labels, dtype=np.int64).ravel()
    classes, counts = np.unique(y, return_counts=True)
    if metric == "accuracy":
        return np.full(y.shape, 1.0 / y.size)
    if metric == "balanced_accuracy":
        per = dict(zip(classes.tolist(), counts.tolist()))
        return np.array([1.0 / (len(classes) * per[c]) for c in y.tolist()])
    if metric in ("sensitivity", "specificity"):
        if not set(classes.tolist()) <= {0, 1}:
            raise ValueError(f"{metric} needs binary labels 0/1 (got classes {classes.tolist()})")
        target = 1 if metric == "sensitivity" else 0
        members = y == target
        if not members.any():
            raise ValueError(f"{metric}: no image of class {target}")
        return members / members.sum()
    raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")


def stratified_counts(labels: Sequence[int], n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap counts ``(B, N)``: how often resample b draws image i, drawing n_c images with replacement within each class c."""
    y = np.asarray(labels, dtype=np.int64).ravel()
    counts = np.zeros((n_resamples, y.size), dtype=np.float64)
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        draws = rng.integers(0, members.size, size=(n_resamples, members.size))
        counts[:, members] = np.apply_along_axis(np.bincount, 1, draws, minlength=members.size)
    return counts


# --------------------------------------------------------------------------- estimation


def _as_replicates(values: np.ndarray, n_images: int) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim < 2 or v.shape[-1] != n_images:
        raise ValueError(f"per-image values must be (..., R, N) with N = {n_images} images, got shape {v.shape}")
    if not np.isfinite(v).all():
        raise ValueError("per-image values hold NaN: pool complete replicates only (every image predicted once per replicate)")
    return v


def seed_variance(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Variance ``(...)`` that a shift shared by all images of one replicate adds to the replicate-averaged metric.

    ``values`` ``(..., R, N)``. With θ_r = Σᵢ wᵢ v_ri and residuals
    e_ri = v_ri − v̄ᵢ − (θ_r − θ̄), the method-of-moments estimate is
    max(0, var_r(θ_r) − Σᵢ wᵢ² Σ_r e_ri² / (R − 1)) / R (the between-replicate
    variance net of the image × replicate noise, per replicate, over R replicates).
    Zero with one replicate (nothing to estimate it from; :func:`estimate` notes it).
    """
    r = values.shape[-2]
    if r < 2:
        return np.zeros(values.shape[:-2])
    theta = values @ weights  # (..., R)
    resid = values - values.mean(axis=-2, keepdims=True) - (theta - theta.mean(axis=-1, keepdims=True))[..., None]
    noise = ((resid**2).sum(axis=-2) / (r - 1)) @ (weights**2)
    return np.maximum(0.0, theta.var(axis=-1, ddof=1) - noise) / r


def seed_draws(n_replicates: int, n_resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Draws ``(B,)`` for the seed component: Student t with R − 1 degrees of freedom (zeros for R = 1).

    t rather than normal because the seed variance is estimated from R replicates
    (R − 1 degrees of freedom; with 3 seeds a normal component undercovers).
    """
    if n_replicates < 2:
        return np.zeros(n_resamples)
    return rng.standard_t(n_replicates - 1, size=n_resamples)


def bootstrap(values: np.ndarray, labels: Sequence[int], metric: str, *, counts: np.ndarray, draws: np.ndarray, bounds: tuple[float, float]) -> dict:
    """Point estimate and bootstrap replicates of ``metric`` for per-image values ``(..., R, N)``.

    ``counts`` ``(B, N)`` from :func:`stratified_counts` (shared by every arm: paired);
    ``draws`` ``(B,)`` from :func:`seed_draws` for the seed component. Returns arrays:
    ``estimate (...)``, ``replicates (..., B)`` clipped to ``bounds``, ``seed_sd (...)``.
    """
    w = image_weights(labels, metric)
    v = _as_replicates(values, w.size)
    mean_image = v.mean(axis=-2)  # (..., N): seeds (replicates) averaged per image
    estimate = mean_image @ w
    seed_sd = np.sqrt(seed_variance(v, w))
    reps = (mean_image * w) @ counts.T + seed_sd[..., None] * draws
    return {"estimate": estimate, "replicates": np.clip(reps, *bounds), "seed_sd": seed_sd}


def percentile_interval(replicates: np.ndarray, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """The percentile interval ``(low, high)`` of bootstrap replicates ``(..., B)`` (Efron & Tibshirani 1993, §13.3)."""
    a = (1 - level) / 2
    lo, hi = np.quantile(replicates, [a, 1 - a], axis=-1)
    return lo, hi


def minimum_detectable_difference(se, alpha: float = 0.05, power: float = 0.80):
    """(z₁₋α/₂ + z_power) · SE: the smallest true difference a two-sided level-α test detects with ``power``.

    The usual normal-approximation formula (e.g. Bloom 1995, "Minimum detectable
    effects", Evaluation Review 19:547); ``se`` is the bootstrap standard error of
    the difference, i.e. the observed variance. 2.80 · SE at α = 0.05 and 80 % power.
    """
    from scipy.stats import norm

    return (norm.ppf(1 - alpha / 2) + norm.ppf(power)) * np.asarray(se, dtype=np.float64)


def sign_flip_test(differences: np.ndarray, weights: np.ndarray, *, n_permutations: int = 9_999, rng: np.random.Generator, exact: bool | None = None):
    """Two-sided p-value of the paired sign-flip permutation test of Σᵢ wᵢ dᵢ = 0.

    ``differences`` ``(..., N)``: seed-averaged per-image differences a − b in [-1, 1];
    ``weights`` ``(N,)`` from :func:`image_weights`. Under the null each dᵢ is
    symmetric about 0 (the arms are exchangeable for every image), so flipping signs
    gives the null distribution of T = Σ wᵢ dᵢ. ``exact=None``: exact enumeration of the
    m non-zero differences' 2ᵐ sign patterns when there is one data set and
    m ≤ :data:`EXACT_MAX`, else Monte Carlo with ``n_permutations`` random patterns
    (shared by all data sets) and p = (1 + #{|T*| ≥ |T|}) / (1 + M). All differences 0 → p = 1.
    Returns ``(p, method)`` with p of shape ``(...)`` and method "exact" or "Monte Carlo (M = …)".
    """
    d = np.asarray(differences, dtype=np.float64)
    wd = d * weights
    t_obs = np.abs(wd.sum(axis=-1))
    tol = 1e-12 * max(1.0, float(np.abs(wd).sum(axis=-1).max(initial=0.0)))
    nonzero = np.abs(d) > ZERO
    if exact is None:
        exact = d.ndim == 1 and int(nonzero.sum()) <= EXACT_MAX
    if exact:
        if d.ndim != 1:
            raise ValueError("exact enumeration takes one data set (N,)")
        x = wd[nonzero]
        if x.size == 0:
            return np.float64(1.0), "exact"
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=x.size)))
        t_null = np.abs(signs @ x)
        return np.float64(np.mean(t_null >= t_obs - tol)), "exact"
    signs = rng.choice(np.array([-1.0, 1.0]), size=(n_permutations, d.shape[-1]))
    t_null = np.abs(wd @ signs.T)  # (..., M)
    p = (1 + (t_null >= t_obs[..., None] - tol).sum(axis=-1)) / (1 + n_permutations)
    p = np.where(nonzero.any(axis=-1), p, 1.0)
    return p, f"Monte Carlo (M = {n_permutations})"


# --------------------------------------------------------------------------- arms and differences


def estimate_arms(correct: np.ndarray, labels: Sequence[int], metric: str = "balanced_accuracy", *, level: float = 0.95, n_resamples: int = 2_000, seed: int = 0) -> dict:
    """Per-arm estimates from one shared image resample.

    ``correct`` ``(A, R, N)``: A arms × R replicates (seeds, or (repeat, seed) with pooled
    out-of-fold predictions) × N test images, 0/1. Returns arrays of shape ``(A,)``:
    ``estimate, ci_low, ci_high, se, seed_sd`` (fractions in [0, 1]; the interval is
    the percentile interval, inside [0, 1] by construction).
    """
    rng = np.random.default_rng(seed)
    y = np.asarray(labels).ravel()
    correct = np.asarray(correct, dtype=np.float64)
    counts, draws = stratified_counts(y, n_resamples, rng), seed_draws(correct.shape[-2], n_resamples, rng)
    b = bootstrap(correct, y, metric, counts=counts, draws=draws, bounds=(0.0, 1.0))
    lo, hi = percentile_interval(b["replicates"], level)
    return {"estimate": b["estimate"], "ci_low": lo, "ci_high": hi, "se": b["replicates"].std(axis=-1, ddof=1), "seed_sd": b["seed_sd"]}


def paired_difference(
    correct_a: np.ndarray,
    correct_b: np.ndarray,
    labels: Sequence[int],
    metric: str = "balanced_accuracy",
    *,
    level: float = 0.95,
    n_resamples: int = 2_000,
    n_permutations: int = 9_999,
    seed: int = 0,
    alpha: float = 0.05,
) -> dict:
    """Difference a − b of ``metric`` between two arms on the same test images, with interval, test and MDE.

    ``correct_a``, ``correct_b`` ``(..., R, N)`` (see the module docstring); replicate r
    of a and b share their seed (common random numbers) but that is not required.
    Returns arrays of shape ``(...)``: ``estimate`` (in [-1, 1]), ``ci_low``, ``ci_high``
    (percentile interval in [-1, 1]), ``se`` (bootstrap SD), ``seed_sd`` (SD of the seed
    component), ``p_value`` (:func:`sign_flip_test`), ``mdd`` (minimum detectable
    difference at 80 % power and ``alpha``), and ``test`` (the test's method, a string).
    """
    a, b = np.asarray(correct_a, dtype=np.float64), np.asarray(correct_b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired arms need the same shape (replicates × images): {a.shape} ≠ {b.shape}")
    y = np.asarray(labels).ravel()
    rng = np.random.default_rng(seed)
    counts, draws = stratified_counts(y, n_resamples, rng), seed_draws(a.shape[-2], n_resamples, rng)
    diff = a - b
    boot = bootstrap(diff, y, metric, counts=counts, draws=draws, bounds=(-1.0, 1.0))
    lo, hi = percentile_interval(boot["replicates"], level)
    se = boot["replicates"].std(axis=-1, ddof=1)
    p, method = sign_flip_test(diff.mean(axis=-2), image_weights(y, metric), n_permutations=n_permutations, rng=rng)
    return {
        "estimate": boot["estimate"], "ci_low": lo, "ci_high": hi, "se": se, "seed_sd": boot["seed_sd"],
        "p_value": p, "mdd": minimum_detectable_difference(se, alpha), "test": f"paired sign-flip permutation over images, {method}",
    }  # fmt: skip


# --------------------------------------------------------------------------- ROC AUC (binary)

#: What the image-level ROC AUC interval includes.
AUC_INTERVAL_NOTE = (
    "95 % percentile bootstrap over test images (stratified by class); each replicate's AUC on the resample, "
    "averaged over replicates (seeds are averaged, not resampled: seed-to-seed variation beyond these seeds is not included)"
)


def roc_auc_interval(scores: np.ndarray, labels: Sequence[int], *, level: float = 0.95, n_resamples: int = 2_000, seed: int = 0) -> dict:
    """ROC AUC of a binary classifier on images like the test images, averaged over replicates, with a bootstrap interval.

    ``scores`` ``(R, N)``: each replicate's predicted probability of the positive class
    for N test images; ``labels`` ``(N,)``: 1 = positive, 0 = negative (both needed).
    The AUC is the Mann–Whitney probability P(s⁺ > s⁻) + ½ P(s⁺ = s⁻) (Hanley & McNeil
    1982; equal to scikit-learn's ``roc_auc_score``). A resample draws images with
    replacement within each class (:func:`stratified_counts`) and weights each
    positive–negative pair by the product of the two images' counts. Returns
    ``{"estimate", "ci_low", "ci_high", "se"}`` in [0, 1]; raises ``ValueError`` for
    a class missing from ``labels`` or mis-shaped ``scores``.
    """
    y = np.asarray(labels, dtype=np.int64).ravel()
    s = _as_replicates(scores, y.size)
    if s.ndim != 2:
        raise ValueError(f"scores must be (R, N), got shape {s.shape}")
    pos, neg = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
    if pos.size == 0 or neg.size == 0 or pos.size + neg.size != y.size:
        raise ValueError("ROC AUC needs binary labels 0/1 with both classes present")
    rng = np.random.default_rng(seed)
    counts = stratified_counts(y, n_resamples, rng)
    # (R, P, Q) pair wins: 1 if the positive scores higher, ½ on ties
    wins = (s[:, pos, None] > s[:, None, neg]) + 0.5 * (s[:, pos, None] == s[:, None, neg])
    pairs = wins.mean(axis=0)  # averaged over replicates: the AUC is linear in the pair wins
    estimate = float(pairs.mean())
    cp, cn = counts[:, pos], counts[:, neg]
    boot = np.einsum("bp,pq,bq->b", cp, pairs, cn) / (pos.size * neg.size)
    lo, hi = percentile_interval(boot, level)
    return {"estimate": estimate, "ci_low": float(lo), "ci_high": float(hi), "se": float(boot.std(ddof=1))}
