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


@pytest.mark.slow
def test_split_conformal_threshold_rejects_alpha_of_genuine_images():
    """Acceptance (issue 15, item 2) with the default score: a real-vs-real null over 50 seeds, α = 0.1.

    As in the score stage: the C2ST of 100 reference vs 200 "synthetic" images (all real, 20
    features) at the default settings (C = 0.003, 5 folds × 3 repeats, no calibration), and 160
    held-out real images scored by every fold model. The threshold is the conformal quantile of
    60 of them; the other 100 (genuine evaluation images) and the pool's own genuine images
    (out of fold) are rejected at a mean rate in [0.06, 0.13]. The pool's rate is the one a user
    meets; held-out scores average 15 fold models, the pool's 3, so it sits a little above α
    (measured 0.106 here; 0.122 with one repeat) — "about α", not a strict bound for the pool.
    """
    qc = QCConfig(n_permutations=0)
    assert qc.c2st_c == 0.003 and qc.n_repeats == 3  # the default score, as on main
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
