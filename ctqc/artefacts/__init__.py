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
    AfterFilter,
    C2STResult,
    Calibration,
    Diversity,
    Estimate,
    FilterSummary,
    FilterUnit,
    Gap,
    MemorisationPair,
    MMDResult,
    QCMetrics,
    RealRejection,
    ReliabilityBin,
    ScopeMemorisation,
    ScopeMetrics,
    Scoring,
    UnitScoring,
    gap_verdict,
)
from ctqc.artefacts.selftest import (
    CopyCheck,
    DedupCheck,
    IntensityShiftUnits,
    NullCheck,
    PlantedCheck,
    Selftest,
    SelftestData,
    SetLevelCheck,
    SetLevelDefect,
    SetLevelNull,
)

__all__ = [
    "GAP_ABOVE",
    "GAP_BELOW",
    "GAP_METRICS",
    "GAP_NOT_ESTIMABLE",
    "GAP_WITHIN",
    "AfterFilter",
    "Artefact",
    "C2STResult",
    "Calibration",
    "CompareSummary",
    "Comparison",
    "CopyCheck",
    "DataRecord",
    "DedupCheck",
    "Diversity",
    "DosePoint",
    "Estimate",
    "FilterSummary",
    "FilterUnit",
    "Gap",
    "IntensityShiftUnits",
    "Manifest",
    "MeanCI",
    "MemorisationPair",
    "MMDResult",
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
    "SetLevelCheck",
    "SetLevelDefect",
    "SetLevelNull",
    "StageRecord",
    "UnitScoring",
    "gap_verdict",
    "read_artefact",
    "write_artefact",
]
