"""Models of the QC files: ``qc/scoring.json``, ``filter/filter.json``, ``qc/metrics.json`` (``qc/selftest.json``: :mod:`ctqc.artefacts.selftest`)."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import Field

from ctqc.artefacts.base import Artefact
from ctqc.pretrained import CMMD_EXTRACTOR


class C2STResult(Artefact):
    """A classifier two-sample test's global result (``ctqc.qc.c2st.c2st_summary``)."""

    auc: float | None = Field(None, ge=0, le=1)
    accuracy: float | None = Field(None, ge=0, le=1)  # balanced accuracy at p(synthetic) = 0.5
    p_value: float | None = Field(None, ge=0, le=1)  # permutation p-value; None when not run
    # (1 + #{|AUC_perm − ½| ≥ |AUC − ½|}) / (B + 1): also small for an AUC well *below* 0.5, an artefact of
    # the comparison, never a success (the after-filter check reports it; the score stage does not)
    p_value_two_sided: float | None = Field(None, ge=0, le=1)
    n_real: int | None = None
    n_synthetic: int | None = None
    note: str | None = None


class FreshPool(Artefact):
    """Synthetic images the filter never selects from, scored by fitted models only (the frozen filter's check)."""

    source: str | None = None  # "generator" (new draws from the fold's generator), "split half" (half of the pool held back), None
    n: int = 0


class LabelClassifier(Artefact):
    """The label strategy's classifier of one fold (``ctqc.qc.label_scores``), fitted on its real training images."""

    classes: list[int]  # class keys it tells apart
    n_train: int  # real training images of those classes
    c: float | None = None  # inverse L2 strength chosen by inner CV on log-loss; None when not fitted
    classifier: str
    note: str | None = None  # why it was not fitted


class MMDResult(Artefact):
    """The kernel two-sample test's global result (``ctqc.qc.mmd_two_sample.mmd_summary``): unbiased MMD², permutation p-value."""

    mmd2: float | None = None  # unbiased MMD² (Gretton et al. 2012); ≈ 0 (may be < 0) when the sets do not differ
    p_value: float | None = Field(None, ge=0, le=1)  # (1 + #{MMD²_perm ≥ MMD²}) / (B + 1)
    bandwidth: float | None = None  # σ of the Gaussian kernel (median heuristic), in standardised-feature units
    n_permutations: int | None = None
    kernel: str | None = None
    n_real: int | None = None
    n_synthetic: int | None = None
    note: str | None = None


class UnitScoring(Artefact):
    """The scoring step's results for one fold × class."""

    fold: int
    class_: str = Field(alias="class")
    label: int
    n_synthetic: int
    n_reference: int  # real training images the C2ST was fitted against (role ``fit``)
    n_heldout: int  # held-out real images, each scored by one fold model per repeat (role ``heldout``)
    c2st: C2STResult
    # the logistic regression's C: one per outer fold model when chosen by inner CV (qc.c2st_c: auto), else the fixed number
    c2st_c: float | list[float] | None = None
    c2st_uninformative_folds: list[int] | None = None  # [fold models whose calibration found no signal (scores 0.5), fold models]
    copy_threshold: float | None  # 1 - correlation below which a synthetic image counts as a copy (from the training images alone)
    fresh: FreshPool | None = None  # the frozen filter's fresh images (role ``fresh`` in qc/scores.csv)
    copy_heldout_flagged: list[int] | None = None  # [flagged, n] of the held-out real images: the threshold's false-flag check
    notes: list[str] = Field(default_factory=list)  # e.g. an embedding skipped for too few images
    label_classifier: LabelClassifier | None = None  # the fold's label classifier (label_prob in qc/scores.csv)
    mmd: MMDResult | None = None  # the non-linear global test on the C2ST's features (absent in older files)
    n_duplicates: int | None = None  # pool images that repeat an earlier one (qc.dedup; None: not checked)
    dedup_threshold: float | None = None  # the pixel correlation at or above which two pool images are duplicates


class Scoring(Artefact):
    """``qc/scoring.json``: what the scoring step fitted, per unit (``fold<k>/<class>``)."""

    features: list[str]
    classifier: str
    fitted_on: str
    units: dict[str, UnitScoring]


class ReliabilityBin(Artefact):
    """One bin of a reliability curve (:func:`ctqc.qc.calibration.reliability`)."""

    lower: float = Field(ge=0, le=1)
    upper: float = Field(ge=0, le=1)
    n: int = Field(ge=0)  # images in the bin
    mean_score: float = Field(ge=0, le=1)  # weighted mean p(synthetic) in the bin
    observed: float = Field(ge=0, le=1)  # weighted share of synthetic images (real images weighted n_synthetic / n_real)


class Calibration(Artefact):
    """How far a unit's stored p(synthetic) is from calibrated: out-of-fold scores of its ``fit`` and synthetic rows."""

    ece: float = Field(ge=0, le=1)  # expected calibration error under equal priors (binned, weighted mean |score − observed|)
    bins: list[ReliabilityBin]
    n_real: int = Field(ge=0)
    n_synthetic: int = Field(ge=0)
    score: str  # what the scores are, e.g. not calibrated (fixed C, equal-prior correction only)


class RealRejection(Artefact):
    """The share of genuine images a unit's threshold rejects, from its held-out real images (the calibration set)."""

    n: int = Field(ge=0)  # held-out real images with a score (role ``heldout`` in qc/scores.csv)
    rate: float | None = Field(None, ge=0, le=1)  # share of them above the threshold
    ci: list[float] | None = None  # 95 % Wilson interval of ``rate``
    expected: float | None = Field(None, ge=0, le=1)  # expected share of genuine images rejected (``basis`` says how)
    guarantee: float | None = Field(None, gt=0, lt=1)  # split conformal: expected share ≤ this α (``--max-real-rejection``)
    basis: str | None = None


class Diversity(Artefact):
    """Density and coverage (Naeem et al. 2020) of the pool, the kept images and same-size random subsets of the pool."""

    k: int  # nearest neighbours that set each real image's ball
    n_real: int  # the reference (training) images whose balls are counted
    draws: int = 20  # random subsets averaged
    density_before: float = Field(ge=0)
    coverage_before: float = Field(ge=0, le=1)
    density_kept: float = Field(ge=0)
    coverage_kept: float = Field(ge=0, le=1)
    density_random: float = Field(ge=0)  # mean over ``draws`` random subsets of the kept set's size
    coverage_random: float = Field(ge=0, le=1)
    warning: str | None = None  # the kept coverage is > 0.1 below the random subsets'
    note: str | None = None  # the check cannot warn: the random subsets' coverage is below that margin (too few kept)


class FrozenCheck(Artefact):
    """The frozen filter on fresh synthetic images (:func:`ctqc.qc.scoring.frozen_check`): the honest after-filter check."""

    source: str | None = None  # "generator" or "split half" (see FreshPool)
    n: int  # fresh images
    kept: int  # of them kept by the same models, threshold and copy rule
    c2st_after: C2STResult  # kept fresh images vs the fold's held-out real images, two-sided
    diversity_vs_heldout: Diversity | None = None  # density/coverage of the fresh pool / kept / random subsets vs the held-out images


class FilterUnit(Artefact):
    """The filter's decision for one fold × class."""

    n_synthetic: int
    kept: int
    rejected_c2st: int
    rejected_copy: int
    rejected_label: int = 0  # the default strategy is label or both: below the label threshold
    rejected_duplicate: int = 0  # repeats of an earlier pool image (reason ``duplicate``)
    c2st_before: C2STResult
    mmd_before: MMDResult | None = None  # the kernel MMD test of the pool vs the training images (score stage)
    c2st_after: C2STResult  # a fresh C2ST of the kept images vs the fold's held-out real images (two-sided p too)
    copy_threshold: float | None
    threshold: float | None = Field(None, ge=0, le=1)  # the p(synthetic) threshold applied (None: nothing rejected as c2st)
    real_rejection: RealRejection | None = None  # genuine images the threshold would reject
    calibration: Calibration | None = None  # of the stored scores, as they are
    diversity: Diversity | None = None  # on the C2ST features (standardised; a pixel block PCA-reduced)
    frozen: FrozenCheck | None = None  # the frozen filter on fresh images: the evidence; c2st_after grades the selection itself
    notes: list[str] = Field(default_factory=list)  # e.g. an embedding skipped for too few images


class StrategyUnit(Artefact):
    """What one filter strategy kept in one fold × class (``filter/<strategy>/kept.csv``)."""

    n_synthetic: int
    kept: int
    rejected_c2st: int = 0  # rule c2st: p(synthetic) above the unit's threshold (realism, both)
    rejected_label: int = 0  # rule label: p(generated class) below the label threshold (label, both)
    rejected_copy: int = 0  # flagged copies (every strategy, with memorisation checks on)
    real_rejection: RealRejection | None = None  # held-out real images the strategy's score rules would reject
    notes: list[str] = Field(default_factory=list)  # e.g. the label classifier could not be fitted


class StrategySummary(Artefact):
    """One filter strategy's decisions (``ctqc.qc.strategies``)."""

    description: str
    kept: int
    rejected: int
    per_class: dict[str, StrategyUnit]


class FilterSummary(Artefact):
    """``filter/filter.json``: the operating point and what it kept (``per_class``: the default strategy, ``strategy``)."""

    c2st_threshold: float | None = Field(None, gt=0, lt=1)  # mode "threshold": the fixed threshold; None in mode "conformal"
    mode: Literal["threshold", "conformal"] = "threshold"  # --c2st-threshold, or --max-real-rejection (split conformal)
    max_real_rejection: float | None = Field(None, gt=0, lt=1)  # α of mode "conformal"
    after_check: str | None = None  # what the after-filter C2ST compared, in words
    frozen_check: str | None = None  # what the frozen filter's check compared, in words
    memorisation: bool
    features: list[str]
    classifier: str
    kept: int
    rejected: int
    per_class: dict[str, FilterUnit]
    fitted_on: str
    real: str | None = None  # bring-your-own folders only
    synthetic: str | None = None
    strategy: str = "realism"  # the default strategy: kept.csv, per_class and the after-check/diversity views are its
    label_threshold: float | None = Field(None, gt=0, lt=1)  # label/both: keep images with p(generated class) ≥ this
    strategies: dict[str, StrategySummary] = Field(default_factory=dict)  # every strategy that ran, the default first

    def operating_point(self) -> str:
        """The operating point in words: ``p(synthetic) > 0.6`` or the conformal rule."""
        if self.mode == "conformal" and self.max_real_rejection is not None:
            return f"split conformal, at most {self.max_real_rejection:g} of genuine images rejected (threshold per fold and class)"
        return "–" if self.c2st_threshold is None else f"p(synthetic) > {self.c2st_threshold:g}"


# ---------------------------------------------------------------------------- qc/metrics.json
# Every key is optional: a scope with too few images, or a metric the QC could not compute, is
# simply absent (or null), and readers show "–". The writer is ``ctqc.stages.qc``.

DISTRIBUTION_METRICS = ("fid", "kid", "precision", "recall", "rbf_mmd", "alpha_precision", "beta_recall", "authenticity")
LOWER_IS_BETTER = ("fid", "kid", "rbf_mmd")  # distances; the others are fractions where higher = closer to ideal


def rbf_mmd_label(extractor: str | None) -> str:
    """The Gaussian-kernel MMD's name: "CMMD" on its authors' CLIP ViT-L/14-336 embedding, "RBF-MMD (<extractor>)" elsewhere."""
    if extractor == CMMD_EXTRACTOR:
        return "CMMD"
    return f"RBF-MMD ({extractor})" if extractor else "RBF-MMD"


GAP_METRICS = ("fid", "kid")  # distances (lower = closer): the metrics whose gap to the floor is judged
GAP_ABOVE, GAP_WITHIN, GAP_BELOW, GAP_NOT_ESTIMABLE = "above the floor", "within the floor", "below the floor (copying signal)", "not estimable"
GapVerdict = Literal["above the floor", "within the floor", "below the floor (copying signal)", "not estimable"]


def gap_verdict(low: float | None, high: float | None) -> GapVerdict:
    """The one rule that judges a distance's size-matched gap to its real-vs-real floor.

    ``low``, ``high``: the 95 % interval of metric(synthetic) − metric(held-out real), both against
    the same reference images at the same n, for a distance (FID, KID: lower = closer). Above 0:
    the synthetic images are further from the training images than real images are; below 0:
    closer than unseen real images — a copying signal; an interval holding 0: no evidence either
    way; a missing or non-finite bound (or low > high): not estimable. Returns one of the four
    ``GAP_*`` strings. It lives with the model so that the writer (``ctqc.qc.gap``) and the
    readers (the report may not import ``ctqc.qc``) share it.
    """
    if low is None or high is None or not (math.isfinite(low) and math.isfinite(high)) or low > high:
        return GAP_NOT_ESTIMABLE
    if low > 0:
        return GAP_ABOVE
    if high < 0:
        return GAP_BELOW
    return GAP_WITHIN


class Gap(Artefact):
    """metric(synthetic) − metric(held-out real) at the same n, bootstrapped with a shared reference resample (``ctqc.qc.gap``)."""

    estimate: float | None = None  # ``synthetic`` − ``floor``, in the metric's units
    ci_low: float | None = None  # 95 % bootstrap interval of the difference (basic interval; ``interval`` says how)
    ci_high: float | None = None
    synthetic: float | None = None  # the metric at ``n`` images: mean over random synthetic subsets of n
    floor: float | None = None  # the held-out real images' value at the same n
    n: int | None = Field(None, ge=2)  # images per side: the smaller of the held-out set and the synthetic pool
    n_bootstrap: int | None = Field(None, ge=0)  # replicates drawn (those with a defined value form the interval)
    draws: int | None = Field(None, ge=1)  # random subsets averaged on a side larger than n
    verdict: GapVerdict = GAP_NOT_ESTIMABLE  # :func:`gap_verdict` of the interval
    interval: str | None = None  # what the interval accounts for, in words


class Estimate(Artefact):
    """One distribution metric (FID, KID, precision or recall) of one scope, next to its real-vs-real floor."""

    value: float | None = None  # synthetic vs reference (training) images
    ci_low: float | None = None  # 95 % bootstrap interval of ``value``
    ci_high: float | None = None
    std: float | None = None  # KID only: torch-fidelity's spread over subsets
    matched: float | None = None  # ``value`` at the floor's sample size (mean over random synthetic subsets)
    floor: float | None = None  # held-out real vs the same reference images
    floor_ci_low: float | None = None
    floor_ci_high: float | None = None
    gap: Gap | None = None  # FID and KID only; absent in files written before the size-matched gap


class ScopeMetrics(Artefact):
    """FID, KID, precision/recall of one scope (a class, ``fold<k>/<class>`` or ``all``)."""

    n_real: int | None = None  # reference images
    n_synthetic: int | None = None
    n_floor: int | None = None  # held-out real images behind the floor
    fid: Estimate | None = None
    kid: Estimate | None = None
    precision: Estimate | None = None
    recall: Estimate | None = None
    rbf_mmd: Estimate | None = None  # CMMD on clip-vit-l-14-336px, "RBF-MMD (<extractor>)" elsewhere (ctqc.qc.mmd), ×1000
    alpha_precision: Estimate | None = None  # IPα of Alaa et al. 2022 (ctqc.qc.fidelity_metrics), 0–1
    beta_recall: Estimate | None = None  # IRβ, 0–1
    authenticity: Estimate | None = None  # share of synthetic images that are no likely copy, 0–1

    def estimates(self) -> dict[str, Estimate]:
        """The metrics present, in the order of :data:`DISTRIBUTION_METRICS`."""
        return {name: e for name in DISTRIBUTION_METRICS if (e := getattr(self, name)) is not None}


class MemorisationPair(Artefact):
    """A synthetic image and its nearest training image (pixel correlation, flips and 1-px shifts allowed)."""

    sample_id: str | None = None
    file: str | None = None  # name in ``samples/``
    train_id: str | None = None
    correlation: float | None = None
    ratio: float | None = None  # its distance / the typical training-to-training distance: well below 1 is suspicious
    flagged: bool | None = None  # by the copy check


class ScopeMemorisation(Artefact):
    """The copy check and the data-copying statistic C_T of one scope."""

    c_t: float | None = None  # Meehan et al. 2020: strongly negative = copying
    n_flagged: int | None = None
    copy_threshold: float | None = None  # set by the training images' leave-one-out distances
    heldout_flagged: list[int] | None = None  # [flagged, n] held-out real images: the threshold's false-flag check
    pairs: list[MemorisationPair] = Field(default_factory=list)  # the nearest pairs, lowest ratio first
    note: str | None = None  # why C_T is missing


class AfterFilter(Artefact):
    """The distribution metrics of the images the filter kept."""

    kept: dict[str, int] = Field(default_factory=dict)  # scope → images kept
    against: str | None = None  # what the kept images were measured against (older runs: the training images)
    scopes: dict[str, ScopeMetrics] = Field(default_factory=dict)  # the kept images
    pool_scopes: dict[str, ScopeMetrics] = Field(default_factory=dict)  # the whole pool, measured the same way (before)
    diversity: dict[str, Diversity] = Field(default_factory=dict)  # density/coverage on the metric features, vs the training images


class ExtractorSets(Artefact):
    """One extractor's metrics of the whole pool, the filter's kept set and a same-size random subset of the pool."""

    pool: dict[str, ScopeMetrics] = Field(default_factory=dict)
    kept: dict[str, ScopeMetrics] | None = None  # only once ``ctqc filter`` has run
    random: dict[str, ScopeMetrics] | None = None


class QCMetrics(Artefact):
    """``qc/metrics.json``: how close, how diverse, how copied (``ctqc qc``)."""

    extractor: str | None = None  # the headline features the metrics (``scopes``) are computed on
    extractors: list[str] = Field(default_factory=list)  # every extractor the metrics were computed on, headline first
    by_extractor: dict[str, ExtractorSets] | None = None  # with two or more extractors: each one's pool / kept / random
    n_bootstrap: int | None = None
    c2st_features: list[str] = Field(default_factory=list)
    c2st_classifier: str | None = None
    reference: str | None = None  # what the synthetic images are compared with, in words
    warnings: list[str] = Field(default_factory=list)
    scopes: dict[str, ScopeMetrics] = Field(default_factory=dict)
    c2st: dict[str, C2STResult] = Field(default_factory=dict)  # scope → the stored C2ST result
    memorisation: dict[str, ScopeMemorisation] = Field(default_factory=dict)
    after_filter: AfterFilter | None = None  # only once ``ctqc filter`` has run
    # open-ended: ``fold<k>`` → what the domain encoder's sidecar records (weights file, sizes, hash …)
    domain_encoders: dict[str, dict[str, Any]] | None = None
    real: str | None = None  # bring-your-own folders only
    synthetic: str | None = None
