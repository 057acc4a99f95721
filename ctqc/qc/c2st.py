"""Classifier two-sample test (C2ST): can a classifier tell synthetic from real?

Global: cross-validated AUC (and balanced accuracy) of a real-vs-synthetic
classifier, with a label-permutation p-value over the whole CV pipeline
(feature scaling/PCA are refitted inside every fold, so nothing leaks).

Per image: an out-of-fold probability p(synthetic) for every image — repeated
K-fold, each image scored only by models that never saw it, averaged over
repeats.

Folds are drawn without looking at the labels (shuffled K-fold, grouped when
groups exist). That makes the permutation test exact *and* cheap: the statistic
is the AUC of the first repeat's folds, each permutation re-fits the classifier
on those same folds, and since scaling and PCA never see labels, each fold's
transform is fitted once and reused by all permutations — only the final
classifier is re-fitted (200 permutations cost seconds, not minutes). The classifier is trained on the natural real/synthetic mix, and
its odds are then divided by the training odds n_syn / n_real, so the score is
the posterior under equal priors: 0.5 means "indistinguishable", whatever the
pool size.

Calibration (so that a threshold of 0.6 means "60 % likely synthetic"): inside
every outer fold the classifier is wrapped in cross-fitted Platt scaling
(scikit-learn ``CalibratedClassifierCV(method="sigmoid", cv=3, ensemble=False)``:
the sigmoid is fitted on 3-fold cross-validated predictions of the fold's training
part, and applied to one model fitted on the whole training part; Platt 1999,
Zadrozny & Elkan 2002), *before* the equal-prior correction, which is exact only
for calibrated probabilities. ``ensemble=False`` because averaging three models
fitted on two thirds each ranked the self-test's medium noise worse (AUROC 0.875
against 0.93). With ``c="auto"``
(the default) the logistic regression's inverse L2 strength C is first chosen by
inner cross-validation on log-loss (a grid over :data:`ctqc.qc.classifiers.C_GRID`, 3 stratified inner
folds, scikit-learn ``LogisticRegression`` fits) on the outer fold's training part, so the
selection never sees the outer fold's test rows (:class:`ctqc.qc.classifiers.TunedCalibratedLogReg`).
Choosing C once per outer fold rather than inside each calibration split costs
one scalar's worth of overlap between the rows that choose C and the rows that
fit the sigmoid, and saves two thirds of the fits.

The permutation test stays exact by choosing the *test statistic's* C by a rule
that does not look at the labels: the permutation statistic is the first
repeat's out-of-fold AUC of a logistic regression at a fixed C (the configured
number, or :data:`ctqc.qc.classifiers.TEST_C` with ``c="auto"``), re-fitted for every permutation on
the same label-free folds and transforms. Selecting C and calibrating are
monotone within a fold and serve the per-image scores, not the global test;
re-running the selection inside each of 200 permutations would cost ~200 fits
of the scoring pipeline.

Follows scikit-learn's conventions: parameters in ``__init__``, validation in
``fit`` (which returns ``self``), learned state in attributes ending in ``_``.
"""

from __future__ import annotations

import numpy as np

from ctqc.qc.classifiers import CLASSIFIERS, TEST_C, make_classifier


def configured_c2st(qc, seed: int, pixel_columns: int | None, n_splits: int | None = None, n_permutations: int | None = None) -> C2ST:
    """The (unfitted) C2ST that ``qc`` (a :class:`ctqc.config.QCConfig`) configures."""
    return C2ST(
        classifier=qc.classifier,
        n_splits=n_splits or qc.n_splits,
        n_repeats=qc.n_repeats,
        n_permutations=qc.n_permutations if n_permutations is None else n_permutations,
        n_components=qc.pca_components or None,
        pca_columns=pixel_columns,
        c=qc.c2st_c,
        random_state=seed,
        n_jobs=qc.n_jobs,
    )


def fit_c2st(real: np.ndarray, synthetic: np.ndarray, qc, seed: int, pixel_columns: int | None, heldout: np.ndarray | None = None) -> C2ST | None:
    """The configured C2ST fitted on ``real`` vs ``synthetic``; None when either set is smaller than 2."""
    n_splits = min(qc.n_splits, len(real), len(synthetic))
    if n_splits < 2:
        return None
    return configured_c2st(qc, seed, pixel_columns, n_splits=n_splits).fit(real, synthetic, heldout=heldout)


def c2st_summary(test: C2ST | None) -> dict:
    """AUC, balanced accuracy and permutation p-value of a fitted C2ST (None entries and a note without one)."""
    if test is None:
        return {"auc": None, "accuracy": None, "p_value": None, "note": "too few images for a C2ST"}
    return {"auc": round(test.auc_, 4), "accuracy": round(test.accuracy_, 4), "p_value": test.p_value_}


def two_sided_p_value(test: C2ST) -> float | None:
    """(1 + #{|AUC_perm − ½| ≥ |AUC − ½|}) / (B + 1) over the fitted test's permutation null, or None without one.

    Small also when the AUC is well *below* 0.5 — an artefact of the comparison (e.g. a set selected
    to look like the images it is compared with), never evidence of realism.
    """
    if not test.n_permutations or getattr(test, "null_aucs_", None) is None:
        return None
    far = np.abs(test.null_aucs_ - 0.5) >= abs(test.permutation_statistic_ - 0.5) - 1e-12
    return float((1 + far.sum()) / (len(test.null_aucs_) + 1))


class C2ST:
    """Real-vs-synthetic two-sample test with per-image out-of-fold scores.

    Parameters
    ----------
    classifier : "logreg" or "forest"
    n_splits, n_repeats : repeated stratified K-fold for the out-of-fold scores
    n_permutations : label permutations for the global p-value (0 = skip)
    n_components : PCA dimensions fitted inside each fold (None = no PCA)
    random_state : seed for splits, permutations and the classifier
    n_jobs : processes for the permutation refits of a forest (results do not depend on it)
    pca_columns : PCA only the first this-many columns (the pixel block); None = all
    c : inverse L2 regularisation strength of the logistic regression, or "auto" (chosen by inner CV
        on log-loss per fold); the permutation statistic uses this number, or :data:`ctqc.qc.classifiers.TEST_C` for "auto"

    Attributes after ``fit``
    ------------------------
    scores_ : (n_real + n_syn,) calibrated, equal-prior p(synthetic) in [0, 1], out of fold
    synthetic_scores_, real_scores_ : the two parts of ``scores_``
    heldout_scores_ : (n_heldout,) p(synthetic) of the ``heldout`` real images given to ``fit``
        (images that took no part in fitting), each scored per repeat by one fold model drawn at
        random and averaged over repeats — distributed like an out-of-fold score; empty without them
    auc_, accuracy_ : cross-validated ROC AUC and balanced accuracy at 0.5
    auc_per_repeat_ : AUC of each repeat
    p_value_ : permutation p-value (1 + #{AUC_perm ≥ AUC}) / (B + 1), or None
    permutation_statistic_, null_aucs_ : the permuted statistic (first repeat's AUC at the test C) and its null
    chosen_c_ : (n_folds × n_repeats,) C chosen by the inner CV (logreg with c="auto"; else empty)
    uninformative_folds_, n_fold_models_ : fold models whose calibration found no signal (a reversed
        Platt map replaced by the prior: their test rows score 0.5), out of all fitted fold models
    """

    def __init__(
        self,
        classifier: str = "logreg",
        n_splits: int = 5,
        n_repeats: int = 3,
        n_permutations: int = 200,
        n_components: int | None = None,
        random_state: int = 0,
        n_jobs: int = 1,
        pca_columns: int | None = None,
        c: float | str = "auto",
    ) -> None:
        self.classifier = classifier
        self.n_splits = n_splits
        self.n_repeats = n_repeats
        self.n_permutations = n_permutations
        self.n_components = n_components
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.pca_columns = pca_columns
        self.c = c

    def fit(self, real: np.ndarray, synthetic: np.ndarray, groups: np.ndarray | None = None, heldout: np.ndarray | None = None) -> C2ST:
        """``real`` (n_real × d) and ``synthetic`` (n_syn × d) feature matrices; optional real-image ``groups``.

        ``heldout`` (n_heldout × d): real images outside the test, each scored by one fold model per
        repeat (``heldout_scores_``); they change nothing else.
        """
        from threadpoolctl import threadpool_limits

        # Thousands of small fits: multi-threaded BLAS costs ~5× more than it gives here.
        with threadpool_limits(1):
            return self._fit(real, synthetic, groups, heldout)

    def _fit(self, real: np.ndarray, synthetic: np.ndarray, groups: np.ndarray | None, heldout: np.ndarray | None = None) -> C2ST:
        from sklearn.metrics import balanced_accuracy_score, roc_auc_score

        real, synthetic = np.asarray(real, dtype=np.float64), np.asarray(synthetic, dtype=np.float64)
        if real.ndim != 2 or synthetic.ndim != 2 or real.shape[1] != synthetic.shape[1]:
            raise ValueError(f"expected two 2-D feature matrices with equal widths, got {real.shape} and {synthetic.shape}")
        if min(len(real), len(synthetic)) < self.n_splits:
            raise ValueError(f"C2ST needs at least n_splits={self.n_splits} real and synthetic images (got {len(real)} and {len(synthetic)})")
        if self.classifier not in CLASSIFIERS:
            raise ValueError(f"unknown C2ST classifier {self.classifier!r}; choose one of {CLASSIFIERS}")
        x = np.vstack([real, synthetic])
        y = np.r_[np.zeros(len(real), int), np.ones(len(synthetic), int)]
        all_groups = None
        if groups is not None:  # every synthetic image is its own group
            all_groups = np.r_[np.asarray(groups, dtype=str), np.array([f"__syn{i}" for i in range(len(synthetic))])]
        extra = np.zeros((0, x.shape[1])) if heldout is None else np.asarray(heldout, dtype=np.float64).reshape(-1, x.shape[1])
        self._chosen_c, self._uninformative = [], []
        first = self._prepare_folds(x, y, all_groups, self.random_state)  # repeat 0's folds, reused by the permutation test
        repeats = [self._oof_scores(x, y, all_groups, self.random_state + r, first if r == 0 else None, extra) for r in range(self.n_repeats)]
        per_repeat = np.stack([oof for oof, _ in repeats])
        self.heldout_scores_ = np.mean([held for _, held in repeats], axis=0) if len(extra) else np.zeros(0)
        self.scores_ = per_repeat.mean(axis=0)
        self.real_scores_, self.synthetic_scores_ = self.scores_[: len(real)], self.scores_[len(real) :]
        self.auc_per_repeat_ = np.array([roc_auc_score(y, s) for s in per_repeat])
        self.auc_ = float(roc_auc_score(y, self.scores_))
        self.accuracy_ = float(balanced_accuracy_score(y, self.scores_ > 0.5))
        self.chosen_c_ = np.array(self._chosen_c)
        self.uninformative_folds_ = int(sum(self._uninformative))
        self.n_fold_models_ = len(self._uninformative)
        self.p_value_ = self._permutation_p_value(x, y, first) if self.n_permutations else None
        return self

    def _oof_scores(self, x: np.ndarray, y: np.ndarray, groups, seed: int, folds: list | None = None, extra: np.ndarray | None = None):
        """Out-of-fold prior-corrected p(synthetic), and the ``extra`` rows' scores by one fold model each.

        ``folds`` = prepared (train, test, xtr, xte, head, transform) to reuse. Each extra row is
        scored by one fold model, assigned at random without looking at labels, so that its score
        is distributed like a fitted image's out-of-fold score (one model that never saw it) —
        what a conformal threshold over them needs. Returns (scores (n,), extra scores (n_extra,)).
        """
        from sklearn.base import clone

        scores = np.full(len(y), np.nan)
        extra = np.zeros((0, x.shape[1])) if extra is None else extra
        extra_scores = np.full(len(extra), 0.5)
        prepared = folds or self._prepare_folds(x, y, groups, seed)
        owner = np.random.default_rng(seed + 20_000).permutation(np.arange(len(extra)) % len(prepared))
        for k, (train, test, x_train, x_test, head, transform) in enumerate(prepared):
            if np.unique(y[train]).size < 2:
                # Only possible for a permuted labelling of few images of one kind: a training part of one class
                # carries no information, so its test rows get the uninformative score (keeps the permutation test exact).
                scores[test] = 0.5
                continue
            model = clone(head).fit(x_train, y[train])
            if hasattr(model, "C_") and self.c == "auto":
                self._chosen_c.append(model.C_)
            self._uninformative.append(bool(getattr(model, "uninformative_", False)))
            scores[test] = _equal_prior(model.predict_proba(x_test)[:, 1], y[train].mean())
            mine = owner == k
            if mine.any():
                extra_scores[mine] = _equal_prior(model.predict_proba(transform.transform(extra[mine]))[:, 1], y[train].mean())
        assert not np.isnan(scores).any(), "every image must be scored out of fold"
        return scores, extra_scores

    def _prepare_folds(self, x: np.ndarray, y: np.ndarray, groups, seed: int) -> list:
        """Per fold: indices, features after the label-free transform (scaling, PCA) fitted on the training rows, and the unfitted classifier."""
        prepared = []
        for train, test in self._folds(y, groups, seed):
            pipeline = make_classifier(self.classifier, seed, self._components(len(train), self.pca_columns or x.shape[1]), self.pca_columns, self.c)
            transform, head = pipeline[:-1], pipeline[-1]
            x_train = transform.fit_transform(x[train])
            prepared.append((train, test, x_train, transform.transform(x[test]), head, transform))
        return prepared

    def _folds(self, y: np.ndarray, groups, seed: int) -> list:
        """Label-independent shuffled (group) K-fold; stratified only if a training part would miss a class."""
        from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold

        state = seed % 2**32
        if groups is None:
            folds = list(KFold(self.n_splits, shuffle=True, random_state=state).split(y))
        else:
            folds = list(GroupKFold(self.n_splits, shuffle=True, random_state=state).split(y, y, groups))
        if all(len(np.unique(y[train])) == 2 for train, _ in folds):
            return folds
        # Very few images of one kind: fall back to stratified folds (the permutation test is then approximate).
        if groups is None:
            return list(StratifiedKFold(self.n_splits, shuffle=True, random_state=state).split(y, y))
        return list(StratifiedGroupKFold(self.n_splits, shuffle=True, random_state=state).split(y, y, groups))

    @property
    def test_c(self) -> float:
        """The permutation statistic's C: the configured number, or :data:`ctqc.qc.classifiers.TEST_C` (label-free) for "auto"."""
        return TEST_C if self.c == "auto" else float(self.c)

    def _components(self, n_train: int, n_features: int) -> int | None:
        if not self.n_components:
            return None
        return min(self.n_components, n_train - 1, n_features)

    def _permutation_p_value(self, x: np.ndarray, y: np.ndarray, folds: list) -> float:
        """Re-fit the classifier on permuted labels over the first repeat's folds; the statistic is that repeat's AUC.

        Logistic regression fits the observed labelling and all permutations at once
        (:func:`_batched_logreg_aucs`, solved to the optimum in one batched loop), so the
        observed statistic and its null come from the same solver; a forest re-fits
        per permutation in ``n_jobs`` processes.
        """
        rng = np.random.default_rng(self.random_state + 10_000)
        permutations = [rng.permutation(y) for _ in range(self.n_permutations)]
        if self.classifier == "logreg":
            aucs = _batched_logreg_aucs(np.stack([y, *permutations], axis=1), folds, self.test_c)
            observed, self.null_aucs_ = float(aucs[0]), aucs[1:]
        else:
            from joblib import Parallel, delayed

            jobs = max(1, self.n_jobs)
            chunks = [permutations[k::jobs] for k in range(jobs)]
            results = Parallel(n_jobs=jobs)(delayed(_permuted_aucs)(self, x, chunk, folds) for chunk in chunks)
            self.null_aucs_ = np.array([results[b % jobs][b // jobs] for b in range(self.n_permutations)])
            observed = float(self.auc_per_repeat_[0])
        self.permutation_statistic_ = observed
        return float((1 + np.sum(self.null_aucs_ >= observed)) / (self.n_permutations + 1))


def _permuted_aucs(test: C2ST, x: np.ndarray, permutations: list, folds: list) -> list[float]:
    """CV AUC for each permuted label vector on the prepared folds (module level, so joblib can pickle it)."""
    from sklearn.metrics import roc_auc_score
    from threadpoolctl import threadpool_limits

    with threadpool_limits(1):
        return [float(roc_auc_score(y, test._oof_scores(x, y, None, test.random_state, folds)[0])) for y in permutations]


def _batched_logreg_aucs(labels: np.ndarray, folds: list, c: float) -> np.ndarray:
    """Cross-validated AUC of an L2 logistic regression for each column of ``labels`` (n × B), all at once.

    Per fold, fits B models min_w ½‖w‖² + C Σ logloss (intercept unpenalised:
    scikit-learn's ``LogisticRegression(C=c)`` objective) on the fold's transformed
    training rows together (:func:`_mm_logreg`, to the optimum), scores the held-out
    rows with the same prior correction as :meth:`C2ST._oof_scores`, and returns the
    AUC of every column's out-of-fold scores. A training part holding one class only
    scores its held-out rows 0.5, as there.
    """
    n, n_labellings = labels.shape
    scores = np.full((n, n_labellings), np.nan)
    for train, test, x_train, x_test, *_ in folds:
        y = labels[train].astype(np.float64)
        prob = _mm_logreg(np.asarray(x_train, np.float64), y, np.asarray(x_test, np.float64), c)
        prior = y.mean(axis=0)
        one_class = (prior == 0) | (prior == 1)
        scores[test] = np.where(one_class, 0.5, _equal_prior(prob, np.where(one_class, 0.5, prior)))
    assert not np.isnan(scores).any(), "every image must be scored out of fold"
    return _column_aucs(labels, scores)


def _equal_prior(p: np.ndarray, train_prior) -> np.ndarray:
    """p(synthetic) under equal priors: the model's odds divided by its training odds (0.5 = indistinguishable)."""
    p = np.clip(p, 1e-6, 1 - 1e-6)
    odds = p / (1 - p) / (np.asarray(train_prior) / (1 - np.asarray(train_prior)))
    return odds / (1 + odds)


def _mm_logreg(x: np.ndarray, y: np.ndarray, x_test: np.ndarray, c: float, tol: float = 1e-9, max_iter: int = 1000) -> np.ndarray:
    """p(1 | x_test) of B L2-regularised logistic regressions, one per column of y (n × B), fitted together.

    Böhning's bound: the logistic loss's Hessian never exceeds ¼ XᵀX, so the steps
    w ← w − H₀⁻¹ ∇ with the fixed H₀ = C·¼·XᵀX + R (R: the ridge, 0 for the intercept)
    decrease the objective monotonically to its unique optimum (majorise–minimise).
    H₀ is shared by all B labellings and factorised once, so each step costs two
    n×d×B matrix products — the whole permutation test in one loop.
    """
    import torch

    xt = torch.from_numpy(np.hstack([x, np.ones((len(x), 1))]))  # last column: the intercept
    yt = torch.from_numpy(y)
    d = xt.shape[1]
    ridge = torch.ones(d, dtype=torch.float64)
    ridge[-1] = 0.0  # the intercept is not penalised
    bound = 0.25 * c * (xt.T @ xt) + torch.diag(ridge)
    bound[-1, -1] += 1e-12  # n ≥ 1 rows make it positive definite already; guard the degenerate case
    factor = torch.linalg.cholesky(bound)
    w = torch.zeros(d, y.shape[1], dtype=torch.float64)
    for _ in range(max_iter):
        grad = c * (xt.T @ (torch.sigmoid(xt @ w) - yt)) + ridge[:, None] * w
        step = torch.cholesky_solve(grad, factor)
        w -= step
        if step.abs().max() < tol:
            break
    xs = torch.from_numpy(np.hstack([x_test, np.ones((len(x_test), 1))]))
    return torch.sigmoid(xs @ w).numpy()


def _column_aucs(labels: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """ROC AUC of each column of ``scores`` against the same column of ``labels`` (Mann–Whitney, ties averaged)."""
    from scipy.stats import rankdata

    ranks = rankdata(scores, axis=0)
    positives = labels.sum(axis=0)
    negatives = len(labels) - positives
    return (np.sum(ranks * labels, axis=0) - positives * (positives + 1) / 2) / (positives * negatives)
