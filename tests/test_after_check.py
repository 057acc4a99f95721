"""The after-filter check compares the kept images with real images that did not choose them (issue 15, item 3)."""

import numpy as np
import pytest

from ctqc.config import QCConfig
from ctqc.qc.c2st import C2ST, two_sided_p_value
from ctqc.qc.scoring import UnitFeatures, after_check


@pytest.mark.slow
def test_kept_vs_evaluation_reals_matches_kept_vs_fresh_reals():
    """Planted selection: a pool shifted by 1 SD along 3 of 10 features, scored against 100 reference images;
    the most real-looking half (100) is kept. Over 200 simulations the after-check (kept vs the 100
    held-out evaluation images) has mean AUC > 0.5 and within 0.05 of kept vs 100 fresh real images."""
    qc = QCConfig(c2st_c=0.003, n_splits=3, n_repeats=1, n_permutations=0, pca_components=0)
    evaluation, fresh = [], []
    for seed in range(200):
        rng = np.random.default_rng(seed)
        reference, held, new = (rng.normal(size=(100, 10)) for _ in range(3))
        pool = rng.normal(size=(200, 10))
        pool[:, :3] += 1.0
        scores = C2ST(c=0.003, n_splits=3, n_repeats=1, n_permutations=0, random_state=seed).fit(reference, pool).synthetic_scores_
        kept = scores <= np.median(scores)
        evaluation.append(after_check(UnitFeatures(reference, pool, held, None), kept, qc, seed, 0)["auc"])
        fresh.append(after_check(UnitFeatures(reference, pool, new, None), kept, qc, seed, 0)["auc"])
    assert np.mean(evaluation) > 0.5
    assert abs(np.mean(evaluation) - np.mean(fresh)) <= 0.05


def test_after_check_needs_evaluation_images():
    rng = np.random.default_rng(0)
    features = UnitFeatures(rng.normal(size=(30, 4)), rng.normal(size=(30, 4)), np.zeros((1, 4)), None)
    result = after_check(features, np.ones(30, bool), QCConfig(n_permutations=0, n_repeats=1), 0, 0)
    assert result["auc"] is None and "too few images" in result["note"]
    assert after_check(features, np.zeros(30, bool), QCConfig(n_permutations=0, n_repeats=1), 0, 0)["note"] == "no image kept"


def test_after_check_uses_the_heldout_images_and_is_two_sided():
    """The kept images are compared with ``heldout``, not ``reference``; an AUC well below 0.5 is flagged, not praised.

    Kept images that copy the held-out images with a little noise sit *between* them: a
    cross-validated classifier then scores its held-out rows against their own class, so the AUC
    falls well below 0.5 — the two-sided p-value is small and a note says it is an artefact.
    Calibrated, the scores never reverse the ranking: they fall back to 0.5 (no evidence).
    """
    rng = np.random.default_rng(3)
    reference = rng.normal(size=(40, 4)) + 5.0  # far away: a check against it would give AUC ≈ 1
    heldout = rng.normal(size=(40, 4))
    pool = np.vstack([heldout + rng.normal(scale=0.01, size=heldout.shape), rng.normal(size=(10, 4)) + 5.0])
    kept = np.r_[np.ones(40, bool), np.zeros(10, bool)]
    qc = QCConfig(n_permutations=99, n_repeats=1, pca_components=0)
    result = after_check(UnitFeatures(reference, pool, heldout, None), kept, qc, 0, 0)
    assert result["n_real"] == 40 and result["n_synthetic"] == 40
    # the calibrated scores carry no evidence here (a reversed Platt map is replaced by the prior: AUC 0.5), while the
    # exact test's statistic (label-free C, uncalibrated) sits well below 0.5 and the two-sided p-value says so
    assert result["auc"] <= 0.5 and result["p_value_two_sided"] <= 0.05 and result["p_value"] > 0.5
    assert "artefact" in result["note"]
    fair = after_check(UnitFeatures(reference, rng.normal(size=(50, 4)), heldout, None), np.ones(50, bool), qc, 0, 0)
    assert 0.3 < fair["auc"] < 0.7 and fair["p_value_two_sided"] > 0.05 and fair.get("note") is None


def test_two_sided_p_value_counts_both_tails():
    test = C2ST(n_permutations=3)
    test.null_aucs_, test.permutation_statistic_ = np.array([0.5, 0.6, 0.3]), 0.35
    assert two_sided_p_value(test) == pytest.approx((1 + 1) / 4)  # only |0.3 − ½| ≥ |0.35 − ½|
    test.permutation_statistic_ = 0.75
    assert two_sided_p_value(test) == pytest.approx(1 / 4)
    assert two_sided_p_value(C2ST(n_permutations=0)) is None
