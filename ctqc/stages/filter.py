"""The filter stage: a decision over stored scores — drop images a classifier calls synthetic, and copies.

The scores come from the score stage (:mod:`ctqc.stages.score`, ``qc/scores.csv``):
an out-of-fold, prior-corrected p(synthetic) per synthetic image, fitted against
each fold's real *training* images, and the copy check against the same images
with the fold's held-out validation images as reference. Images above
``--c2st-threshold`` are rejected as unrealistic; with memorisation checks on,
flagged copies are rejected too. Re-thresholding re-fits nothing: only the
after-filter check — a fresh C2ST (new folds) of the kept images vs the reference
images, on the stored features — is computed again.

Writes ``filter/kept.csv``, ``filter/rejected.csv`` (reasons and scores),
``filter/filter.json`` (:class:`ctqc.artefacts.FilterSummary`) and the embedding
plots (``filter/embedding_<method>.png``, kept and rejected images marked).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from ctqc import atomic
from ctqc.artefacts import FilterSummary, FilterUnit, Scoring, read_artefact, write_artefact
from ctqc.config import Config, QCConfig
from ctqc.errors import UserError
from ctqc.qc.embeddings import plot_embedding
from ctqc.qc.inception import cache_dir
from ctqc.qc.scoring import ScoreSet, after_check, decide, load_features, score_units
from ctqc.qc.units import units_from_folders
from ctqc.run import Run

#: kept.csv / rejected.csv columns (the synthetic rows of the score table, plus the decision)
FILTER_COLUMNS = ["sample_id", "file", "class", "label", "fold", "c2st_score", "copy_distance", "copy_ratio", "nearest_train_id", "reasons"]
BYO_HELDOUT = 0.2  # bring-your-own folders: the share of real images held out per class


@dataclass(frozen=True)
class FilterResult:
    kept: int
    rejected: int
    per_class: dict[str, FilterUnit]


def settings(qc: QCConfig, threshold: float | None, memorisation: bool | None) -> tuple[float, bool]:
    """The operating point: ``--c2st-threshold`` (default ``qc.c2st_threshold``) and whether copies are dropped."""
    threshold = qc.c2st_threshold if threshold is None else threshold
    if not 0 < threshold < 1:
        raise UserError(f"--c2st-threshold must be between 0 and 1 (got {threshold}); 0.6 drops images a classifier calls synthetic with > 60 % confidence")
    return threshold, qc.memorisation if memorisation is None else memorisation


def run_filter(run: Run, threshold: float | None = None, memorisation: bool | None = None) -> FilterResult:
    """Filter ``run``'s pool over its stored scores (the score stage must have run); writes ``filter/``."""
    threshold, memorisation = settings(run.config.qc, threshold, memorisation)  # bad options: nothing recorded
    run.require_stage("score", "ctqc filter")
    layout = run.layout
    with run.stage("filter") as outputs:
        cfg = run.config
        scoring = read_artefact(layout.scoring, Scoring)
        scores = ScoreSet(table=pd.read_csv(layout.scores, dtype={"id": str, "file": str, "nearest_train_id": str}), units=scoring.model_dump(by_alias=True)["units"], features=load_features(layout.c2st_features))
        table, summary = decide_and_check(scores, cfg, threshold, memorisation, fitted_on=scoring.fitted_on)
        embeddings = pd.read_csv(layout.embeddings, dtype={"id": str}) if layout.embeddings.is_file() else None
        staging = layout.staging(layout.filter)
        plots = {method: layout.embedding_plot(method).name for method in cfg.qc.embeddings} if embeddings is not None else {}
        _write(staging, table, summary, embeddings, plots)
        atomic.replace_dir(staging, layout.filter)
        outputs += [layout.rel(layout.kept), layout.rel(layout.rejected), layout.rel(layout.filter_summary)]
        outputs += [layout.rel(layout.filter / name) for name in plots.values()]
    return FilterResult(kept=summary.kept, rejected=summary.rejected, per_class=summary.per_class)


def filter_folders(real_dir: Path, synthetic_dir: Path, out: Path, cfg: Config, threshold: float | None = None, memorisation: bool | None = None) -> FilterResult:
    """Bring-your-own images: score and filter ``synthetic_dir`` against ``real_dir``; writes ``out/`` all at once.

    ``out`` gets kept.csv / rejected.csv (``file`` relative to ``synthetic_dir``), filter.json and the
    embedding plots; an existing ``out`` is replaced only if it holds an earlier filter.json.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "filter.json").is_file())):
        raise UserError(f"--out {out}: exists and is not an earlier ctqc filter output; choose a new folder")
    atomic.check_can_create(out)
    threshold, memorisation = settings(cfg.qc, threshold, memorisation)
    units = units_from_folders(real_dir, synthetic_dir, cfg, heldout_fraction=BYO_HELDOUT)
    scores = score_units(units, cfg, cache_dir() / "features", memorisation=memorisation)
    held = round(100 * BYO_HELDOUT)
    fitted_on = f"a random {100 - held} % of the real images of each class in {real_dir}; held-out scores, copy reference and floor: the other {held} %"
    table, summary = decide_and_check(scores, cfg, threshold, memorisation, fitted_on=fitted_on)
    summary.real, summary.synthetic = str(real_dir), str(synthetic_dir)
    staging = out.parent / f".{out.name}.new"
    plots = {method: f"embedding_{method}.png" for method in cfg.qc.embeddings} if scores.embeddings is not None else {}
    _write(staging, table, summary, scores.embeddings, plots, embeddings_csv=True)
    atomic.replace_dir(staging, out)
    return FilterResult(kept=summary.kept, rejected=summary.rejected, per_class=summary.per_class)


def decide_and_check(scores: ScoreSet, cfg: Config, threshold: float, memorisation: bool, fitted_on: str) -> tuple[pd.DataFrame, FilterSummary]:
    """(kept + rejected table with ``reasons``, filter.json) from stored scores; runs only the after-check C2ST."""
    synthetic = scores.table[scores.table["source"] == "synthetic"]
    decided = decide(synthetic, threshold, memorisation)
    per_class = {}
    for label, unit in scores.units.items():
        rows = decided[(decided["fold"] == unit["fold"]) & (decided["label"] == unit["label"])]
        reasons = rows["reasons"]
        per_class[label] = FilterUnit(
            n_synthetic=len(rows),
            kept=int((reasons == "").sum()),
            rejected_c2st=int(reasons.str.contains("c2st").sum()),
            rejected_copy=int(reasons.str.contains("copy").sum()),
            c2st_before=unit["c2st"],
            c2st_after=after_check(scores.features[label], (reasons == "").to_numpy(), cfg.qc, cfg.seed, unit["fold"]),
            copy_threshold=unit["copy_threshold"],
            notes=unit.get("notes", []),
        )
    table = decided.rename(columns={"id": "sample_id"})[FILTER_COLUMNS]
    kept = int((table["reasons"] == "").sum())
    summary = FilterSummary(
        c2st_threshold=threshold, memorisation=memorisation, features=cfg.qc.features, classifier=cfg.qc.classifier,
        kept=kept, rejected=len(table) - kept, per_class=per_class, fitted_on=fitted_on,
    )  # fmt: skip
    return table, summary


def _write(staging: Path, table: pd.DataFrame, summary: FilterSummary, embeddings: pd.DataFrame | None, plots: dict[str, str], embeddings_csv: bool = False) -> None:
    """kept.csv, rejected.csv, filter.json and the embedding plots (and ``embeddings.csv``), built in ``staging``."""
    shutil.rmtree(staging, ignore_errors=True)
    with atomic.atomic_dir(staging) as tmp:
        table[table["reasons"] == ""].to_csv(tmp / "kept.csv", index=False)
        table[table["reasons"] != ""].to_csv(tmp / "rejected.csv", index=False)
        write_artefact(tmp / "filter.json", summary)
        if embeddings is not None:
            marked = _mark_kept(embeddings, table)
            if embeddings_csv:
                marked.to_csv(tmp / "embeddings.csv", index=False)
            first = marked[marked["fold"] == marked["fold"].min()]
            for method, name in plots.items():
                plot_embedding(first, method, tmp / name)


def _mark_kept(embeddings: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """The embedding table with a ``kept`` column: True/False for synthetic images, None for real ones."""
    kept = dict(zip(table["sample_id"].astype(str), table["reasons"] == ""))
    out = embeddings.copy()
    out["kept"] = [kept.get(str(i)) if s == "synthetic" else None for i, s in zip(out["id"], out["source"])]
    return out
