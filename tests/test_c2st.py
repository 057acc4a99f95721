"""Classifier two-sample test: known answers and out-of-fold scoring."""

import numpy as np
import pytest

from ctqc.qc.c2st import C2ST


def _gauss(n, d=8, shift=0.0, seed=0):
    return np.random.default_rng(seed).normal(size=(n, d)) + shift


def test_identical_distributions_give_auc_near_half_and_scores_near_half():
    c = C2ST(n_permutations=50, random_state=1).fit(_gauss(150, seed=1), _gauss(400, seed=2))
    assert abs(c.auc_ - 0.5) < 0.1
    assert 0 < c.p_value_ <= 1 and c.p_value_ > 0.05
    # prior correction: 0.5 means indistinguishable even with 400 synthetic vs 150 real
    assert abs(np.median(c.synthetic_scores_) - 0.5) < 0.1
    assert len(c.synthetic_scores_) == 400 and len(c.real_scores_) == 150


def test_obvious_shift_is_detected_with_the_smallest_p_value():
    c = C2ST(n_permutations=30, random_state=0).fit(_gauss(100, seed=3), _gauss(100, shift=1.5, seed=4))
    assert c.auc_ > 0.97 and c.accuracy_ > 0.9
    assert c.p_value_ == pytest.approx(1 / 31)
    assert np.median(c.synthetic_scores_) > 0.9


def test_only_the_shifted_synthetic_images_score_high():
    syn = _gauss(200, seed=6)
    syn[:20] += 3.0  # 10 % of the pool is off-distribution
    c = C2ST(n_permutations=0, random_state=0).fit(_gauss(200, seed=5), syn)
    from sklearn.metrics import roc_auc_score

    scores = c.synthetic_scores_
    is_off = np.r_[np.ones(20), np.zeros(180)]
    # the off-distribution images rank on top (0.944 here: each outer fold has its own Platt map, so pooled
    # over folds the ranking is a little noisier than one uncalibrated model's, which reached > 0.95)
    assert roc_auc_score(is_off, scores) > 0.93
    # Calibrated, a linear model fitted to a 90/10 mixture is modest about the outliers (its logit cannot bend
    # like the true one, which is flat for the 90 % and steep for the 10 %): above 0.6 in the median, not near 1.
    assert np.median(scores[:20]) > 0.6 and np.median(scores[20:]) < 0.55


def test_every_score_is_out_of_fold(monkeypatch):
    seen = []
    original = C2ST._folds

    def spy(self, y, groups, seed):
        folds = list(original(self, y, groups, seed))
        seen.append(folds)
        return folds

    monkeypatch.setattr(C2ST, "_folds", spy)
    # a memorising classifier would score its own training images perfectly: out of fold it cannot
    c = C2ST(classifier="forest", n_repeats=2, n_permutations=0).fit(_gauss(60, seed=7), _gauss(60, seed=8))
    assert abs(c.auc_ - 0.5) < 0.15
    for folds in seen:
        tested = np.concatenate([test for _, test in folds])
        assert sorted(tested) == list(range(120))  # each image tested exactly once per repeat
        for train, test in folds:
            assert not set(train) & set(test)


def test_groups_keep_a_patient_in_one_fold():
    real = _gauss(60, seed=9)
    groups = np.repeat(np.arange(20), 3)
    c = C2ST(n_permutations=0, random_state=0)
    y = np.r_[np.zeros(60, int), np.ones(40, int)]
    all_groups = np.r_[groups.astype(str), [f"__syn{i}" for i in range(40)]]
    for train, test in c._folds(y, all_groups, 0):
        assert not set(all_groups[train]) & set(all_groups[test])
    c.fit(real, _gauss(40, seed=10), groups=groups)
    assert 0.3 < c.auc_ < 0.7


def test_bad_inputs_are_rejected():
    with pytest.raises(ValueError, match="equal widths"):
        C2ST().fit(_gauss(10, d=3), _gauss(10, d=4))
    with pytest.raises(ValueError, match="at least n_splits"):
        C2ST().fit(_gauss(3), _gauss(10))
    with pytest.raises(ValueError, match="unknown C2ST classifier"):
        C2ST(classifier="svm").fit(_gauss(10), _gauss(10))


def test_permutation_p_values_are_roughly_uniform_under_the_null():
    """Same distribution on both sides: p-values spread over (0, 1], not piled up near 0."""
    p_values = [C2ST(n_repeats=1, n_permutations=29, random_state=s, c=0.003).fit(_gauss(30, seed=100 + s), _gauss(40, seed=200 + s)).p_value_ for s in range(10)]
    assert all(0 < p <= 1 for p in p_values)
    assert 0.25 < np.mean(p_values) < 0.75 and sum(p < 0.1 for p in p_values) <= 3


@pytest.mark.parametrize("n_real,n_syn", [(72, 5), (5, 72), (6, 40)])
def test_very_unequal_sizes_give_a_valid_test(n_real, n_syn):
    """A handful of images of one kind: permuted labels can leave a training fold with one class — still a valid p."""
    c = C2ST(n_permutations=200, random_state=3).fit(_gauss(n_real, seed=7), _gauss(n_syn, shift=3.0, seed=8))
    assert 0 < c.p_value_ <= 1 and len(c.null_aucs_) == 200 and np.isfinite(c.null_aucs_).all()
    assert c.auc_ > 0.9 and c.p_value_ < 0.05  # a 3-SD shift is still found with 5 images
    assert np.isfinite(c.synthetic_scores_).all() and len(c.synthetic_scores_) == n_syn


def test_batched_permutation_fits_equal_scikit_learn():
    """All labellings fitted together reach scikit-learn's LogisticRegression optimum; AUCs match roc_auc_score with ties."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    from ctqc.qc.c2st import _column_aucs, _mm_logreg

    rng = np.random.default_rng(0)
    x, x_test = rng.normal(size=(300, 12)), rng.normal(size=(40, 12))
    labels = np.stack([(x[:, 0] + rng.normal(size=300) > 0.8), rng.random(300) < 0.1, rng.random(300) < 0.5], axis=1).astype(float)
    for c in (0.003, 1.0):
        ours = _mm_logreg(x, labels, x_test, c)
        for j in range(labels.shape[1]):
            theirs = LogisticRegression(C=c, tol=1e-12, max_iter=100_000).fit(x, labels[:, j]).predict_proba(x_test)[:, 1]
            assert np.abs(ours[:, j] - theirs).max() < 1e-6
    scores = np.round(rng.random((300, 3)), 1)  # many ties
    assert np.allclose(_column_aucs(labels, scores), [roc_auc_score(labels[:, j], scores[:, j]) for j in range(3)])
