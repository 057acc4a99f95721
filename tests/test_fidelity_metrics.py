"""α-precision, β-recall, authenticity (Alaa et al. 2022) and CMMD / RBF-MMD (Jayasumana et al. 2024) on known cases."""

from __future__ import annotations

import numpy as np
import pytest

from ctqc.artefacts import ScopeMetrics, rbf_mmd_label
from ctqc.qc.fidelity_metrics import ALPHAS, fidelity_indicators, integrated, per_sample_authenticity
from ctqc.qc.metrics import distribution_metrics, kid
from ctqc.qc.mmd import SIGMA, mmd_from_counts, rbf_kernels, rbf_mmd

N, D = 200, 16


def _gauss(seed: int, n: int = N, d: int = D) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, d))


def test_integrated_scalar_is_one_on_the_diagonal_and_zero_at_the_worst():
    assert integrated(ALPHAS)[0] == pytest.approx(1.0)
    assert integrated(np.ones_like(ALPHAS))[0] == pytest.approx(0.0)  # every sample inside the smallest support
    assert integrated(np.zeros_like(ALPHAS))[0] == pytest.approx(0.0)


def test_two_samples_of_one_distribution_score_near_one_and_are_authentic():
    scores = fidelity_indicators(_gauss(1), _gauss(0)).point()
    assert scores["alpha_precision"] > 0.9 and scores["beta_recall"] > 0.85
    assert scores["authenticity"] > 0.5  # unseen samples of the same distribution: mostly not copies (0.57-0.79 measured)


def test_a_mode_collapsed_generator_has_low_beta_recall():
    real = _gauss(0)
    collapsed = real[:3][np.random.default_rng(1).integers(0, 3, N)] + 0.05 * _gauss(2)  # three modes, tiny spread
    scores = fidelity_indicators(collapsed, real).point()
    assert scores["beta_recall"] < 0.2
    assert fidelity_indicators(_gauss(1), real).point()["beta_recall"] - scores["beta_recall"] > 0.6


def test_copies_of_the_reference_are_inauthentic():
    real = _gauss(0)
    copies = real + 1e-3 * _gauss(3)
    scores = fidelity_indicators(copies, real).point()
    assert scores["authenticity"] < 0.05
    half = np.concatenate([copies[:100], _gauss(4, 100)])  # half copied, half new
    flags = per_sample_authenticity(half, real)
    assert not flags[:100].any() and flags[100:].mean() > 0.5


def test_a_shifted_generator_has_low_alpha_precision():
    assert fidelity_indicators(_gauss(1) + 3.0, _gauss(0)).point()["alpha_precision"] < 0.1


def test_rbf_mmd_is_the_unbiased_estimate_scaled_by_1000_on_normalised_rows():
    x, y = _gauss(0, 30, 4), _gauss(1, 40, 4) + 0.5
    xn, yn = x / np.linalg.norm(x, axis=1, keepdims=True), y / np.linalg.norm(y, axis=1, keepdims=True)

    def k(a, b):
        return np.exp(-((a[:, None, :] - b[None, :, :]) ** 2).sum(-1) / (2 * SIGMA**2))

    kxx, kyy, kxy = k(xn, xn), k(yn, yn), k(xn, yn)
    expected = (kxx.sum() - np.trace(kxx)) / (30 * 29) + (kyy.sum() - np.trace(kyy)) / (40 * 39) - 2 * kxy.mean()
    assert rbf_mmd(x, y) == pytest.approx(1000 * expected, rel=1e-9)
    assert abs(rbf_mmd(_gauss(0), _gauss(1))) < 0.5 * rbf_mmd(x, y)  # same distribution: near 0
    assert rbf_mmd(3.0 * x, y) == pytest.approx(rbf_mmd(x, y))  # scale-free: the rows are normalised first


def test_counts_formula_gives_kid_of_the_resample_materialised():
    x, y = _gauss(0, 12, 3), _gauss(1, 10, 3)
    c1, c2 = np.bincount([0, 0, 1, 5, 7, 7, 7, 9, 10, 11, 11, 3], minlength=12), np.ones(10)
    k11, k12, k22 = rbf_kernels(x, y)
    rows = np.repeat(np.arange(12), c1)
    sub = k11[np.ix_(rows, rows)]
    same = rows[:, None] == rows[None, :]  # an image and its own repeats are not pairs
    expected = sub[~same].mean() + (k22.sum() - np.trace(k22)) / 90 - 2 * k12[rows].mean()
    assert mmd_from_counts(k11, k12, k22, c1, c2)[0] == pytest.approx(expected)


def test_distribution_metrics_report_the_new_metrics_with_intervals_and_floors():
    out = distribution_metrics(_gauss(1, 40), _gauss(0, 40), _gauss(2, 20), n_bootstrap=50, seed=0)
    scope = ScopeMetrics.model_validate({k: v for k, v in out.items() if k != "warnings"})
    for name in ("rbf_mmd", "alpha_precision", "beta_recall", "authenticity"):
        e = getattr(scope, name)
        assert e is not None and e.ci_low <= e.value <= e.ci_high and e.floor is not None and e.matched is not None
    assert list(scope.estimates())[:4] == ["fid", "kid", "precision", "recall"]
    assert out["kid"]["value"] == pytest.approx(kid(_gauss(1, 40), _gauss(0, 40))[0])  # KID unchanged by the shared MMD formula


def test_cmmd_is_named_only_on_its_own_clip():
    assert rbf_mmd_label("clip-vit-l-14-336px") == "CMMD"
    assert rbf_mmd_label("dinov2-vits14") == "RBF-MMD (dinov2-vits14)"


def test_the_filter_rejects_inauthentic_images_only_when_asked():
    import pandas as pd

    from ctqc.config import QCConfig
    from ctqc.qc.scoring import decide

    table = pd.DataFrame({"c2st_score": [0.1, 0.9, 0.2, 0.3], "copy_flagged": [False, False, True, False], "authentic": [True, True, False, None]})
    assert list(decide(table, 0.6, memorisation=True)["reasons"]) == ["", "c2st", "copy", ""]  # the default: authenticity is only shown
    assert list(decide(table, 0.6, memorisation=False, inauthentic=True)["reasons"]) == ["", "c2st", "inauthentic", ""]
    assert list(decide(table.drop(columns="authentic"), 0.6, memorisation=False, inauthentic=True)["reasons"]) == ["", "c2st", "", ""]  # older tables
    assert QCConfig().reject_inauthentic is False
