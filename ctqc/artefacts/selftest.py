"""``qc/selftest.json`` (``ctqc selftest``): the QC proved on real images with known answers (:mod:`ctqc.qc.selftest`)."""

from __future__ import annotations

from pydantic import Field

from ctqc.artefacts.base import Artefact


class NullCheck(Artefact):
    """(a) real vs real: the C2ST must not see a difference, and its scores must stay calibrated."""

    auc: list[float | None] = Field(default_factory=list)  # one per random split
    p_values: list[float | None] = Field(default_factory=list)
    discarded_fraction: list[float | None] = Field(default_factory=list)  # of the "synthetic" half, at the threshold
    mean_discarded: float | None = None  # over the splits (criterion ≤ 0.10)
    ece: list[float | None] = Field(default_factory=list)  # per split, against the true equal-prior posterior 0.5
    ece_labels: list[float | None] = Field(default_factory=list)  # per split, against the labels (as filter.json estimates it)
    mean_ece: float | None = None  # mean of ``ece`` (criterion ≤ 0.05)
    passed: bool | None = Field(None, alias="pass")


class IntensityShiftUnits(Artefact):
    brightness_spread: float | None = None  # inter-image SD of the mean foreground brightness
    strengths: dict[str, float] = Field(default_factory=dict)  # strength → shift, in brightness spreads


class PlantedCheck(Artefact):
    """(b) planted artefacts: ranked first by the per-image scores, and removed at the operating point."""

    n_splits: int | None = None  # random reference / clean / defective splits pooled
    n_defective: int | None = None  # defective images per defect and strength, over the splits
    auroc: dict[str, dict[str, float | None]] = Field(default_factory=dict)  # artefact → strength → AUROC (mean over splits)
    removed: dict[str, dict[str, float | None]] = Field(default_factory=dict)  # share of defective images above the threshold
    genuine_removed: dict[str, dict[str, float | None]] = Field(default_factory=dict)  # share of the clean (genuine) pool images above it
    reference_removed: dict[str, dict[str, float | None]] = Field(default_factory=dict)  # of the reference images' out-of-fold scores
    intensity_shift_units: IntensityShiftUnits | None = None
    rising_with_strength: bool | None = None  # removed share: no fall with strength beyond two binomial SEs
    auroc_rising: bool | None = None  # the former rule on AUROC (tolerance 0.02, ties above 0.95); recorded, not judged
    medium_at_least_0_9: bool | None = Field(None, alias="medium_at_least_0.9")  # AUROC
    medium_removed_at_least_0_9: bool | None = Field(None, alias="medium_removed_at_least_0.9")
    genuine_removed_at_most_0_1: bool | None = Field(None, alias="genuine_removed_at_most_0.1")  # at medium strength
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
    c2st_c: float | str | None = None  # the C2ST's regularisation: a number, or "auto" (inner CV)
    operating_point: str | None = None  # in words
    null: NullCheck | None = None
    planted: PlantedCheck | None = None
    copies: CopyCheck | None = None
    passed: bool | None = Field(None, alias="pass")
    data: SelftestData | None = None
