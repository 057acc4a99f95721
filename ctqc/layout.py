"""The run directory's layout: every path of a run, defined once.

A run is one folder that the stages read and write (``docs/run-directory.md``)::

    runs/<YYYYmmdd-HHMMSS>-<name>/
      manifest.json   config.yaml   splits.csv
      gan/fold<k>/<unit>/           checkpoints/, grids/, stats.jsonl
      samples/                      syn_<class>_<fold>_<i>.png, index.csv
      qc/                           scores.csv, scoring.json, features/, embeddings.csv, metrics.json, …
      filter/                       kept.csv, rejected.csv, filter.json, embedding_<method>.png, <strategy>/kept.csv …
      compare/                      results.csv, summary.json, table.txt, predictions/, units/
      report/                       report.html, summary.json

This module imports nothing but the standard library, so the stages, the
``Run`` object and the read-only ``reports`` package share it. Paths are
returned as :class:`pathlib.Path` under ``RunLayout.root``; ``rel`` gives the
run-relative name that the manifest records.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

MANIFEST = "manifest.json"
CONFIG = "config.yaml"
SPLITS = "splits.csv"
LATEST = "latest"  # <runs root>/latest → the newest run
LOCK = ".lock"  # held by the process that works on the run

GAN = "gan"
SAMPLES = "samples"
QC = "qc"
FILTER = "filter"
COMPARE = "compare"
REPORT = "report"

CONDITIONAL_UNIT = "conditional"  # the GAN unit name in conditional mode


def class_slug(name: str, key: int) -> str:
    """A file-name-safe form of a class name (``[A-Za-z0-9_-]``, falls back to ``class<key>``)."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")
    return slug or f"class{key}"


@dataclass(frozen=True)
class RunLayout:
    """Every file and folder of the run at ``root``."""

    root: Path

    def rel(self, path: Path) -> str:
        """``path`` relative to the run, as the manifest records it (POSIX separators)."""
        return Path(path).relative_to(self.root).as_posix()

    # ---------------------------------------------------------------- top level
    @property
    def manifest(self) -> Path:
        return self.root / MANIFEST

    @property
    def config(self) -> Path:
        return self.root / CONFIG

    @property
    def splits(self) -> Path:
        return self.root / SPLITS

    @property
    def lock(self) -> Path:
        return self.root / LOCK

    # ---------------------------------------------------------------- gan/
    @property
    def gan(self) -> Path:
        return self.root / GAN

    def gan_unit(self, fold: int, unit: str) -> Path:
        """``gan/fold<fold>/<unit>``: one GAN's folder (``unit`` = class slug or ``conditional``)."""
        return self.gan / f"fold{fold}" / unit

    def generator(self, fold: int, unit: str) -> Path:
        """The final (EMA) generator checkpoint of one GAN."""
        return self.gan_unit(fold, unit) / "checkpoints" / "generator.pt"

    # ---------------------------------------------------------------- samples/
    @property
    def samples(self) -> Path:
        return self.root / SAMPLES

    @property
    def samples_index(self) -> Path:
        return self.samples / "index.csv"

    # ---------------------------------------------------------------- qc/
    @property
    def qc(self) -> Path:
        return self.root / QC

    @property
    def features(self) -> Path:
        """Per-image feature cache (keyed by pixel content)."""
        return self.qc / "features"

    @property
    def scores(self) -> Path:
        """Per-image C2ST and copy-check scores, synthetic and real (``ctqc.stages.score``)."""
        return self.qc / "scores.csv"

    @property
    def scoring(self) -> Path:
        """The scoring step's global results per fold × class (``ctqc.artefacts.Scoring``)."""
        return self.qc / "scoring.json"

    @property
    def c2st_features(self) -> Path:
        """The C2ST feature matrices of every unit, as the scoring step computed them."""
        return self.qc / "c2st_features.npz"

    @property
    def metrics(self) -> Path:
        return self.qc / "metrics.json"

    @property
    def embeddings(self) -> Path:
        return self.qc / "embeddings.csv"

    @property
    def selftest(self) -> Path:
        return self.qc / "selftest.json"

    # ---------------------------------------------------------------- filter/
    @property
    def filter(self) -> Path:
        return self.root / FILTER

    @property
    def kept(self) -> Path:
        return self.filter / "kept.csv"

    @property
    def rejected(self) -> Path:
        return self.filter / "rejected.csv"

    @property
    def filter_summary(self) -> Path:
        return self.filter / "filter.json"

    def strategy_dir(self, strategy: str) -> Path:
        """``filter/<strategy>/``: one filter strategy's decisions (the default strategy's are also ``filter/kept.csv``)."""
        return self.filter / strategy

    def strategy_kept(self, strategy: str) -> Path:
        return self.strategy_dir(strategy) / "kept.csv"

    def strategy_rejected(self, strategy: str) -> Path:
        return self.strategy_dir(strategy) / "rejected.csv"

    def embedding_plot(self, method: str) -> Path:
        """t-SNE / UMAP plot of the first fold, kept and rejected images marked."""
        return self.filter / f"embedding_{method}.png"

    # ---------------------------------------------------------------- compare/
    @property
    def compare(self) -> Path:
        return self.root / COMPARE

    @property
    def results(self) -> Path:
        return self.compare / "results.csv"

    @property
    def compare_summary(self) -> Path:
        return self.compare / "summary.json"

    @property
    def compare_table(self) -> Path:
        return self.compare / "table.txt"

    @property
    def predictions(self) -> Path:
        return self.compare / "predictions"

    @property
    def compare_units(self) -> Path:
        """One result file per finished training (resume unit)."""
        return self.compare / "units"

    # ---------------------------------------------------------------- report/
    @property
    def report(self) -> Path:
        return self.root / REPORT

    @property
    def report_html(self) -> Path:
        return self.report / "report.html"

    @property
    def report_summary(self) -> Path:
        return self.report / "summary.json"

    def staging(self, folder: Path) -> Path:
        """The temporary sibling a stage builds ``folder`` in before swapping it into place."""
        return folder.parent / f".{folder.name}.new"
