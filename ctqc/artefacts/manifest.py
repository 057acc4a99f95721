"""Model of a run's ``manifest.json``."""

from __future__ import annotations

from pydantic import Field

from ctqc.artefacts.base import Artefact

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
