"""Read-only access to a run directory's files, tolerant of anything missing.

Paths come from :class:`ctqc.layout.RunLayout`; each JSON artefact is validated
once against its model (:mod:`ctqc.artefacts`) and cached. Every reader returns
``None`` when its file is absent (the stage did not run) and records a note in
``problems`` when a file exists but cannot be read or does not match its model,
so the report can say so instead of failing. Nothing here writes, trains or
computes metrics.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from ctqc.artefacts import CompareSummary, FilterSummary, Manifest, QCMetrics, Scoring, Selftest, StageRecord
from ctqc.layout import RunLayout

Model = TypeVar("Model", bound=BaseModel)
OUTSIDE = ".outside-the-run"  # what a name leaving the run reads as: a file that does not exist
ID_COLUMNS = ("id", "sample_id", "file", "class", "nearest_train_id", "train_id", "reasons", "arm", "group", "source", "role")


@dataclass
class RunData:
    """A run directory opened for reporting."""

    path: Path
    problems: list[str] = field(default_factory=list)  # files that exist but could not be read
    _artefacts: dict[tuple[Path, type], BaseModel | None] = field(default_factory=dict, repr=False)

    @property
    def layout(self) -> RunLayout:
        return RunLayout(self.path)

    # ------------------------------------------------------------------ generic readers

    def file(self, rel: str) -> Path:
        """``rel`` inside the run. Names come from the run's own CSVs, which anyone can edit: one
        that leaves the run (``../``, absolute, a link out) is noted and reads as a missing file."""
        path = self.path / rel
        if not path.resolve().is_relative_to(self.path.resolve()):
            self.problems.append(f"{rel}: points outside the run directory (not read)")
            return self.path / OUTSIDE
        return path

    def sample(self, name: str) -> Path:
        """A synthetic image named in a CSV (``samples/<name>``)."""
        return self.file(self.layout.rel(self.layout.samples / name))

    def _name(self, path: Path) -> str:
        return self.layout.rel(path)

    def text(self, path: Path) -> str | None:
        if not path.is_file():
            return None
        try:
            return path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self.problems.append(f"{self._name(path)}: unreadable ({exc.__class__.__name__})")
            return None

    def artefact(self, path: Path, model: type[Model]) -> Model | None:
        """``path`` validated as ``model``, once per report; None when absent, unreadable or invalid."""
        key = (path, model)
        if key not in self._artefacts:
            self._artefacts[key] = self._validate(path, model)
        return self._artefacts[key]  # type: ignore[return-value]

    def _validate(self, path: Path, model: type[Model]) -> Model | None:
        raw = self.text(path)
        if raw is None:
            return None
        try:
            data = json.loads(raw)
        except json.JSONDecodeError as exc:
            self.problems.append(f"{self._name(path)}: not valid JSON (line {exc.lineno})")
            return None
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(top level)"
            more = f"; {exc.error_count() - 1} more" if exc.error_count() > 1 else ""
            self.problems.append(f"{self._name(path)}: not a valid {model.__name__} ({where}: {first['msg']}{more}); not shown")
            return None

    def jsonl(self, path: Path) -> list[dict] | None:
        raw = self.text(path)
        if raw is None:
            return None
        records = []
        for n, line in enumerate(raw.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                self.problems.append(f"{self._name(path)}: line {n} is not valid JSON (skipped)")
                continue
            if isinstance(record, dict):  # a JSONL log written by the trainer; not a typed artefact
                records.append(record)
        return records

    def csv(self, path: Path, **kwargs):
        """A pandas DataFrame, or None. Id-like columns are read as strings (``000`` stays ``000``)."""
        import pandas as pd

        if not path.is_file():
            return None
        try:
            table = pd.read_csv(path, dtype={c: str for c in ID_COLUMNS}, keep_default_na=True, **kwargs)
        except Exception as exc:  # pandas raises many kinds (ParserError, EmptyDataError, UnicodeDecodeError)
            self.problems.append(f"{self._name(path)}: unreadable CSV ({exc.__class__.__name__})")
            return None
        if "reasons" in table.columns:
            table["reasons"] = table["reasons"].fillna("")
        return table

    # ------------------------------------------------------------------ the run's artefacts

    def manifest(self) -> Manifest | None:
        return self.artefact(self.layout.manifest, Manifest)

    def metrics(self) -> QCMetrics | None:
        return self.artefact(self.layout.metrics, QCMetrics)

    def scoring(self) -> Scoring | None:
        return self.artefact(self.layout.scoring, Scoring)

    def filter_summary(self) -> FilterSummary | None:
        return self.artefact(self.layout.filter_summary, FilterSummary)

    def compare_summary(self) -> CompareSummary | None:
        return self.artefact(self.layout.compare_summary, CompareSummary)

    def selftest(self) -> Selftest | None:
        return self.artefact(self.layout.selftest, Selftest)

    def stages(self) -> dict[str, StageRecord]:
        manifest = self.manifest()
        return manifest.stages if manifest else {}

    def stage_done(self, name: str) -> bool:
        entry = self.stages().get(name)
        return entry is not None and entry.status == "done"

    def config_text(self) -> str | None:
        return self.text(self.layout.config)

    def config(self) -> dict:
        """``config.yaml`` as a plain dict ({} when missing or not a mapping); sections read a few settings."""
        import yaml

        raw = self.config_text()
        if raw is None:
            return {}
        try:
            cfg = yaml.safe_load(raw)
        except yaml.YAMLError:
            self.problems.append(f"{self.layout.config.name}: not valid YAML")
            return {}
        return cfg if isinstance(cfg, dict) else {}

    def settings(self, group: str) -> dict:
        """``config.yaml``'s ``group`` ({} when absent)."""
        section = self.config().get(group)
        return section if isinstance(section, dict) else {}

    def setting(self, group: str, key: str):
        """``config.yaml``'s ``group.key``, or None."""
        return self.settings(group).get(key)

    def class_names(self) -> list[str]:
        """Class names in class-key order (config), else from the manifest's counts."""
        classes = self.setting("data", "classes")
        if isinstance(classes, dict) and classes:
            try:
                return [str(classes[k]) for k in sorted(classes, key=lambda k: int(k))]
            except (TypeError, ValueError):
                return [str(v) for v in classes.values()]
        manifest = self.manifest()
        return list(manifest.data.class_counts) if manifest else []

    def class_keys(self) -> dict[str, int]:
        """Class name → key (config order)."""
        classes = self.setting("data", "classes")
        if isinstance(classes, dict):
            try:
                return {str(v): int(k) for k, v in classes.items()}
            except (TypeError, ValueError):
                pass
        return {name: k for k, name in enumerate(self.class_names())}

    def gan_units(self) -> list[tuple[int, str, Path]]:
        """(fold, unit name, directory) of every trained GAN, fold-major."""
        units = []
        for d in sorted(self.layout.gan.glob("fold*/*")):
            m = re.fullmatch(r"fold(\d+)", d.parent.name)
            if d.is_dir() and m:
                units.append((int(m.group(1)), d.name, d))
        return sorted(units, key=lambda u: (u[0], u[1]))
