"""The label strategy's classifier (fitted on real training images only) and the strategies' decisions."""

import numpy as np
import pandas as pd
import pytest

from ctqc.config import QCConfig
from ctqc.qc.label_scores import fit_fold
from ctqc.qc.scoring import UnitFeatures
from ctqc.qc.strategies import decide_strategy, flags, genuine_rejection

QC = QCConfig(pca_components=4)


def _members(rng, n_train=40, n_syn=30, n_held=10, d=12, shift=3.0, classes=(0, 1, 2)):
    """Gaussian classes shifted along their own non-pixel feature (the 8 leading "pixel" columns are PCA-reduced);
    synthetic images of class k drawn from class k (first half) or from class k + 1."""
    members = []
    for k in classes:
        mean = np.zeros(d)
        mean[8 + k] = shift
        other = np.zeros(d)
        other[8 + (k + 1) % len(classes)] = shift
        synthetic = np.vstack([rng.normal(mean, 1, (n_syn // 2, d)), rng.normal(other, 1, (n_syn - n_syn // 2, d))])
        members.append((f"fold0/c{k}", k, UnitFeatures(rng.normal(mean, 1, (n_train, d)), synthetic, rng.normal(mean, 1, (n_held, d)), pixel_columns=8)))
    return members


def test_the_label_classifier_sees_only_the_real_training_images():
    rng = np.random.default_rng(0)
    members = _members(rng)
    fit = fit_fold(members, QC, seed=0)
    assert fit.info["classes"] == [0, 1, 2] and fit.info["n_train"] == 120 and fit.info["c"] > 0 and "note" not in fit.info
    for label, _, f in members:  # multinomial: p(generated class) is high for the images of that class, low for the others
        p = fit.synthetic[label]
        assert p.shape == (len(f.synthetic),) and ((0 <= p) & (p <= 1)).all()
        assert p[:15].mean() > 0.7 and p[15:].mean() < 0.3
        assert fit.heldout[label].mean() > 0.7
    # leakage: other synthetic or held-out images change nothing but their own scores, so neither took part in fitting
    changed = [(label, key, UnitFeatures(f.reference, f.synthetic[::-1] * 3 + 5, f.heldout[:3] + 7, f.pixel_columns)) for label, key, f in members]
    again = fit_fold(changed, QC, seed=0)
    assert again.info == fit.info
    first = members[0][2]
    refit = fit_fold([(members[0][0], 0, UnitFeatures(first.reference, first.synthetic[:4], first.heldout[:2], 8)), *members[1:]], QC, seed=0)
    assert np.allclose(refit.synthetic["fold0/c0"], fit.synthetic["fold0/c0"][:4]) and np.allclose(refit.heldout["fold0/c1"], fit.heldout["fold0/c1"])
    # ... while the training images do change the classifier
    moved = [(members[0][0], 0, UnitFeatures(first.reference + 1.0, first.synthetic, first.heldout, 8)), *members[1:]]
    assert not np.allclose(fit_fold(moved, QC, seed=0).synthetic["fold0/c0"], fit.synthetic["fold0/c0"])


def test_one_class_or_too_few_images_leave_the_score_empty_with_a_note():
    rng = np.random.default_rng(1)
    fit = fit_fold(_members(rng, classes=(0,)), QC, seed=0)
    assert np.isnan(fit.synthetic["fold0/c0"]).all() and "only one class" in fit.info["note"]
    tiny = _members(rng, n_train=1)
    assert "fewer than 2 training images" in fit_fold(tiny, QC, seed=0).info["note"]


def test_strategies_reject_by_their_own_rules_and_both_is_the_intersection():
    rows = pd.DataFrame(
        {
            "c2st_score": [0.2, 0.9, 0.3, 0.8, 0.1, np.nan],
            "label_prob": [0.9, 0.9, 0.2, 0.1, np.nan, 0.3],
            "copy_flagged": [False, False, False, False, True, None],
        }
    )
    rule = flags(rows, 0.6, 0.5, memorisation=True)
    reasons = {s: decide_strategy(rows, s, rule)["reasons"].tolist() for s in ("realism", "label", "both")}
    assert reasons["realism"] == ["", "c2st", "", "c2st", "copy", ""]
    assert reasons["label"] == ["", "", "label", "label", "copy", "label"]  # a missing label score rejects nothing under label
    assert reasons["both"] == ["", "c2st", "label", "c2st+label", "copy", "label"]
    kept = {s: {i for i, r in enumerate(v) if r == ""} for s, v in reasons.items()}
    assert kept["both"] == kept["realism"] & kept["label"]
    assert flags(rows, 0.6, 0.5, memorisation=False)["copy"].sum() == 0
    # genuine images rejected: the held-out real images each rule would drop (both: either), with a Wilson interval
    held = pd.DataFrame({"c2st_score": [0.1, 0.7, 0.2, 0.3], "label_prob": [0.9, 0.8, 0.4, 0.6]})
    assert genuine_rejection(held, "realism", 0.6, 0.5)["rate"] == 0.25 and genuine_rejection(held, "label", 0.6, 0.5)["rate"] == 0.25
    both = genuine_rejection(held, "both", 0.6, 0.5)
    assert both["rate"] == 0.5 and both["n"] == 4 and both["ci"][0] < 0.5 < both["ci"][1]
    assert genuine_rejection(held.assign(label_prob=np.nan), "label", 0.6, 0.5)["n"] == 0


@pytest.mark.parametrize("name", ["realism", "label", "both"])
def test_every_strategy_has_rules_and_a_description(name):
    from ctqc.qc.strategies import DESCRIPTIONS, RULES

    assert "copy" in RULES[name] and DESCRIPTIONS[name]
