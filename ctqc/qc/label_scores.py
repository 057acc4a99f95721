"""The label strategy's score: does a classifier fitted on real images assign a synthetic image to its class?

Per fold, one multinomial logistic regression on the C2ST's QC features (standardise → PCA of a
pixel block when there is one → logistic regression) is fitted on the *real training images of every
class* of that fold — the reference images of the fold's units; never a validation, test or synthetic
image. Its regularisation C is chosen by an inner stratified cross-validation on log-loss over
:data:`C_GRID` (so the probabilities are not shrunk by a fixed, strong penalty). Each synthetic image
gets p(the class it was generated for); each held-out real image (the fold's validation images, which
took no part in fitting) gets p(its true class), so the filter can report how many genuine images the
label threshold would reject. The score stage computes these once (``label_prob`` in
``qc/scores.csv``); ``ctqc filter --label-threshold`` only compares stored numbers.

The issue allows the downstream architecture at its small preset instead; logistic regression on the
QC features is the choice here: seconds on a CPU, no GPU, and the same features the C2ST sees.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctqc.qc.classifiers import feature_transform

C_GRID = tuple(float(c) for c in np.logspace(-4, 2, 7))  # candidate inverse L2 strengths, chosen by inner CV on log-loss
INNER_SPLITS = 5  # folds of the inner cross-validation (fewer when a class has fewer images)
CLASSIFIER = "multinomial logistic regression on the QC features (standardised, a pixel block PCA-reduced), C by inner 5-fold CV on log-loss"


@dataclass
class LabelFit:
    """One fold's label classifier: the probabilities it gave, and what it was fitted on."""

    synthetic: dict[str, np.ndarray]  # unit label → p(generated class) of each synthetic image (NaN when not fitted)
    heldout: dict[str, np.ndarray]  # unit label → p(true class) of each held-out real image
    info: dict  # JSON-ready: classes, n_train, c, note


def add_label_probabilities(table, units, features: dict, qc, seed: int, results: dict) -> None:
    """Fill the score table's ``label_prob`` (synthetic and held-out rows; ``fit`` rows stay empty) in place,
    and record each unit's fold classifier in ``results[label]["label_classifier"]``."""
    probs = label_probabilities(units, features, qc, seed)
    table["label_prob"] = np.nan
    for unit in units:
        rows = (table["fold"] == unit.fold) & (table["label"] == unit.key)
        for role, values in (("synthetic", probs[unit.label]["synthetic"]), ("heldout", probs[unit.label]["heldout"])):
            table.loc[rows & (table["role"] == role), "label_prob"] = np.round(values.astype(float), 6)
        results[unit.label]["label_classifier"] = probs[unit.label]["info"]


def label_probabilities(units, features: dict, qc, seed: int) -> dict[str, dict]:
    """p(class) of every unit's synthetic and held-out real images, one classifier per fold.

    ``units``: :class:`ctqc.qc.units.QCUnit` (fold, key, label); ``features``: unit label →
    :class:`ctqc.qc.scoring.UnitFeatures`. Returns unit label → {"synthetic", "heldout" (arrays),
    "info" (what the fold's classifier was fitted on)}.
    """
    out = {}
    for fold in sorted({u.fold for u in units}):
        members = [u for u in units if u.fold == fold]
        fit = fit_fold([(u.label, u.key, features[u.label]) for u in members], qc, seed + fold)
        for u in members:
            out[u.label] = {"synthetic": fit.synthetic[u.label], "heldout": fit.heldout[u.label], "info": fit.info}
    return out


def fit_fold(members: list[tuple[str, int, object]], qc, seed: int) -> LabelFit:
    """Fit the label classifier on the reference (real training) images of ``members`` ((label, class key, UnitFeatures)) and score."""
    x = np.vstack([f.reference for _, _, f in members]) if members else np.zeros((0, 0))
    y = np.concatenate([np.full(len(f.reference), key) for _, key, f in members]) if members else np.zeros(0)
    classes, counts = np.unique(y, return_counts=True)
    info = {"classes": [int(c) for c in classes], "n_train": int(len(y)), "c": None, "classifier": CLASSIFIER}
    if len(classes) < 2 or counts.min() < 2:
        why = "only one class has synthetic images in this fold" if len(classes) < 2 else "a class has fewer than 2 training images"
        synthetic = {label: np.full(len(f.synthetic), np.nan) for label, _, f in members}
        heldout = {label: np.full(len(f.heldout), np.nan) for label, _, f in members}
        return LabelFit(synthetic, heldout, {**info, "note": f"label classifier not fitted: {why}; the label strategy rejects nothing here"})
    pixel_columns = members[0][2].pixel_columns
    model = _classifier(qc, seed, len(y), pixel_columns, min(INNER_SPLITS, int(counts.min())))
    model.fit(x, y)
    column = {int(c): i for i, c in enumerate(model.classes_)}
    synthetic = {label: _prob(model, f.synthetic, column[key]) for label, key, f in members}
    heldout = {label: _prob(model, f.heldout, column[key]) for label, key, f in members}
    return LabelFit(synthetic, heldout, {**info, "c": float(next(iter(model.best_params_.values())))})


def _classifier(qc, seed: int, n_train: int, pixel_columns: int | None, n_splits: int):
    """Standardise → PCA of a pixel block (when there is one) → logistic regression, C chosen by inner CV on log-loss.

    The inner search re-fits the whole pipeline (scaling and PCA too) inside each inner fold, on the
    fold's real training images only.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import Pipeline

    transform = feature_transform(seed, n_train - n_train // n_splits, qc.pca_components, pixel_columns)  # fitted in the inner folds' training parts
    pipeline = Pipeline([*transform.steps, ("logisticregression", LogisticRegression(max_iter=2000))])
    inner = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return GridSearchCV(pipeline, {"logisticregression__C": list(C_GRID)}, cv=inner, scoring="neg_log_loss", refit=True, error_score="raise")


def _prob(model, x: np.ndarray, column: int) -> np.ndarray:
    return model.predict_proba(x)[:, column] if len(x) else np.zeros(0)
