"""Models of ``qc/selftest.json`` (``ctqc selftest``, :mod:`ctqc.qc.selftest`): parts (a)–(d)."""

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
    n_genuine: int | None = None  # clean (genuine) pool images per defect and strength, over the splits
    auroc: dict[str, dict[str, float | None]] = Field(default_factory=dict)  # artefact → strength → AUROC (mean over splits)
    removed: dict[str, dict[str, float | None]] = Field(default_factory=dict)  # share of defective images above the threshold
    genuine_removed: dict[str, dict[str, float | None]] = Field(default_factory=dict)  # share of the clean (genuine) pool images above it
    reference_removed: dict[str, dict[str, float | None]] = Field(default_factory=dict)  # of the reference images' out-of-fold scores
    wilson_95: dict[str, dict[str, dict[str, list[float]]]] = Field(default_factory=dict)  # artefact → strength → removed / genuine_removed → [low, high]
    by_split: dict[str, dict[str, dict[str, list[float]]]] = Field(default_factory=dict)  # artefact → strength → removed / genuine_removed → share per split
    intensity_shift_units: IntensityShiftUnits | None = None
    rising_with_strength: bool | None = None  # removed share: no fall with strength beyond two binomial SEs
    auroc_rising: bool | None = None  # the former rule on AUROC (tolerance 0.02, ties above 0.95); recorded, not judged
    medium_at_least_0_9: bool | None = Field(None, alias="medium_at_least_0.9")  # AUROC
    medium_removed_at_least_0_9: bool | None = Field(None, alias="medium_removed_at_least_0.9")
    genuine_removed_at_most_0_1: bool | None = Field(None, alias="genuine_removed_at_most_0.1")  # at medium strength
    passed: bool | None = Field(None, alias="pass")

    def medium_share(self, key: str, name: str) -> str:
        """``removed`` or ``genuine_removed`` of artefact ``name`` at medium strength as the CLI and the report show it.

        E.g. "95% (Wilson 91–97%, splits 89–100%)": the pooled share, its 95 % Wilson interval over the
        pooled images and the range of the split-by-split shares, each when recorded; "–" when absent.
        """
        value = getattr(self, key).get(name, {}).get("medium")
        if value is None:
            return "–"
        wilson = self.wilson_95.get(name, {}).get("medium", {}).get(key)
        splits = self.by_split.get(name, {}).get("medium", {}).get(key)
        parts = ([f"Wilson {wilson[0]:.0%}–{wilson[1]:.0%}"] if wilson else []) + ([f"splits {min(splits):.0%}–{max(splits):.0%}"] if splits else [])
        return f"{value:.0%}" + (f" ({', '.join(parts)})" if parts else "")


class CopyCheck(Artefact):
    """(c) planted copies: flagged; genuine held-out images: not."""

    flagged: dict[str, float | None] = Field(default_factory=dict)  # kind of copy → fraction flagged
    genuine_flagged: float | None = None
    passed: bool | None = Field(None, alias="pass")


class SetLevelDefect(Artefact):
    """One set-level defect of (d): the global tests' p-values over the splits, and how often each rejects at α."""

    mmd_p_values: list[float | None] = Field(default_factory=list)  # kernel MMD, one per split
    mmd_detected: float | None = Field(None, ge=0, le=1)  # share of splits with p < α (criterion ≥ 0.9)
    c2st_p_values: list[float | None] = Field(default_factory=list)  # the linear C2ST's permutation test, for comparison
    c2st_auc: list[float | None] = Field(default_factory=list)
    c2st_detected: float | None = Field(None, ge=0, le=1)  # recorded, not judged
    judged: bool = True  # False: recorded for the comparison of the two tests (the typical images), no criterion


class SetLevelNull(Artefact):
    """(d) null: the genuine held-out half against the reference half; the MMD must not reject it."""

    mmd_p_values: list[float | None] = Field(default_factory=list)
    mmd_rejected: float | None = Field(None, ge=0, le=1)  # share of splits with p < α (criterion ≤ 0.2)


class DedupCheck(Artefact):
    """(d) the dedup rule: duplicates within the pool flagged, genuine images not."""

    threshold: float | None = None  # pixel correlation (qc.dedup_threshold)
    flagged: dict[str, float | None] = Field(default_factory=dict)  # exact / near → share of the duplicates flagged (≥ 0.95)
    genuine_flagged: float | None = None  # share of genuine held-out images flagged (≤ 0.05)
    reduced_diversity_flagged: float | None = None  # of the reduced-diversity set (a few images plus noise): informative
    passed: bool | None = Field(None, alias="pass")


class SetLevelCheck(Artefact):
    """(d) set-level defects (reduced diversity, duplicated images): the global test detects them; dedup flags duplicates."""

    n_repeats: int | None = None  # random reference / held-out splits
    n_reference: int | None = None  # reference (real) images per split
    set_size: int | None = None  # images in each tested set
    n_distinct: int | None = None  # distinct images behind a reduced-diversity or duplicated set
    alpha: float | None = None
    global_test: str | None = None  # in words
    mmd_permutations: int | None = None
    c2st_permutations: int | None = None
    defects: dict[str, SetLevelDefect] = Field(default_factory=dict)
    null: SetLevelNull | None = None
    dedup: DedupCheck | None = None
    detected_at_least_0_9: bool | None = Field(None, alias="detected_at_least_0.9")
    null_rejected_at_most_0_2: bool | None = Field(None, alias="null_rejected_at_most_0.2")
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
    set_level: SetLevelCheck | None = None  # (d); absent in files written before it
    passed: bool | None = Field(None, alias="pass")
    data: SelftestData | None = None
