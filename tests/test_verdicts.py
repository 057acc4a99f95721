"""classify.verdicts: library cross-checks, the decision rule, and simulations with known truth (issue 16 acceptance).

The simulated population (:func:`simulate`): image i of class c ∈ {0, 1} is
classified correctly by arm a in training (seed) s with probability
expit(β_a ± 0.4 + u_i + v_{a,s}) — u_i ~ N(0, 1.5²) is a per-image difficulty
shared by both arms (so the arms are correlated), v_{a,s} ~ N(0, 0.15²) a
per-seed shift (logit scale; in the k-fold version one per fold model), ±0.4
makes sensitivity and specificity differ. β_a is solved so that the population
balanced accuracy (over images and seeds) is exactly 0.75 or 0.80.
"""

import numpy as np
import pytest
from scipy import stats
from scipy.optimize import brentq
from scipy.special import expit

from classify import decisions as d
from classify import verdicts as v

SD_IMAGE, SD_SEED, CLASS_SHIFT = 1.5, 0.15, 0.4
N_SIMS = 2_000


def _intercept(balanced_accuracy: float) -> float:
    """β such that the population balanced accuracy is ``balanced_accuracy`` (Gauss–Hermite over u + v)."""
    x, w = np.polynomial.hermite_e.hermegauss(80)
    w = w / w.sum()
    sd = np.hypot(SD_IMAGE, SD_SEED)
    ba = lambda b: 0.5 * sum((w * expit(b + s * CLASS_SHIFT + sd * x)).sum() for s in (-1, 1))
    return brentq(lambda b: ba(b) - balanced_accuracy, -10, 10)


def simulate(rng, n_images: int, n_seeds: int, truths=(0.80, 0.75), folds: int = 1, n_sims: int = N_SIMS):
    """``labels (N,)`` and per arm correctness ``(n_sims, seeds, N)``; with ``folds`` > 1 each image is
    tested by the model of its fold (one per fold × seed), i.e. pooled out-of-fold predictions."""
    labels = (np.arange(n_images) < round(0.4 * n_images)).astype(int)
    sign = np.where(labels == 1, 1.0, -1.0)
    u = rng.normal(0, SD_IMAGE, (n_sims, 1, n_images))
    fold_of = np.argsort(rng.random((n_sims, n_images)), axis=1) % folds  # a random, balanced fold per image
    arms = []
    for truth in truths:
        shift = rng.normal(0, SD_SEED, (n_sims, n_seeds, folds))
        per_image = np.take_along_axis(shift, np.broadcast_to(fold_of[:, None, :], (n_sims, n_seeds, n_images)), axis=2)
        p = expit(_intercept(truth) + CLASS_SHIFT * sign + u + per_image)
        arms.append((rng.random(p.shape) < p).astype(float))
    return labels, arms


def _evidence(r) -> np.ndarray:
    return np.array([d.decide(*x) in (v.IMPROVEMENT, v.DECREASE) for x in zip(r["estimate"], r["ci_low"], r["ci_high"], r["p_value"])])


def test_the_population_has_the_stated_balanced_accuracy():
    rng = np.random.default_rng(0)
    labels, (a, b) = simulate(rng, 200, 3, n_sims=400)
    w = v.image_weights(labels, "balanced_accuracy")
    assert (a.mean(axis=(0, 1)) @ w) == pytest.approx(0.80, abs=0.01) and (b.mean(axis=(0, 1)) @ w) == pytest.approx(0.75, abs=0.01)


# --------------------------------------------------------------------------- simulations with known truth


@pytest.mark.parametrize("folds", [1, 5], ids=["holdout", "5-fold pooled"])
@pytest.mark.parametrize(("n_images", "n_seeds"), [(22, 3), (22, 10), (200, 3), (200, 10)])
def test_interval_of_the_difference_covers_the_truth(n_images, n_seeds, folds):
    """The 95 % interval covers +5 points in 93–97 % (200 images) or 90–98 % (22 images) of the simulations.

    4,000 simulations with 200 images (the method's coverage there is about 0.94, so the
    Monte Carlo SE of 0.35 points matters against the 0.93 bound), 2,000 with 22."""
    rng = np.random.default_rng([n_images, n_seeds, folds])
    labels, (a, b) = simulate(rng, n_images, n_seeds, folds=folds, n_sims=2 * N_SIMS if n_images == 200 else N_SIMS)
    r = v.paired_difference(a, b, labels, n_resamples=2_000, n_permutations=1_000, seed=1)
    coverage = np.mean((r["ci_low"] <= 0.05) & (0.05 <= r["ci_high"]))
    low, high = (0.93, 0.97) if n_images == 200 else (0.90, 0.98)
    print(f"coverage n={n_images} seeds={n_seeds} folds={folds}: {coverage:.3f}; median MDE {np.median(r['mdd']):.3f}")
    assert low <= coverage <= high
    assert np.all((r["ci_low"] >= -1) & (r["ci_high"] <= 1) & (r["ci_low"] <= r["estimate"]) & (r["estimate"] <= r["ci_high"]))


@pytest.mark.parametrize("folds", [1, 5], ids=["holdout", "5-fold pooled"])
@pytest.mark.parametrize(("n_images", "n_seeds"), [(22, 3), (200, 3), (200, 10)])
def test_no_true_difference_the_primary_decision_rejects_at_most_6_5_percent(n_images, n_seeds, folds):
    """2,000 null simulations; the primary comparison's verdict (interval excludes 0 and p ≤ 0.05) is evidence in ≤ 6.5 %."""
    rng = np.random.default_rng([n_images, n_seeds, folds, 0])
    labels, (a, b) = simulate(rng, n_images, n_seeds, truths=(0.75, 0.75), folds=folds)
    r = v.paired_difference(a, b, labels, n_resamples=2_000, n_permutations=2_000, seed=2)
    comps = [{"arm": "A", "reference": "B", "estimate": e, "ci_low": lo, "ci_high": hi, "p_value": p} for e, lo, hi, p in zip(r["estimate"], r["ci_low"], r["ci_high"], r["p_value"])]
    rejected = np.mean([d.adjust([c], primary=[("A", "B")])[0]["verdict"] != v.NO_EVIDENCE for c in comps])
    test_alone = np.mean(r["p_value"] <= 0.05)
    print(f"null n={n_images} seeds={n_seeds} folds={folds}: decision {rejected:.3f}, sign-flip alone {test_alone:.3f}")
    assert rejected <= 0.065
    assert rejected == pytest.approx(np.mean(_evidence(r)))


# --------------------------------------------------------------------------- library cross-checks


def test_point_estimates_match_sklearn_on_one_replicate():
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, recall_score

    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 40)
    pred = np.where(rng.random(40) < 0.8, y, 1 - y)
    correct = (pred == y).astype(float)[None, None, :]
    for metric, ref in [
        ("balanced_accuracy", balanced_accuracy_score(y, pred)),
        ("accuracy", accuracy_score(y, pred)),
        ("sensitivity", recall_score(y, pred, pos_label=1)),
        ("specificity", recall_score(y, pred, pos_label=0)),
    ]:
        assert v.estimate_arms(correct, y, metric, n_resamples=200)["estimate"][0] == pytest.approx(ref)


def test_bootstrap_matches_scipy_on_a_one_class_case():
    """One class (so stratification is moot), one replicate: our percentile interval ≈ scipy.stats.bootstrap's."""
    rng = np.random.default_rng(4)
    x = (rng.random(60) < 0.7).astype(float)
    ours = v.estimate_arms(x[None, None, :], np.zeros(60, int), "accuracy", n_resamples=20_000, seed=5)
    ref = stats.bootstrap((x,), np.mean, n_resamples=20_000, method="percentile", random_state=6).confidence_interval
    assert ours["ci_low"][0] == pytest.approx(ref.low, abs=0.015) and ours["ci_high"][0] == pytest.approx(ref.high, abs=0.015)
    assert ours["se"][0] == pytest.approx(x.std(ddof=0) / np.sqrt(60), rel=0.05)  # the bootstrap SE of a mean


def test_sign_flip_test_matches_scipy_permutation_test():
    """Exact enumeration equals scipy's paired ("samples") permutation test; Monte Carlo is close to it."""
    rng = np.random.default_rng(7)
    a, b = (rng.random((2, 12)) < [[0.8], [0.55]]).astype(float)
    ref = stats.permutation_test((a, b), lambda x, y, axis: np.mean(x - y, axis=axis), permutation_type="samples", n_resamples=np.inf, vectorized=True).pvalue
    w = v.image_weights(np.zeros(12, int), "accuracy")
    p, method = v.sign_flip_test(a - b, w, rng=rng)
    assert method == "exact" and p == pytest.approx(ref)
    big_a, big_b = (rng.random((2, 60)) < [[0.8], [0.7]]).astype(float)
    ref = stats.permutation_test((big_a, big_b), lambda x, y, axis: np.mean(x - y, axis=axis), permutation_type="samples", n_resamples=20_000, vectorized=True, random_state=8).pvalue
    p, method = v.sign_flip_test(big_a - big_b, v.image_weights(np.zeros(60, int), "accuracy"), n_permutations=20_000, rng=rng)
    assert method.startswith("Monte Carlo") and p == pytest.approx(ref, abs=0.015)


def test_holm_matches_a_hand_computed_example():
    # sorted 0.01, 0.02, 0.03, 0.04 → ×4, ×3, ×2, ×1 = 0.04, 0.06, 0.06, 0.04 → running max 0.04, 0.06, 0.06, 0.06
    assert d.holm([0.03, 0.01, 0.04, 0.02, np.nan]).tolist()[:4] == pytest.approx([0.06, 0.04, 0.06, 0.06])
    assert np.isnan(d.holm([0.03, np.nan])[1]) and d.holm([0.6, 0.7]).tolist() == [1.0, 1.0]


def test_minimum_detectable_difference_is_2_8_standard_errors():
    assert float(v.minimum_detectable_difference(0.1)) == pytest.approx(0.1 * (stats.norm.ppf(0.975) + stats.norm.ppf(0.8)))
    assert float(v.minimum_detectable_difference(0.1)) == pytest.approx(0.280, abs=0.001)


# --------------------------------------------------------------------------- the decision rule and its unit cases


def test_three_identical_differences_without_predictions_are_not_estimable():
    """The demo's "−9.1 [−9.1, −9.1]": three identical seed-level differences, no per-image predictions."""
    r = d.verdict(None, None, None)
    assert r["verdict"] == v.NOT_ESTIMABLE and "per-image" in r["why"]
    assert d.decide(-0.091, -0.091, -0.091, 0.25) == v.NOT_ESTIMABLE  # a zero-width interval is never evidence
    y = np.repeat([0, 1], 11)
    same = np.ones((3, 22))
    assert d.verdict(same, same, y)["verdict"] == v.NOT_ESTIMABLE  # identical per-image predictions: zero width


def test_five_seeds_on_22_images_give_an_interval_no_evidence_and_the_mde():
    """The paper case: five seeds on one 22-image test set with a small seed spread, +10 points at the seed level."""
    rng = np.random.default_rng(11)
    y = np.repeat([0, 1], 11)
    base = rng.random(22) < 0.75  # which images the reference gets right
    flips = np.zeros(22, bool)
    flips[np.flatnonzero(~base)[:3]] = True  # the arm fixes 3 images ...
    flips[np.flatnonzero(base)[:1]] = True  # ... and breaks 1
    ref = np.tile(base, (5, 1)).astype(float)
    arm = np.tile(base ^ flips, (5, 1)).astype(float)
    arm[0, np.flatnonzero(base ^ flips)[0]] = 0  # a small seed spread
    ref[4, np.flatnonzero(~base)[-1]] = 1
    r = d.verdict(arm, ref, y)
    assert r["n_images"] == 22 and r["n_replicates"] == 5
    assert r["ci_low"] < 0 < r["ci_high"] and -1 <= r["ci_low"] and r["ci_high"] <= 1
    assert r["verdict"] == v.NO_EVIDENCE and r["p_value"] > 0.05 and r["test"].endswith("exact")
    assert r["mdd"] > 0.15  # 22 images cannot detect a 10-point difference
    line = d.describe({"arm": "original+filtered", "reference": "original+random-subset", **r})
    assert "no evidence of a difference" in line and "larger than" in line and "pp" in line


def test_decide_needs_both_the_interval_and_the_test():
    assert d.decide(0.1, 0.05, 0.15, 0.01) == v.IMPROVEMENT
    assert d.decide(-0.1, -0.15, -0.05, 0.01) == v.DECREASE
    assert d.decide(0.1, 0.05, 0.15, 0.062) == v.NO_EVIDENCE  # the paper's contradiction: CI excludes 0, p = 0.062
    assert d.decide(0.1, -0.01, 0.2, 0.01) == v.NO_EVIDENCE
    assert d.decide(float("nan"), 0, 1, 0.5) == v.NOT_ESTIMABLE


def test_fixed_sequence_primary_and_holm_secondary():
    def comp(arm, ref, p, lo=0.02):
        return {"arm": arm, "reference": ref, "estimate": 0.05, "ci_low": lo, "ci_high": 0.08, "p_value": p}

    primary = [("original+filtered", "original+random-subset"), ("original+filtered", "original+synthetic")]
    comps = [comp("original+filtered", "original+synthetic", 0.001), comp("original+filtered", "original+random-subset", 0.2, lo=-0.01),
             comp("original+synthetic", "original", 0.01), comp("original+classical", "original", 0.03)]  # fmt: skip
    d.adjust(comps, primary)
    by = {(c["arm"], c["reference"]): c for c in comps}
    first, second = by[primary[0]], by[primary[1]]
    assert first["role"] == second["role"] == "primary" and first["verdict"] == v.NO_EVIDENCE
    assert second["verdict"] == v.NO_EVIDENCE and "not tested" in second["adjustment"]  # stopped: p = 0.001 does not count
    syn, cla = by[("original+synthetic", "original")], by[("original+classical", "original")]
    assert syn["role"] == cla["role"] == "secondary" and syn["p_adjusted"] == pytest.approx(0.02) and cla["p_adjusted"] == pytest.approx(0.03)
    assert syn["verdict"] == cla["verdict"] == v.IMPROVEMENT
    comps[1].update(ci_low=0.01, p_value=0.01)  # the first step succeeds → the second is tested
    d.adjust(comps, primary)
    assert by[primary[0]]["verdict"] == v.IMPROVEMENT and by[primary[1]]["verdict"] == v.IMPROVEMENT and "step 2" in by[primary[1]]["adjustment"]


def test_paired_resample_shares_images_and_respects_bounds():
    """An arm always right and one always wrong: the difference is +1 with a zero-width interval at the bound."""
    y = np.repeat([0, 1], 5)
    r = v.paired_difference(np.ones((3, 10)), np.zeros((3, 10)), y, n_resamples=500)
    assert r["estimate"] == pytest.approx(1) and r["ci_low"] == pytest.approx(1) and r["ci_high"] == 1  # paired: no resample mixes the arms
    arms = v.estimate_arms(np.stack([np.ones((3, 10)), (np.arange(10) % 2 == 0) * np.ones((3, 10))]), y, n_resamples=500)
    assert np.all(arms["ci_high"] <= 1) and np.all(arms["ci_low"] >= 0) and arms["ci_high"][0] == 1


# --------------------------------------------------------------------------- ROC AUC


def test_roc_auc_matches_sklearn_and_averages_replicates():
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(5)
    y = np.tile([0, 1], 25)
    scores = np.round(rng.random((3, 50)) * 0.5 + 0.4 * y, 2)  # rounded: ties count ½, as in sklearn
    one = v.roc_auc_interval(scores[:1], y, n_resamples=500)
    assert one["estimate"] == pytest.approx(roc_auc_score(y, scores[0]))
    three = v.roc_auc_interval(scores, y, n_resamples=500)
    assert three["estimate"] == pytest.approx(np.mean([roc_auc_score(y, s) for s in scores]))
    assert 0 <= three["ci_low"] < three["estimate"] < three["ci_high"] <= 1 and three["se"] > 0
    perfect = v.roc_auc_interval(np.array([y * 0.9 + 0.05]), y, n_resamples=200)
    assert (perfect["estimate"], perfect["ci_low"], perfect["ci_high"]) == (1.0, 1.0, 1.0)  # inside the bounds, never past
    with pytest.raises(ValueError, match="both classes"):
        v.roc_auc_interval(scores, np.ones(50, dtype=int))


def test_roc_auc_interval_covers_the_true_auc():
    """Binormal scores with a known AUC Φ(δ/√2) = 0.80; 300 simulations of 30 + 30 images: coverage in 0.90–0.98."""
    rng = np.random.default_rng(11)
    delta = np.sqrt(2) * stats.norm.ppf(0.80)
    y = np.repeat([0, 1], 30)
    hits = []
    for _ in range(300):
        s = rng.normal(size=(1, 60)) + delta * y
        r = v.roc_auc_interval(s, y, n_resamples=1_000, seed=int(rng.integers(1 << 30)))
        hits.append(r["ci_low"] <= 0.80 <= r["ci_high"])
    coverage = float(np.mean(hits))
    print(f"ROC AUC coverage {coverage:.3f}")
    assert 0.90 <= coverage <= 0.98
