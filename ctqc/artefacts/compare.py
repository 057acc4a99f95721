"""Model of ``compare/summary.json`` (``ctqc compare``)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ctqc.artefacts.base import Artefact

# ---------------------------------------------------------------------------- compare/summary.json


class OverTrainings(Artefact):
    """A metric's mean over folds × seeds with its 95 % t-interval (``classify.stats.mean_ci``): the
    per-training display, which does not resample test images."""

    mean: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    sd: float | None = None
    n: int | None = None
    note: str | None = None


class MeanCI(OverTrainings):
    """One metric of one arm: the image-level estimate and its bootstrap interval (``classify.verdicts``),
    or, where no image-level method exists (ROC AUC, older runs), the per-training mean."""

    se: float | None = None  # bootstrap standard error
    seed_sd: float | None = None  # SD of the metric between training seeds
    n_images: int | None = None
    n_replicates: int | None = None  # seeds (holdout) or repeat × seed with pooled folds (k-fold)
    interval: str | None = None  # what the interval includes
    estimand: str | None = None
    over_trainings: OverTrainings | None = None


class OverTrainingsDifference(Artefact):
    """A paired difference over trainings (``classify.stats.paired_difference``)."""

    mean_diff: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    p_value: float | None = None
    test: str | None = None
    n_pairs: int | None = None
    note: str | None = None


class Comparison(Artefact):
    """A paired difference arm − reference in one metric, with its verdict (``classify.verdicts.verdict``)."""

    arm: str
    reference: str
    metric: str
    estimate: float | None = None  # image-level paired difference (fraction)
    mean_diff: float | None = None  # the same number, under the name earlier readers use
    ci_low: float | None = None
    ci_high: float | None = None
    se: float | None = None
    seed_sd: float | None = None
    p_value: float | None = None
    p_adjusted: float | None = None
    adjustment: str | None = None  # fixed sequence (primary) or Holm (secondary)
    role: str | None = None  # "primary" | "secondary"
    mdd: float | None = None  # minimum detectable difference at 80 % power
    verdict: str | None = None
    line: str | None = None  # the printed sentence
    why: str | None = None  # why it is not estimable
    test: str | None = None
    alpha: float | None = None
    estimand: str | None = None
    interval: str | None = None
    n_images: int | None = None
    n_replicates: int | None = None
    n_pairs: int | None = None
    note: str | None = None  # caveat of a small sample
    over_trainings: OverTrainingsDifference | None = None


class PaperRow(Artefact):
    """One row of the paper's Table 1 (fractions)."""

    label: str | None = None
    accuracy: float | None = None
    sensitivity: float | None = None
    specificity: float | None = None


class Sensitivity(Artefact):
    """The headline comparisons again without the degenerate trainings (a sensitivity analysis).

    A replicate (seed, or k-fold repeat × seed) is left out of a comparison when any
    training of either arm in it predicted one class for every validation or test image."""

    excluded: dict[str, int] = Field(default_factory=dict)  # arm → degenerate trainings
    rule: str | None = None
    comparisons: list[Comparison] = Field(default_factory=list)


class DosePoint(Artefact):
    """One point of the dose-response curve (``compare.synthetic_ratios``)."""

    arm: str  # e.g. ``original+synthetic-x0.5``
    ratio: float  # synthetic images per real training image
    n_synthetic: float | None = None  # per fold, mean over folds
    extended: int = 0  # images drawn from the generator beyond the pool, summed over folds
    skipped: str | None = None  # why this ratio was not trained


class CompareSummary(Artefact):
    """``compare/summary.json`` (``ctqc compare``): per-arm means with CIs and paired comparisons."""

    metrics: list[str] = Field(default_factory=list)
    arms: dict[str, dict[str, MeanCI]] = Field(default_factory=dict)  # arm → metric → estimate [CI]
    degenerate_trainings: dict[str, int] = Field(default_factory=dict)  # arm → trainings that predicted one class only
    comparisons: list[Comparison] = Field(default_factory=list)
    skipped: dict[str, str] = Field(default_factory=dict)  # arm → why it was not trained
    paper: dict[str, PaperRow] = Field(default_factory=dict)
    seeds: list[int] | None = None
    folds: list[int] | None = None
    # open-ended: the classifier and compare settings as run (``ctqc.config`` models, dumped)
    config: dict[str, Any] = Field(default_factory=dict)
    ci: str | None = None
    estimand: str | None = None
    primary: list[list[str]] = Field(default_factory=list)  # the pre-specified primary comparisons, in test order
    alpha: float | None = None
    replicates: str | None = None
    paired_by: list[str] = Field(default_factory=list)
    test: str | None = None
    test_over_trainings: str | None = None
    positive_class: str | None = None
    evaluated_on: str | None = None
    notes: list[str] = Field(default_factory=list)
    wall_seconds: float | None = None
    processes: int | None = None
    threads_per_process: int | None = None
    torchrun_processes: int | None = None
    sensitivity: Sensitivity | None = None  # None: no degenerate training
    dose_response: list[DosePoint] = Field(default_factory=list)  # empty: compare.synthetic_ratios not set
