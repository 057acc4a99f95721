"""Typed artefacts: the JSON files that stages write and ``reports`` reads, one pydantic model each.

Writer and reader share these models: a stage builds the model and writes it with
:func:`write_artefact` (the one JSON encoder, :func:`ctqc.atomic.json_text`: NaN → null);
a reader validates once with :func:`read_artefact` and then trusts the fields. Models refuse
unknown keys; open-ended content is a typed dict. One module per group of files:
:mod:`~ctqc.artefacts.qc` (scoring, filter, metrics), :mod:`~ctqc.artefacts.selftest`, :mod:`~ctqc.artefacts.compare`,
:mod:`~ctqc.artefacts.manifest`; :mod:`~ctqc.artefacts.base` has the base class, writer and reader.
"""

from __future__ import annotations

from ctqc.artefacts.base import Artefact, read_artefact, write_artefact
from ctqc.artefacts.compare import CompareSummary, Comparison, DosePoint, MeanCI, OverTrainings, OverTrainingsDifference, PaperRow, Sensitivity
from ctqc.artefacts.manifest import DataRecord, Manifest, StageRecord
from ctqc.artefacts.qc import (
    GAP_ABOVE,
    GAP_BELOW,
    GAP_METRICS,
    GAP_NOT_ESTIMABLE,
    GAP_WITHIN,
    LOWER_IS_BETTER,
    AfterFilter,
    C2STResult,
    Calibration,
    Diversity,
    Estimate,
    ExtractorSets,
    FilterSummary,
    FilterUnit,
    Gap,
    LabelClassifier,
    MemorisationPair,
    QCMetrics,
    RealRejection,
    ReliabilityBin,
    ScopeMemorisation,
    ScopeMetrics,
    Scoring,
    StrategySummary,
    StrategyUnit,
    UnitScoring,
    gap_verdict,
    rbf_mmd_label,
)
from ctqc.artefacts.selftest import CopyCheck, IntensityShiftUnits, NullCheck, PlantedCheck, Selftest, SelftestData

__all__ = [
    "GAP_ABOVE",
    "GAP_BELOW",
    "GAP_METRICS",
    "GAP_NOT_ESTIMABLE",
    "GAP_WITHIN",
    "LOWER_IS_BETTER",
    "AfterFilter",
    "Artefact",
    "C2STResult",
    "Calibration",
    "CompareSummary",
    "Comparison",
    "CopyCheck",
    "DataRecord",
    "Diversity",
    "DosePoint",
    "Estimate",
    "ExtractorSets",
    "FilterSummary",
    "FilterUnit",
    "Gap",
    "IntensityShiftUnits",
    "LabelClassifier",
    "Manifest",
    "MeanCI",
    "MemorisationPair",
    "NullCheck",
    "OverTrainings",
    "OverTrainingsDifference",
    "PaperRow",
    "PlantedCheck",
    "QCMetrics",
    "RealRejection",
    "ReliabilityBin",
    "ScopeMemorisation",
    "ScopeMetrics",
    "Scoring",
    "Selftest",
    "SelftestData",
    "Sensitivity",
    "StageRecord",
    "StrategySummary",
    "StrategyUnit",
    "UnitScoring",
    "gap_verdict",
    "rbf_mmd_label",
    "read_artefact",
    "write_artefact",
]
