"""The filter stage: a decision over stored scores — drop images a classifier calls synthetic, and copies.

The scores come from the score stage (:mod:`ctqc.stages.score`, ``qc/scores.csv``):
an out-of-fold, prior-corrected p(synthetic) per synthetic image, fitted against
each fold's real *training* images, and the copy check against the same images
with the fold's held-out validation images as reference. Images above the
operating point's threshold are rejected as unrealistic: ``--c2st-threshold``
(one fixed p(synthetic) threshold) or ``--max-real-rejection α`` (per fold × class,
the split-conformal threshold over the stored scores of the held-out real images,
which took no part in fitting). With memorisation checks on, flagged copies are
rejected too. Re-thresholding re-fits nothing: only the after-filter check — a
fresh C2ST (new folds) of the kept images vs the fold's held-out real images, on the
stored features — and the density/coverage view are computed again.

Per unit, filter.json reports the threshold used and the share of genuine images it
rejects (with the calibration set's size), the reliability curve and ECE of the
stored scores as they are (:func:`ctqc.qc.scoring.calibration`; the default score is
not calibrated), the two-sided after-check, and density/coverage of pool, kept set
and same-size random subsets (:func:`ctqc.qc.scoring.diversity`).

Writes ``filter/kept.csv``, ``filter/rejected.csv`` (reasons and scores),
``filter/filter.json`` (:class:`ctqc.artefacts.FilterSummary`) and the embedding
plots (``filter/embedding_<method>.png``, kept and rejected images marked).
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ctqc import atomic
from ctqc.artefacts import FilterSummary, FilterUnit, Scoring, read_artefact, write_artefact
from ctqc.config import Config, QCConfig
from ctqc.errors import UserError
from ctqc.qc.calibration import conformal_expected_rejection, conformal_threshold, rejection_rate
from ctqc.qc.embeddings import plot_embedding
from ctqc.qc.inception import cache_dir
from ctqc.qc.scoring import AFTER_CHECK, ScoreSet, after_check, calibration, decide, diversity, load_features, score_units
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


@dataclass(frozen=True)
class OperatingPoint:
    """A fixed p(synthetic) ``threshold``, or with ``max_real_rejection`` = α each unit's split-conformal threshold."""

    threshold: float | None
    max_real_rejection: float | None = None

    @property
    def mode(self) -> str:
        return "threshold" if self.max_real_rejection is None else "conformal"


def settings(qc: QCConfig, threshold: float | None, memorisation: bool | None, max_real_rejection: float | None = None) -> tuple[OperatingPoint, bool]:
    """The operating point (``--c2st-threshold``, default ``qc.c2st_threshold``, or ``--max-real-rejection``) and whether copies are dropped."""
    memorisation = qc.memorisation if memorisation is None else memorisation
    if max_real_rejection is not None:
        if threshold is not None:
            raise UserError("give either --c2st-threshold or --max-real-rejection, not both")
        if not 0 < max_real_rejection < 1:
            raise UserError(f"--max-real-rejection must be between 0 and 1 (got {max_real_rejection}); 0.1 rejects at most about 10 % of genuine images")
        return OperatingPoint(None, max_real_rejection), memorisation
    threshold = qc.c2st_threshold if threshold is None else threshold
    if not 0 < threshold < 1:
        raise UserError(f"--c2st-threshold must be between 0 and 1 (got {threshold}); 0.6 drops images a classifier calls synthetic with > 60 % confidence")
    return OperatingPoint(threshold), memorisation


def run_filter(run: Run, threshold: float | None = None, memorisation: bool | None = None, max_real_rejection: float | None = None) -> FilterResult:
    """Filter ``run``'s pool over its stored scores (the score stage must have run); writes ``filter/``."""
    point, memorisation = settings(run.config.qc, threshold, memorisation, max_real_rejection)  # bad options: nothing recorded
    run.require_stage("score", "ctqc filter")
    layout = run.layout
    with run.stage("filter") as outputs:
        cfg = run.config
        scoring = read_artefact(layout.scoring, Scoring)
        scores = ScoreSet(
            table=pd.read_csv(layout.scores, dtype={"id": str, "file": str, "nearest_train_id": str, "dup_of": str}),
            units=scoring.model_dump(by_alias=True)["units"],
            features=load_features(layout.c2st_features),
        )
        table, summary = decide_and_check(scores, cfg, point, memorisation, fitted_on=scoring.fitted_on)
        embeddings = pd.read_csv(layout.embeddings, dtype={"id": str}) if layout.embeddings.is_file() else None
        staging = layout.staging(layout.filter)
        plots = {method: layout.embedding_plot(method).name for method in cfg.qc.embeddings} if embeddings is not None else {}
        _write(staging, table, summary, embeddings, plots)
        atomic.replace_dir(staging, layout.filter)
        outputs += [layout.rel(layout.kept), layout.rel(layout.rejected), layout.rel(layout.filter_summary)]
        outputs += [layout.rel(layout.filter / name) for name in plots.values()]
    return FilterResult(kept=summary.kept, rejected=summary.rejected, per_class=summary.per_class)


def filter_folders(
    real_dir: Path, synthetic_dir: Path, out: Path, cfg: Config, threshold: float | None = None, memorisation: bool | None = None, max_real_rejection: float | None = None
) -> FilterResult:
    """Bring-your-own images: score and filter ``synthetic_dir`` against ``real_dir``; writes ``out/`` all at once.

    ``out`` gets kept.csv / rejected.csv (``file`` relative to ``synthetic_dir``), filter.json and the
    embedding plots; an existing ``out`` is replaced only if it holds an earlier filter.json.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "filter.json").is_file())):
        raise UserError(f"--out {out}: exists and is not an earlier ctqc filter output; choose a new folder")
    atomic.check_can_create(out)
    point, memorisation = settings(cfg.qc, threshold, memorisation, max_real_rejection)
    units = units_from_folders(real_dir, synthetic_dir, cfg, heldout_fraction=BYO_HELDOUT)
    scores = score_units(units, cfg, cache_dir() / "features", memorisation=memorisation)
    held = round(100 * BYO_HELDOUT)
    fitted_on = f"a random {100 - held} % of the real images of each class in {real_dir}; held-out scores, copy reference and floor: the other {held} %"
    table, summary = decide_and_check(scores, cfg, point, memorisation, fitted_on=fitted_on)
    summary.real, summary.synthetic = str(real_dir), str(synthetic_dir)
    staging = out.parent / f".{out.name}.new"
    plots = {method: f"embedding_{method}.png" for method in cfg.qc.embeddings} if scores.embeddings is not None else {}
    _write(staging, table, summary, scores.embeddings, plots, embeddings_csv=True)
    atomic.replace_dir(staging, out)
    return FilterResult(kept=summary.kept, rejected=summary.rejected, per_class=summary.per_class)


def decide_and_check(scores: ScoreSet, cfg: Config, point: OperatingPoint | float, memorisation: bool, fitted_on: str) -> tuple[pd.DataFrame, FilterSummary]:
    """(kept + rejected table with ``reasons``, filter.json) from stored scores; fits only the after-check C2ST.

    ``point``: a fixed threshold for every unit (a number is read as one), or per unit the
    split-conformal threshold over the stored scores of its held-out real images. Either way
    each unit reports its threshold and the genuine images it rejects (:func:`_real_rejection`).
    """
    point = point if isinstance(point, OperatingPoint) else OperatingPoint(float(point))
    table = scores.table
    synthetic = table[table["source"] == "synthetic"]
    thresholds, rejections, notes = {}, {}, {}
    for label, unit in scores.units.items():
        held = _unit_rows(table, unit, "heldout")["c2st_score"].to_numpy(float)
        thresholds[label], rejections[label] = _real_rejection(held, point)
        if thresholds[label] is None:
            notes[label] = (
                f"{rejections[label]['n']} held-out real images are too few for a {point.max_real_rejection:g} conformal guarantee (needs ≥ {_needed(point.max_real_rejection)}): nothing rejected as c2st"
            )
    unit_of = {(u["fold"], u["label"]): label for label, u in scores.units.items()}
    decided = decide(synthetic, [1.0 if thresholds[unit_of[fk]] is None else thresholds[unit_of[fk]] for fk in zip(synthetic["fold"], synthetic["label"])], memorisation, dedup=cfg.qc.dedup)
    per_class = {}
    for label, unit in scores.units.items():
        rows = decided[(decided["fold"] == unit["fold"]) & (decided["label"] == unit["label"])]
        reasons = rows["reasons"]
        kept_mask = (reasons == "").to_numpy()
        per_class[label] = FilterUnit(
            n_synthetic=len(rows),
            kept=int(kept_mask.sum()),
            rejected_c2st=int(reasons.str.contains("c2st").sum()),
            rejected_copy=int(reasons.str.contains("copy").sum()),
            rejected_duplicate=int(reasons.str.contains("duplicate").sum()),
            mmd_before=unit.get("mmd"),
            c2st_before=unit["c2st"],
            c2st_after=after_check(scores.features[label], kept_mask, cfg.qc, cfg.seed, unit["fold"]),
            copy_threshold=unit["copy_threshold"],
            threshold=thresholds[label],
            real_rejection=rejections[label],
            calibration=calibration(table, unit, cfg.qc),
            diversity=diversity(scores.features[label], kept_mask, cfg.qc, cfg.seed, unit["fold"]),
            notes=[*unit.get("notes", []), *([notes[label]] if label in notes else [])],
        )
    out = decided.rename(columns={"id": "sample_id"})[FILTER_COLUMNS]
    kept = int((out["reasons"] == "").sum())
    summary = FilterSummary(
        c2st_threshold=point.threshold, mode=point.mode, max_real_rejection=point.max_real_rejection, after_check=AFTER_CHECK,
        memorisation=memorisation, features=cfg.qc.features, classifier=cfg.qc.classifier,
        kept=kept, rejected=len(out) - kept, per_class=per_class, fitted_on=fitted_on,
    )  # fmt: skip
    return out, summary


def _real_rejection(held: np.ndarray, point: OperatingPoint) -> tuple[float | None, dict]:
    """(threshold, ``RealRejection`` fields) of one unit from its held-out real images' stored scores.

    Fixed threshold: the expected share of genuine images rejected is estimated by the share of
    held-out images above it (they took no part in fitting, and the threshold did not look at
    them), with a 95 % Wilson interval. Conformal: the threshold is their ⌈(n + 1)(1 − α)⌉-th
    smallest score, and a new exchangeable genuine image exceeds it with probability exactly
    1 − k/(n + 1) ≤ α; the in-sample share above it is shown too, but is not an estimate.
    """
    held = held[np.isfinite(held)]
    if point.mode == "threshold":
        rate = rejection_rate(held, point.threshold)
        return point.threshold, {**rate, "expected": rate["rate"], "basis": f"share of the {len(held)} held-out real images above the threshold (an estimate; 95 % Wilson interval)"}
    alpha = point.max_real_rejection
    threshold = conformal_threshold(held, alpha)
    if threshold is None:
        return None, {"n": len(held), "basis": f"too few held-out real images for α = {alpha:g}"}
    expected = conformal_expected_rejection(len(held), alpha)
    basis = f"split conformal over {len(held)} held-out real images: a new genuine image is rejected with probability {expected:.3f} ≤ α = {alpha:g} (exchangeability)"
    return round(threshold, 6), {**rejection_rate(held, threshold), "expected": round(expected, 4), "guarantee": alpha, "basis": basis}


def _needed(alpha: float) -> int:
    """The fewest calibration images for which the conformal rank ⌈(n + 1)(1 − α)⌉ ≤ n."""
    return math.ceil(1 / alpha - 1 - 1e-9)


def _unit_rows(table: pd.DataFrame, unit: dict, role: str) -> pd.DataFrame:
    return table[(table["fold"] == unit["fold"]) & (table["label"] == unit["label"]) & (table["role"] == role)]


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
