"""The one decision rule for a comparison of two arms, and the family of comparisons.

:func:`decide` labels an estimate "evidence of an improvement / a decrease" only when
its 95 % interval excludes 0 *and* the (adjusted) test agrees at α; :func:`verdict`
runs one comparison end to end on per-image correctness (:mod:`classify.verdicts`);
:func:`adjust` applies the pre-specified primary comparisons as a fixed sequence and
Holm's step-down adjustment (Holm 1979) to the secondary ones; :func:`describe`
writes the sentence the table and the report print.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from classify.verdicts import DECREASE, IMPROVEMENT, INTERVAL_NOTE, NO_EVIDENCE, NOT_ESTIMABLE, ZERO, estimand, paired_difference
from ctqc.numbers import finite as _num

# --------------------------------------------------------------------------- the decision rule


def decide(estimate, ci_low, ci_high, p_value, alpha: float = 0.05) -> str:
    """The one decision rule: a verdict label from an estimate, its interval and a (possibly adjusted) p-value.

    "evidence of an improvement" / "evidence of a decrease" only when the interval
    excludes 0 **and** p ≤ α (they agree in direction by construction: the interval
    is on one side of 0); "not estimable" when any number is missing or the interval
    has zero width; otherwise "no evidence of a difference".
    """
    vals = [_num(v) for v in (estimate, ci_low, ci_high, p_value)]
    if any(v is None for v in vals):
        return NOT_ESTIMABLE
    est, lo, hi, p = vals
    if hi - lo <= ZERO:
        return NOT_ESTIMABLE
    if p <= alpha and (lo > 0 or hi < 0):
        return IMPROVEMENT if lo > 0 else DECREASE
    return NO_EVIDENCE


def verdict(
    correct_a: np.ndarray | None,
    correct_b: np.ndarray | None,
    labels: Sequence[int] | None,
    metric: str = "balanced_accuracy",
    *,
    alpha: float = 0.05,
    level: float = 0.95,
    n_resamples: int = 2_000,
    n_permutations: int = 9_999,
    seed: int = 0,
) -> dict:
    """One comparison a − b as plain numbers and its label (:func:`decide`).

    ``correct_a``, ``correct_b`` ``(R, N)`` per-replicate, per-image correctness, or
    ``None`` without per-image predictions (e.g. a run made before they were kept) →
    "not estimable". Returns ``{"estimate", "ci_low", "ci_high", "se", "seed_sd",
    "p_value", "mdd", "test", "verdict", "n_images", "n_replicates", "alpha",
    "estimand", "interval"}`` (floats, NaN when not estimable).
    """
    out = {
        "estimate": math.nan, "ci_low": math.nan, "ci_high": math.nan, "se": math.nan, "seed_sd": math.nan,
        "p_value": math.nan, "mdd": math.nan, "test": "paired sign-flip permutation over images",
        "n_images": 0, "n_replicates": 0, "alpha": alpha, "estimand": estimand(metric), "interval": INTERVAL_NOTE,
    }  # fmt: skip
    if correct_a is None or correct_b is None or labels is None:
        out.update(verdict=NOT_ESTIMABLE, why="no per-image predictions")
        return out
    a, b = np.asarray(correct_a, dtype=np.float64), np.asarray(correct_b, dtype=np.float64)
    res = paired_difference(a, b, labels, metric, level=level, n_resamples=n_resamples, n_permutations=n_permutations, seed=seed, alpha=alpha)
    out.update({k: (v if isinstance(v, str) else float(v)) for k, v in res.items()})
    out.update(n_images=int(a.shape[-1]), n_replicates=int(a.shape[-2]))
    out["verdict"] = decide(out["estimate"], out["ci_low"], out["ci_high"], out["p_value"], alpha)
    if out["verdict"] == NOT_ESTIMABLE:
        out["why"] = "zero-width interval (the arms' per-image predictions do not differ)"
    if out["n_replicates"] < 2:
        out["note"] = "one seed: the interval leaves out seed-to-seed variation"
    return out


def holm(p_values: Sequence[float]) -> np.ndarray:
    """Holm's (1979) step-down adjusted p-values: p̃₍ⱼ₎ = max_{k ≤ j} min(1, (m − k + 1) p₍ₖ₎); NaN stays NaN."""
    p = np.asarray(p_values, dtype=np.float64)
    out = np.full(p.shape, np.nan)
    ok = np.flatnonzero(np.isfinite(p))
    m = ok.size
    if m:
        order = ok[np.argsort(p[ok], kind="stable")]
        adjusted = np.minimum(1.0, np.maximum.accumulate((m - np.arange(m)) * p[order]))
        out[order] = adjusted
    return out


def adjust(comparisons: list[dict], primary: Sequence[tuple[str, str]], alpha: float = 0.05) -> list[dict]:
    """Label comparisons primary/secondary, adjust their p-values and set their verdicts (in place; returned).

    ``comparisons``: dicts with ``arm``, ``reference``, ``estimate``, ``ci_low``,
    ``ci_high``, ``p_value`` (one metric). ``primary``: (arm, reference) pairs in their
    pre-specified order, tested in fixed sequence at α — a step is tested only if every
    earlier step is evidence; once one is not, the later ones get "not tested (fixed
    sequence stopped at …)" and no verdict of evidence. Every other comparison is
    secondary, with Holm-adjusted p-values over the secondary family. Adds ``role``,
    ``p_adjusted``, ``adjustment`` and ``verdict`` to each dict.
    """
    order = {pair: i for i, pair in enumerate(primary)}
    prim = sorted((c for c in comparisons if (c["arm"], c["reference"]) in order), key=lambda c: order[(c["arm"], c["reference"])])
    stopped_at = None
    for c in prim:
        c["role"], c["p_adjusted"] = "primary", c["p_value"]
        if stopped_at is None:
            c["adjustment"] = f"fixed sequence, step {order[(c['arm'], c['reference'])] + 1}, tested at α = {alpha}"
            c["verdict"] = decide(c["estimate"], c["ci_low"], c["ci_high"], c["p_value"], alpha)
            if c["verdict"] not in (IMPROVEMENT, DECREASE):
                stopped_at = f"{c['arm']} − {c['reference']}"
        else:
            c["adjustment"] = f"fixed sequence stopped at {stopped_at}: not tested"
            c["verdict"] = NOT_ESTIMABLE if decide(c["estimate"], c["ci_low"], c["ci_high"], c["p_value"], alpha) == NOT_ESTIMABLE else NO_EVIDENCE
    second = [c for c in comparisons if (c["arm"], c["reference"]) not in order]
    for c, p in zip(second, holm([_num(c["p_value"]) if _num(c["p_value"]) is not None else math.nan for c in second])):
        c["role"], c["p_adjusted"], c["adjustment"] = "secondary", (float(p) if math.isfinite(p) else math.nan), f"Holm over {len(second)} secondary comparisons"
        c["verdict"] = decide(c["estimate"], c["ci_low"], c["ci_high"], c["p_adjusted"], alpha)
    return comparisons


def describe(c: dict, scale: float = 100.0) -> str:
    """One comparison (a dict from :func:`verdict` + :func:`adjust`) as a line: estimate, interval, p, verdict, MDE."""
    est, lo, hi = (_num(c.get(k)) for k in ("estimate", "ci_low", "ci_high"))
    head = f"{c.get('arm', '?')} − {c.get('reference', '?')}"
    role = f" [{c['role']}]" if c.get("role") else ""
    if est is None or c.get("verdict") == NOT_ESTIMABLE and (lo is None or hi is None):
        why = f" ({c['why']})" if c.get("why") else ""
        return f"{head}{role}: {NOT_ESTIMABLE}{why}"
    p, padj = _num(c.get("p_value")), _num(c.get("p_adjusted"))
    p_text = "p n/a" if p is None else f"p = {p:.3g}"
    if padj is not None and p is not None and abs(padj - p) > 1e-15:
        p_text += f", adjusted {padj:.3g}"
    text = f"{head}{role}: {est * scale:+.1f} pp [{lo * scale:+.1f}, {hi * scale:+.1f}], {p_text}: {c.get('verdict', '?')}"
    mdd = _num(c.get("mdd"))
    if c.get("verdict") == NO_EVIDENCE and mdd is not None:
        text += f"; this design could only detect differences larger than {mdd * scale:.1f} pp (80 % power, α = {c.get('alpha', 0.05)})"
    if c.get("verdict") == NOT_ESTIMABLE and c.get("why"):
        text += f" ({c['why']})"
    if "not tested" in str(c.get("adjustment", "")):
        text += f" ({c['adjustment']})"
    return text


