"""Typed artefacts: the JSON files that stages write and ``reports`` reads, one pydantic model each.

Writer and reader share these models: a stage builds the model and writes it with
:func:`write_artefact` (the one JSON encoder, :func:`ctqc.atomic.json_text`: NaN → null);
a reader validates once with :func:`read_artefact` and then trusts the fields.
Models allow extra keys (``extra="allow"``) only where a file carries open-ended
content; the fields every reader relies on are declared.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ctqc import atomic
from ctqc.errors import UserError

Model = TypeVar("Model", bound=BaseModel)


class Artefact(BaseModel):
    """Base of every artefact model: unknown keys are refused, so a typo never passes silently."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class C2STResult(Artefact):
    """A classifier two-sample test's global result (``ctqc.qc.c2st.c2st_summary``)."""

    auc: float | None = Field(None, ge=0, le=1)
    accuracy: float | None = Field(None, ge=0, le=1)  # balanced accuracy at p(synthetic) = 0.5
    p_value: float | None = Field(None, ge=0, le=1)  # permutation p-value; None when not run
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
    n_heldout: int  # held-out real images scored by every fold model (role ``heldout``)
    c2st: C2STResult
    copy_threshold: float | None  # 1 - correlation below which a synthetic image counts as a copy
    notes: list[str] = Field(default_factory=list)  # e.g. an embedding skipped for too few images


class Scoring(Artefact):
    """``qc/scoring.json``: what the scoring step fitted, per unit (``fold<k>/<class>``)."""

    features: list[str]
    classifier: str
    fitted_on: str
    units: dict[str, UnitScoring]


class FilterUnit(Artefact):
    """The filter's decision for one fold × class."""

    n_synthetic: int
    kept: int
    rejected_c2st: int
    rejected_copy: int
    c2st_before: C2STResult
    c2st_after: C2STResult  # a fresh C2ST of the kept images vs the same reference images
    copy_threshold: float | None
    notes: list[str] = Field(default_factory=list)  # e.g. an embedding skipped for too few images


class FilterSummary(Artefact):
    """``filter/filter.json``: the operating point and what it kept."""

    c2st_threshold: float = Field(gt=0, lt=1)
    memorisation: bool
    features: list[str]
    classifier: str
    kept: int
    rejected: int
    per_class: dict[str, FilterUnit]
    fitted_on: str
    real: str | None = None  # bring-your-own folders only
    synthetic: str | None = None


# ---------------------------------------------------------------------------- qc/metrics.json
# Every key is optional: a scope with too few images, or a metric the QC could not compute, is
# simply absent (or null), and readers show "–". The writer is ``ctqc.stages.qc``.

DISTRIBUTION_METRICS = ("fid", "kid", "precision", "recall")


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


class ScopeMetrics(Artefact):
    """FID, KID, precision/recall of one scope (a class, ``fold<k>/<class>`` or ``all``)."""

    n_real: int | None = None  # reference images
    n_synthetic: int | None = None
    n_floor: int | None = None  # held-out real images behind the floor
    fid: Estimate | None = None
    kid: Estimate | None = None
    precision: Estimate | None = None
    recall: Estimate | None = None

    def estimates(self) -> dict[str, Estimate]:
        """The metrics present, in the order fid, kid, precision, recall."""
        return {name: e for name in DISTRIBUTION_METRICS if (e := getattr(self, name)) is not None}


class MemorisationPair(Artefact):
    """A synthetic image and its nearest training image (pixel correlation, flips and 1-px shifts allowed)."""

    sample_id: str | None = None
    file: str | None = None  # name in ``samples/``
    train_id: str | None = None
    correlation: float | None = None
    ratio: float | None = None  # its distance / the typical held-out distance: well below 1 is suspicious
    flagged: bool | None = None  # by the copy check


class ScopeMemorisation(Artefact):
    """The copy check and the data-copying statistic C_T of one scope."""

    c_t: float | None = None  # Meehan et al. 2020: strongly negative = copying
    n_flagged: int | None = None
    copy_threshold: float | None = None
    pairs: list[MemorisationPair] = Field(default_factory=list)  # the nearest pairs, lowest ratio first
    note: str | None = None  # why C_T is missing


class AfterFilter(Artefact):
    """The distribution metrics of the images the filter kept."""

    kept: dict[str, int] = Field(default_factory=dict)  # scope → images kept
    scopes: dict[str, ScopeMetrics] = Field(default_factory=dict)


class QCMetrics(Artefact):
    """``qc/metrics.json``: how close, how diverse, how copied (``ctqc qc``)."""

    extractor: str | None = None  # the features FID/KID/precision/recall are computed on
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


# ---------------------------------------------------------------------------- qc/selftest.json


class NullCheck(Artefact):
    """(a) real vs real: the C2ST must not see a difference."""

    auc: list[float | None] = Field(default_factory=list)  # one per random split
    p_values: list[float | None] = Field(default_factory=list)
    discarded_fraction: list[float | None] = Field(default_factory=list)  # of the "synthetic" half, at the threshold
    passed: bool | None = Field(None, alias="pass")


class IntensityShiftUnits(Artefact):
    brightness_spread: float | None = None  # inter-image SD of the mean foreground brightness
    strengths: dict[str, float] = Field(default_factory=dict)  # strength → shift, in brightness spreads


class PlantedCheck(Artefact):
    """(b) planted artefacts: the per-image scores must rank defective images first."""

    auroc: dict[str, dict[str, float | None]] = Field(default_factory=dict)  # artefact → strength → AUROC
    intensity_shift_units: IntensityShiftUnits | None = None
    rising_with_strength: bool | None = None
    medium_at_least_0_9: bool | None = Field(None, alias="medium_at_least_0.9")
    passed: bool | None = Field(None, alias="pass")


class CopyCheck(Artefact):
    """(c) planted copies: flagged; genuine held-out images: not."""

    flagged: dict[str, float | None] = Field(default_factory=dict)  # kind of copy → fraction flagged
    genuine_flagged: float | None = None
    passed: bool | None = Field(None, alias="pass")


class SelftestData(Artefact):
    location: str | None = None
    fingerprint: str | None = None
    images_used: str | None = None


class Selftest(Artefact):
    """``qc/selftest.json`` (``ctqc selftest``): the QC proved on real images with known answers."""

    n_images: int | None = None
    features: list[str] = Field(default_factory=list)
    classifier: str | None = None
    threshold: float | None = None
    null: NullCheck | None = None
    planted: PlantedCheck | None = None
    copies: CopyCheck | None = None
    passed: bool | None = Field(None, alias="pass")
    data: SelftestData | None = None


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


# ---------------------------------------------------------------------------- manifest.json


class StageRecord(Artefact):
    """One stage's entry in the manifest (:meth:`ctqc.run.Run.stage`)."""

    status: str  # running | done | failed
    started: str | None = None  # ISO 8601, UTC
    finished: str | None = None
    seconds: float | None = None
    outputs: list[str] = Field(default_factory=list)  # run-relative paths
    error: str | None = None  # the exception's class name, when failed


class DataRecord(Artefact):
    """What the manifest records about the real data (``ctqc.stages.prepare.data_summary``): no pixels, no tags."""

    fingerprint: str | None = None
    content_hash: str | None = None
    kind: str | None = None
    location: str | None = None
    n_images: int | None = None
    image_size: int | None = None
    class_counts: dict[str, int] = Field(default_factory=dict)
    warnings: list[str] = Field(default_factory=list)


class Manifest(Artefact):
    """``manifest.json``: provenance of the run and one record per stage."""

    ctqc_version: str | None = None
    git_commit: str | None = None  # None outside a git checkout
    created: str | None = None
    name: str | None = None
    config_hash: str | None = None
    data: DataRecord = Field(default_factory=DataRecord)
    pipeline: bool = False  # made by ``ctqc run`` (which may resume it)
    stages: dict[str, StageRecord] = Field(default_factory=dict)


def write_artefact(path: str | Path, model: BaseModel) -> None:
    """Write ``model`` to ``path`` atomically, as JSON with the field aliases (NaN → null).

    Only the fields the writer set are written (``exclude_unset``): a key the stage did not
    produce stays absent, and a reader gets the model's default for it.
    """
    atomic.write_json(path, model.model_dump(mode="python", by_alias=True, exclude_unset=True))


def read_artefact(path: str | Path, model: type[Model]) -> Model:
    """Read and validate ``path`` as ``model``; a missing, unreadable or invalid file is a :class:`UserError`."""
    path = Path(path)
    try:
        return model.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        raise UserError(f"{path} is missing: run the stage that writes it") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: unreadable ({exc.__class__.__name__}); run the stage that writes it again") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise UserError(f"{path}: not a valid {model.__name__} ({where}: {first['msg']}); run the stage that writes it again") from None
