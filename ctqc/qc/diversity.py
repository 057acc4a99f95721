"""Density and coverage (Naeem et al. 2020, "Reliable fidelity and diversity metrics for generative models").

With real features X (N × d), synthetic features Y (M × d) and r_i the distance from X_i to its
k-th nearest other real image:

- density  = 1/(k·M) · Σ_j Σ_i 1[‖Y_j − X_i‖ < r_i]  (≈ 1 when Y follows X's distribution; > 1 when
  Y crowds into dense real regions; < 1 when it strays);
- coverage = 1/N · Σ_i 1[∃ j: ‖Y_j − X_i‖ < r_i]  (the share of real neighbourhoods that hold a
  synthetic image; drops when Y loses diversity).

Strict "<" as in the authors' ``prdc`` package. These few lines follow the paper's definitions and
reuse the real images' radii across the kept set and its random subsets (``prdc.compute_prdc``
recomputes them per call and prints to stdout); ``tests/test_diversity.py`` checks them against
``prdc`` itself, a hand-computed case and an independent scikit-learn nearest-neighbour route.
Fewer synthetic images mechanically lower coverage, so a filtered set is compared with same-size
random subsets of the pool.
"""

from __future__ import annotations

import numpy as np

K = 5
RANDOM_DRAWS = 20
COVERAGE_WARNING = 0.1  # warn when the kept set's coverage is this far below same-size random subsets'


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    sq = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
    return np.sqrt(np.maximum(sq, 0))


def real_radii(real: np.ndarray, k: int = K) -> np.ndarray:
    """(N,) distance from each real image to its k-th nearest *other* real image (needs N > k)."""
    d = _distances(real, real)
    return np.sort(d, axis=1)[:, k]  # column 0 is the image itself


def density_coverage(real: np.ndarray, synthetic: np.ndarray, k: int = K, radii: np.ndarray | None = None) -> tuple[float, float]:
    """(density ≥ 0, coverage in [0, 1]) of ``synthetic`` (M × d) against ``real`` (N × d, N > k)."""
    radii = real_radii(real, k) if radii is None else radii
    inside = _distances(real, synthetic) < radii[:, None]  # N × M
    return float(inside.sum() / (k * synthetic.shape[0])), float(inside.any(axis=1).mean())


def diversity_check(real: np.ndarray, pool: np.ndarray, kept_mask: np.ndarray, seed: int = 0, k: int = K, draws: int = RANDOM_DRAWS) -> dict | None:
    """Density/coverage of the pool, of the kept images and (mean of ``draws``) of same-size random subsets.

    Returns a JSON-ready dict with a ``warning`` when the kept coverage is more than
    :data:`COVERAGE_WARNING` below the random subsets', and a ``note`` when it cannot be (the
    random subsets cover less than that margin: too few kept images for the check to speak);
    None when there are ≤ k real or < 1 kept images.
    """
    kept_mask = np.asarray(kept_mask, bool)
    if len(real) <= k or not kept_mask.any():
        return None
    radii = real_radii(real, k)
    before = density_coverage(real, pool, k, radii)
    kept = density_coverage(real, pool[kept_mask], k, radii)
    rng = np.random.default_rng(seed)
    random = np.mean([density_coverage(real, pool[rng.choice(len(pool), kept_mask.sum(), replace=False)], k, radii) for _ in range(draws)], axis=0)
    out = {
        "k": k,
        "n_real": len(real),
        "draws": draws,
        "density_before": round(before[0], 4),
        "coverage_before": round(before[1], 4),
        "density_kept": round(kept[0], 4),
        "coverage_kept": round(kept[1], 4),
        "density_random": round(float(random[0]), 4),
        "coverage_random": round(float(random[1]), 4),
        "warning": None,
        "note": None,
    }
    if random[1] < COVERAGE_WARNING:
        out["note"] = f"cannot warn at this size: same-size random subsets cover only {random[1]:.2f} (< the {COVERAGE_WARNING:g} margin)"
    if kept[1] < random[1] - COVERAGE_WARNING:
        out["warning"] = f"the kept images cover {kept[1]:.2f} of the real neighbourhoods, same-size random subsets {random[1]:.2f}: the filter removed diversity"
    return out
