"""What the stored p(synthetic) means, without changing it: reliability (ECE) and the conformal operating point.

Known-truth checks of :mod:`ctqc.qc.calibration`, and a real-vs-real null for the split-conformal
threshold with the C2ST exactly as the score stage configures it by default (fixed C, no calibration).
"""

import numpy as np
import pytest

from ctqc.config import QCConfig
from ctqc.qc.c2st import fit_c2st
from ctqc.qc.calibration import conformal_expected_rejection, conformal_rank, conformal_threshold, rejection_rate, reliability


def test_reliability_of_a_perfect_and_a_shrunk_score():
    """Scores equal to the true posterior have ECE ≈ 0; the same scores shrunk towards ½ do not."""
    rng = np.random.default_rng(0)
    truth = rng.random(20_000)
    labels = (rng.random(20_000) < truth).astype(int)
    assert reliability(truth, labels)["ece"] < 0.02
    shrunk = 0.5 + 0.3 * (truth - 0.5)
    result = reliability(shrunk, labels)
    assert result["ece"] == pytest.approx(np.mean(np.abs(shrunk - truth)), abs=0.02)  # |0.7·(p − ½)| averaged ≈ 0.175
    assert all(b["n"] > 0 and 0 <= b["observed"] <= 1 for b in result["bins"])
    assert reliability(shrunk, labels, target=shrunk)["ece"] == 0


def test_reliability_weights_the_real_images_up_to_equal_priors():
    """100 real at score 0.2, 400 synthetic at 0.8: under equal priors each bin is pure, so ECE = 0.2."""
    scores, labels = np.r_[np.full(100, 0.2), np.full(400, 0.8)], np.r_[np.zeros(100), np.ones(400)]
    result = reliability(scores, labels)
    assert result["ece"] == pytest.approx(0.2)
    assert [b["observed"] for b in result["bins"]] == [0.0, 1.0]
    mixed = reliability(np.full(500, 0.5), labels)  # one bin: real weight 4 each → synthetic share ½
    assert mixed["bins"][0]["observed"] == pytest.approx(0.5) and mixed["ece"] == pytest.approx(0.0)
    with pytest.raises(ValueError):
        reliability(np.full(5, 0.5), np.ones(5))


def test_conformal_threshold_is_the_right_order_statistic():
    scores = np.arange(1, 20) / 20  # n = 19: ⌈20 · 0.9⌉ = 18th smallest
    assert conformal_rank(19, 0.1) == 18 and conformal_threshold(scores, 0.1) == pytest.approx(0.9)
    assert conformal_expected_rejection(19, 0.1) == pytest.approx(1 - 18 / 20)  # = 0.1 exactly here
    assert conformal_expected_rejection(17, 0.1) == pytest.approx(1 - 17 / 18)  # ⌈16.2⌉ = 17: 0.056 ≤ 0.1
    assert conformal_threshold(scores[:5], 0.1) is None and conformal_expected_rejection(5, 0.1) is None  # 5 images cannot promise 10 %
    assert conformal_rank(9, 0.1) == 9  # n = 1/α − 1 is the fewest that can
    assert conformal_threshold(np.r_[scores, np.nan], 0.1) == pytest.approx(0.9)  # missing scores are dropped
    rate = rejection_rate(scores, 0.9)
    assert rate["rate"] == pytest.approx(1 / 19, abs=1e-4) and rate["ci"][0] < rate["rate"] < rate["ci"][1] and rate["n"] == 19
    with pytest.raises(ValueError):
        conformal_threshold(scores, 1.0)


def _shifted(seed):
    rng = np.random.default_rng(seed)
    real, synthetic = rng.normal(size=(100, 20)), rng.normal(size=(500, 20))
    synthetic[:, :2] += 1.0  # 1 SD along two features
    return real, synthetic


@pytest.mark.slow
def test_scores_match_the_true_equal_prior_posterior():
    """Acceptance (issue 15, item 1): 100 real, 500 synthetic, 20 features, 20 repetitions, C chosen by inner CV.

    Known truth: real ~ N(0, I), synthetic ~ N(μ, I), μ = (1, 1, 0, …) → equal-prior posterior
    σ(x₁ + x₂ − 1). Mean ECE against it ≤ 0.05 (the former fixed C = 0.003 without calibration: 0.17).
    A null (both from N(0, I)): mean score of the real and of the synthetic images within 0.5 ± 0.05.
    """
    qc = QCConfig(n_permutations=0, n_repeats=1)
    assert qc.c2st_c == "auto"  # the default: C by inner CV, then Platt scaling
    eces, null_means = [], []
    for seed in range(20):
        real, synthetic = _shifted(seed)
        test = fit_c2st(real, synthetic, qc, seed, None)
        both = np.vstack([real, synthetic])
        truth = 1 / (1 + np.exp(-(both[:, 0] + both[:, 1] - 1)))
        eces.append(reliability(test.scores_, np.r_[np.zeros(100), np.ones(500)], target=truth)["ece"])
        rng = np.random.default_rng(100 + seed)
        null = fit_c2st(rng.normal(size=(100, 20)), rng.normal(size=(500, 20)), qc, seed, None)
        null_means.append((null.real_scores_.mean(), null.synthetic_scores_.mean()))
        assert len(test.chosen_c_) == qc.n_splits  # one inner-CV choice per outer fold
    assert np.mean(eces) <= 0.05
    assert np.all(np.abs(np.mean(null_means, axis=0) - 0.5) <= 0.05)


@pytest.mark.slow
def test_split_conformal_threshold_rejects_alpha_of_genuine_images():
    """Acceptance (issue 15, item 2) with the default score: a real-vs-real null over 50 seeds, α = 0.1.

    As in the score stage: the C2ST of 100 reference vs 200 "synthetic" images (all real, 20
    features) at the default settings (C by inner CV, Platt scaling, 5 folds × 3 repeats), and 160
    held-out real images, each scored per repeat by one fold model (like an out-of-fold score).
    The threshold is the conformal quantile of 60 of them; the other 100 (genuine evaluation
    images) and the pool's own genuine images (out of fold) are rejected at a mean rate in
    [0.06, 0.13].
    """
    qc = QCConfig(n_permutations=0)
    assert qc.c2st_c == "auto" and qc.n_repeats == 3  # the default score
    evaluation, pool = [], []
    for seed in range(50):
        rng = np.random.default_rng(1000 + seed)
        reference, synthetic, calibration, fresh = (rng.normal(size=(n, 20)) for n in (100, 200, 60, 100))
        test = fit_c2st(reference, synthetic, qc, seed, None, heldout=np.vstack([calibration, fresh]))
        threshold = conformal_threshold(test.heldout_scores_[:60], 0.1)
        evaluation.append(np.mean(test.heldout_scores_[60:] > threshold))
        pool.append(np.mean(test.synthetic_scores_ > threshold))
    assert 0.06 <= np.mean(evaluation) <= 0.13
    assert 0.06 <= np.mean(pool) <= 0.13
