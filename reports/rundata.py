"""Read-only access to a run directory's files, tolerant of anything missing.

Every reader returns ``None`` when its file is absent (the stage did not run)
and records a note when a file exists but cannot be read, so the report can
say so instead of failing. Nothing here writes, trains or computes metrics.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

OUTSIDE = ".outside-the-run"  # what a name leaving the run reads as: a file that does not exist


@dataclass
class RunData:
    """A run directory opened for reporting."""

    path: Path
    problems: list[str] = field(default_factory=list)  # files that exist but could not be read

    # ------------------------------------------------------------------ generic readers

    def file(self, rel: str) -> Path:
        """``rel`` inside the run. Names come from the run's own CSVs, which anyone can edit: one
        that leaves the run (``../``, absolute, a link out) is noted and reads as a missing file."""
        path = self.path / rel
        if not path.resolve().is_relative_to(self.path.resolve()):
            self.problems.append(f"{rel}: points outside the run directory (not read)")
            return self.path / OUTSIDE
        return path

    def exists(self, rel: str) -> bool:
        return self.file(rel).is_file()

    def text(self, rel: str) -> str | None:
        p = self.file(rel)
        if not p.is_file():
            return None
        try:
            return p.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            self.problems.append(f"{rel}: unreadable ({exc.__class__.__name__})")
            return None

    def json(self, rel: str) -> Any | None:
        raw = self.text(rel)
        if raw is None:
            return None
        try:
            return json.loads(raw)
        except json.JSONDecodeError as exc:
            self.problems.append(f"{rel}: not valid JSON (line {exc.lineno})")
            return None

    def jsonl(self, rel: str) -> list[dict] | None:
        raw = self.text(rel)
        if raw is None:
            return None
        records = []
        for n, line in enumerate(raw.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                self.problems.append(f"{rel}: line {n} is not valid JSON (skipped)")
                continue
            if isinstance(record, dict):
                records.append(record)
        return records

    def csv(self, rel: str, **kwargs):
        """A pandas DataFrame, or None. Id-like columns are read as strings (``000`` stays ``000``)."""
        import pandas as pd

        p = self.file(rel)
        if not p.is_file():
            return None
        dtype = {c: str for c in ("id", "sample_id", "file", "class", "nearest_train_id", "train_id", "reasons", "arm", "group")}
        try:
            table = pd.read_csv(p, dtype=dtype, keep_default_na=True, **kwargs)
        except Exception as exc:  # pandas raises many kinds (ParserError, EmptyDataError, UnicodeDecodeError)
            self.problems.append(f"{rel}: unreadable CSV ({exc.__class__.__name__})")
            return None
        if "reasons" in table.columns:
            table["reasons"] = table["reasons"].fillna("")
        return table

    # ------------------------------------------------------------------ the run's files

    def manifest(self) -> dict:
        m = self.json("manifest.json")
        return m if isinstance(m, dict) else {}

    def stages(self) -> dict[str, dict]:
        stages = self.manifest().get("stages")
        return stages if isinstance(stages, dict) else {}

    def stage_done(self, name: str) -> bool:
        entry = self.stages().get(name)
        return isinstance(entry, dict) and entry.get("status") == "done"

    def config_text(self) -> str | None:
        return self.text("config.yaml")

    def config(self) -> dict:
        import yaml

        raw = self.config_text()
        if raw is None:
            return {}
        try:
            cfg = yaml.safe_load(raw)
        except yaml.YAMLError:
            self.problems.append("config.yaml: not valid YAML")
            return {}
        return cfg if isinstance(cfg, dict) else {}

    def class_names(self) -> list[str]:
        """Class names in class-key order (config), else from the manifest's counts."""
        classes = (self.config().get("data") or {}).get("classes")
        if isinstance(classes, dict) and classes:
            try:
                return [str(classes[k]) for k in sorted(classes, key=lambda k: int(k))]
            except (TypeError, ValueError):
                return [str(v) for v in classes.values()]
        counts = (self.manifest().get("data") or {}).get("class_counts") or {}
        return [str(k) for k in counts]

    def gan_units(self) -> list[tuple[int, str, Path]]:
        """(fold, unit name, directory) of every trained GAN, fold-major."""
        units = []
        for d in sorted(self.path.glob("gan/fold*/*")):
            m = re.fullmatch(r"fold(\d+)", d.parent.name)
            if d.is_dir() and m:
                units.append((int(m.group(1)), d.name, d))
        return sorted(units, key=lambda u: (u[0], u[1]))
