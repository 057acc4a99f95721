"""α-precision, β-recall and authenticity (Alaa et al. 2022, "How Faithful is your Synthetic Data?", ICML).

Definitions, on feature vectors (n×d, any d; in a run the configured metric features):

- **α-precision curve** P(α), α ∈ [0, 1]: the share of synthetic samples inside the real data's
  α-support — here, as in the paper's evaluation (its §4 and reference implementation), the ball
  around the real samples' centre whose radius is the α-quantile of the real samples' distances to
  that centre. Faithful synthetic data has P(α) = α.
- **β-recall curve** R(β) = P(real sample ∈ S_g^β), S_g^β the synthetic data's β-support: the ball
  around the synthetic centre holding the fraction β of the synthetic samples. A real sample counts
  when it lies in that ball *and* a synthetic sample lies within its k-NN radius among the real
  samples (the paper's k-NN check that the support is really populated there; k = 5, ``k``, as
  Naeem et al. 2020 recommend for the same coverage test). Diverse synthetic data has R(β) ≈ β; a
  mode-collapsed generator covers few real samples. Deviation: the paper's reference code tests the
  real sample's *nearest synthetic* sample against the ball, with k = 1; on two samples of one
  Gaussian (d = 8-64, n = 70-300) that reached only IRβ ≈ 0.4-0.75, as nearest neighbours in high
  dimension crowd towards the centre (hubness), so a perfect generator could not score near 1.
- **Integrated scalars** (the paper's eq. 7): IPα = 1 − 2 ∫₀¹ |P(α) − α| dα and IRβ = 1 − 2 ∫₀¹ |R(β) − β| dβ,
  both in [0, 1], 1 = ideal; the integrals are trapezoid sums on :data:`ALPHAS`.
- **Authenticity** (the paper's §3.3, its reference estimator): a synthetic sample g is *inauthentic*
  when it is closer to its nearest real sample r* than r* is to its own nearest other real sample
  (d(g, r*) ≤ d(r*, NN_real(r*))) — a likely copy; authenticity is the share of authentic samples.
  Two independent samples of one distribution score about 0.55-0.85 (Gaussians, d = 8-64, n = 70-300), copies 0 (tests).

Deviation from the paper, on purpose: the paper first maps the data into a learned one-class
(deep SVDD) embedding; ctqc uses the given features directly (the paper's §4 notes the metrics are
embedding-agnostic). Distances are Euclidean. Confidence intervals resample the per-sample
indicators with the supports held fixed, as ctqc does for precision/recall (:mod:`ctqc.qc.metrics`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

ALPHAS = np.linspace(0.0, 1.0, 41)  # the grid the curves are evaluated (and integrated) on
METRICS = ("alpha_precision", "beta_recall", "authenticity")


@dataclass(frozen=True)
class FidelityIndicators:
    """Per-sample indicators behind the three metrics; a resample of either set reweights them (counts)."""

    in_alpha: np.ndarray  # n_syn × len(ALPHAS) bool: synthetic sample j inside the real α-support
    covered: np.ndarray  # n_real × len(ALPHAS) bool: real sample i covered by the synthetic β-support
    authentic: np.ndarray  # n_syn bool

    def scalars(self, c_syn: np.ndarray | None = None, c_real: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """IPα, IRβ and authenticity, one per row of the count matrices (B×n_syn, B×n_real; None = each sample once)."""
        c_syn = np.ones((1, len(self.authentic))) if c_syn is None else np.atleast_2d(c_syn)
        c_real = np.ones((1, len(self.covered))) if c_real is None else np.atleast_2d(c_real)
        precision_curve = c_syn @ self.in_alpha / c_syn.sum(axis=1, keepdims=True)
        recall_curve = c_real @ self.covered / c_real.sum(axis=1, keepdims=True)
        return {
            "alpha_precision": integrated(precision_curve),
            "beta_recall": integrated(recall_curve),
            "authenticity": c_syn @ self.authentic / c_syn.sum(axis=1),
        }

    def point(self) -> dict[str, float]:
        """The three estimates on the sets as given."""
        return {name: float(v[0]) for name, v in self.scalars().items()}


def integrated(curves: np.ndarray) -> np.ndarray:
    """1 − 2 ∫₀¹ |curve(α) − α| dα for each row of B×len(ALPHAS) curves (trapezoid rule): 1 on the diagonal, 0 at worst."""
    deviation = np.abs(np.atleast_2d(curves) - ALPHAS[None, :])
    return 1.0 - 2.0 * np.trapezoid(deviation, ALPHAS, axis=1)


def fidelity_indicators(synthetic: np.ndarray, real: np.ndarray, k: int = 5) -> FidelityIndicators:
    """The per-sample indicators of ``synthetic`` (n_syn×d) against ``real`` (n_real×d) features (module docstring).

    ``k``: the real k-NN radius of β-recall's coverage test (capped at n_real − 1); authenticity always uses the nearest neighbour.

    Raises ValueError with fewer than two real or one synthetic sample, or different widths.
    """
    if len(real) < 2 or len(synthetic) < 1 or synthetic.shape[1] != real.shape[1]:
        raise ValueError(f"need ≥ 2 real and ≥ 1 synthetic samples of one width, got {real.shape} and {synthetic.shape}")
    s, r = torch.from_numpy(np.asarray(synthetic, dtype=np.float64)), torch.from_numpy(np.asarray(real, dtype=np.float64))
    real_radii = np.quantile(torch.linalg.norm(r - r.mean(0), dim=1).numpy(), ALPHAS)
    syn_dist = torch.linalg.norm(s - s.mean(0), dim=1).numpy()  # to the synthetic centre (β-support)
    syn_to_real_centre = torch.linalg.norm(s - r.mean(0), dim=1).numpy()  # to the real centre (α-support)
    syn_radii = np.quantile(syn_dist, ALPHAS)
    d_rr = torch.cdist(r, r)
    d_rr.fill_diagonal_(float("inf"))
    real_nn = d_rr.min(dim=1).values.numpy()  # each real sample's distance to its nearest other real sample
    real_knn = d_rr.kthvalue(min(k, len(r) - 1), dim=1).values.numpy()  # (the diagonal is inf: never counted)
    d_rs = torch.cdist(r, s).numpy()
    near = d_rs.min(axis=1) <= real_knn  # a synthetic sample within the real sample's k-NN radius
    real_to_syn_centre = torch.linalg.norm(r - s.mean(0), dim=1).numpy()
    covered = near[:, None] & (real_to_syn_centre[:, None] <= syn_radii[None, :])
    nearest_real = d_rs.argmin(axis=0)  # for every synthetic sample, its nearest real sample r*
    authentic = d_rs[nearest_real, np.arange(len(s))] > real_nn[nearest_real]
    in_alpha = syn_to_real_centre[:, None] <= real_radii[None, :]
    return FidelityIndicators(in_alpha.astype(float), covered.astype(float), authentic.astype(float))


def per_sample_authenticity(synthetic: np.ndarray, real: np.ndarray) -> np.ndarray:
    """Whether each synthetic sample is authentic (True) or a likely copy of its nearest real sample: n_syn bool."""
    return fidelity_indicators(synthetic, real).authentic.astype(bool)
