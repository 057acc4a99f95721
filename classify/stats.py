"""Uncertainty of a metric over repeated trainings, and paired comparisons of two arms.

- :func:`mean_ci`: mean and a two-sided t-interval over runs (folds × seeds);
  with one run the interval is undefined (NaN) and a note says so; with zero
  spread it collapses to the mean.
- :func:`paired_difference`: the mean of per-pair differences ``a - b`` (pairs
  share fold and seed), its CI and a p-value, by the Wilcoxon signed-rank test
  (scipy; zero differences dropped, exact distribution when possible; all
  differences zero → p = 1) or by a paired bootstrap (resampling pairs; p from
  the bootstrap distribution centred on 0, i.e. under the null of no difference).

Small-sample caveat, stated in ``note``: with n pairs the smallest two-sided
Wilcoxon p-value is 2 / 2ⁿ, so fewer than 6 pairs can never reach p < 0.05.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

TESTS = ("wilcoxon", "paired-bootstrap")
#: Differences this small are ties (0.75 − 0.7 ≠ 0.8 − 0.75 in floating point; metrics are fractions of a few images).
ZERO = 1e-9


def _clean(values: Sequence[float]) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).ravel()
    return arr[np.isfinite(arr)]


def mean_ci(values: Sequence[float], level: float = 0.95, bounds: tuple[float, float] | None = None) -> dict:
    """``{"mean", "ci_low", "ci_high", "sd", "n"}`` of the finite ``values`` (t-distribution).

    ``n`` counts the finite values; NaNs (e.g. an AUC on a one-class test set)
    are left out. n = 0 → all NaN; n = 1 → the mean with a NaN interval and a note.
    ``bounds`` (e.g. (0, 1) for a fraction): an interval reaching past them is cut
    at the metric's range, and ``note`` says so (a t-interval knows no bounds).
    """
    from scipy import stats

    x = _clean(values)
    n = int(x.size)
    out: dict = {"mean": math.nan, "ci_low": math.nan, "ci_high": math.nan, "sd": math.nan, "n": n}
    if n == 0:
        out["note"] = "no finite values"
        return out
    mean = float(x.mean())
    out["mean"] = mean
    if n == 1:
        out["note"] = "one run: no interval (use more seeds or folds)"
        return out
    sd = 0.0 if np.all(x == x[0]) else float(x.std(ddof=1))  # exactly 0, not a rounding residue
    half = float(stats.t.ppf(0.5 + level / 2, df=n - 1) * sd / math.sqrt(n))
    out.update(ci_low=mean - half, ci_high=mean + half, sd=sd)
    if bounds is not None and (out["ci_low"] < bounds[0] or out["ci_high"] > bounds[1]):
        out.update(ci_low=max(out["ci_low"], bounds[0]), ci_high=min(out["ci_high"], bounds[1]))
        out["note"] = f"t-interval cut at the metric's range [{bounds[0]:g}, {bounds[1]:g}]"
    return out


def paired_difference(
    a: Sequence[float],
    b: Sequence[float],
    test: str = "wilcoxon",
    *,
    level: float = 0.95,
    n_bootstrap: int = 10_000,
    seed: int = 0,
) -> dict:
    """Compare paired samples ``a`` and ``b`` (same length, pair i = same fold and seed).

    Returns ``{"mean_diff", "ci_low", "ci_high", "p_value", "test", "n_pairs"}``
    (plus ``note`` when the sample is too small to say much). Pairs where
    either value is NaN are dropped. The CI is the t-interval of the mean
    difference for ``wilcoxon`` and the percentile interval for
    ``paired-bootstrap``.
    """
    if test not in TESTS:
        raise ValueError(f"unknown paired test {test!r}; choose from {', '.join(TESTS)}")
    a, b = np.asarray(a, dtype=np.float64).ravel(), np.asarray(b, dtype=np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"paired samples need the same length ({a.size} ≠ {b.size})")
    ok = np.isfinite(a) & np.isfinite(b)
    d = np.round(a[ok] - b[ok], 12)  # equal differences tie exactly (0.8 − 0.75 ≠ 0.75 − 0.7 in floating point)
    n = int(d.size)
    out: dict = {"mean_diff": math.nan, "ci_low": math.nan, "ci_high": math.nan, "p_value": math.nan, "test": test, "n_pairs": n}
    if n == 0:
        out["note"] = "no complete pairs"
        return out
    out["mean_diff"] = float(d.mean())
    notes = []
    if test == "wilcoxon":
        ci = mean_ci(d, level)
        out["ci_low"], out["ci_high"] = ci["ci_low"], ci["ci_high"]
        out["p_value"] = _wilcoxon_p(d)
        if n < 6:
            notes.append(f"{n} pairs: a two-sided Wilcoxon test cannot reach p < 0.05 with fewer than 6")
    else:
        rng = np.random.default_rng(seed)
        means = d[rng.integers(0, n, size=(n_bootstrap, n))].mean(axis=1)
        alpha = (1 - level) / 2
        out["ci_low"], out["ci_high"] = (float(v) for v in np.quantile(means, [alpha, 1 - alpha]))
        # null distribution: the bootstrap means shifted to have mean 0
        centred = means - d.mean()
        extreme = np.sum(np.abs(centred) >= abs(d.mean()) - 1e-12)
        out["p_value"] = 1.0 if np.all(np.abs(d) <= ZERO) else float((extreme + 1) / (n_bootstrap + 1))
        if n < 10:
            notes.append(f"{n} pairs: a bootstrap over so few pairs understates the uncertainty")
    if n == 1:
        notes.append("one pair: no interval")
    if notes:
        out["note"] = "; ".join(notes)
    return out


def _wilcoxon_p(d: np.ndarray) -> float:
    from scipy import stats

    nonzero = d[np.abs(d) > ZERO]
    if nonzero.size == 0:
        return 1.0  # identical arms: no evidence of a difference
    return float(stats.wilcoxon(nonzero, zero_method="wilcox", alternative="two-sided").pvalue)
