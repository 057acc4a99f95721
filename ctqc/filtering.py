"""The filter stage: drop synthetic images a classifier can tell from real ones, and copies.

Per fold and class, the synthetic pool is compared with that fold's real
*training* images (never validation or test) by a classifier two-sample test
(:class:`ctqc.qc.c2st.C2ST`); each synthetic image gets an out-of-fold,
prior-corrected p(synthetic). Images above ``--c2st-threshold`` are rejected as
unrealistic; with memorisation checks on, images closer to a training image
than the ``qc.copy_percentile``-th percentile of the fold's held-out
*validation* images are rejected as copies. The kept set is re-tested with a
fresh C2ST (new folds), so "after" is not a re-use of the scores that chose it.

Writes ``filter/kept.csv``, ``filter/rejected.csv`` (reasons and scores) and
``filter/filter.json`` (counts per class, metrics before and after).
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ctqc import atomic
from ctqc.config import QCConfig
from ctqc.errors import UserError
from ctqc.rundir import RunDir

SCORE_COLUMNS = ["sample_id", "file", "class", "label", "fold", "c2st_score", "copy_distance", "copy_ratio", "nearest_train_id", "reasons"]


@dataclass(frozen=True)
class FilterSummary:
    kept: int
    rejected: int
    per_class: dict


def make_c2st(qc: QCConfig, seed: int, pixel_columns: int | None, n_splits: int | None = None, n_permutations: int | None = None):
    """The configured (unfitted) C2ST."""
    from ctqc.qc.c2st import C2ST

    return C2ST(
        classifier=qc.classifier,
        n_splits=n_splits or qc.n_splits,
        n_repeats=qc.n_repeats,
        n_permutations=qc.n_permutations if n_permutations is None else n_permutations,
        n_components=qc.pca_components or None,
        pca_columns=pixel_columns,
        c=qc.c2st_c,
        random_state=seed,
        n_jobs=qc.n_jobs,
    )


def c2st_for(real: np.ndarray, synthetic: np.ndarray, qc: QCConfig, seed: int, pixel_columns: int | None):
    n_splits = min(qc.n_splits, len(real), len(synthetic))
    if n_splits < 2:
        return None
    return make_c2st(qc, seed, pixel_columns, n_splits=n_splits).fit(real, synthetic)


def _summary(test) -> dict:
    if test is None:
        return {"auc": None, "accuracy": None, "p_value": None, "note": "too few images for a C2ST"}
    return {"auc": round(test.auc_, 4), "accuracy": round(test.accuracy_, 4), "p_value": test.p_value_}


def run_filter(run: RunDir, threshold: float | None = None, memorisation: bool | None = None) -> FilterSummary:
    """Score and filter the synthetic pool of ``run``; writes ``<run>/filter/`` and the embeddings."""
    from ctqc.pools import units_from_run

    run.require_stage("generate", "ctqc train")
    threshold, memorisation = _settings(run.config().qc, threshold, memorisation)  # bad options: nothing recorded
    with run.stage("filter") as outputs:  # the stage's time covers the scoring, not just the writing
        cfg, units = units_from_run(run)
        table, summary, embeddings = _score_units(units, cfg, threshold, memorisation, run.path / "qc" / "features")
        summary["fitted_on"] = "each fold's real training images vs that fold's synthetic pool; copy reference: the fold's validation images"
        staging = run.path / ".filter.new"
        _write_filter(staging, table, summary)
        atomic.replace_dir(staging, run.path / "filter")
        outputs += ["filter/kept.csv", "filter/rejected.csv", "filter/filter.json"]
        if embeddings is not None:
            outputs += _write_embeddings(run.path / "qc", embeddings, cfg.qc.embeddings, prefix="qc/")
    return _result(table, summary)


def filter_folders(real_dir: Path, synthetic_dir: Path, out: Path, cfg, threshold: float | None = None, memorisation: bool | None = None) -> FilterSummary:
    """Bring-your-own images: filter ``synthetic_dir`` against ``real_dir``; writes ``out/`` all at once.

    ``out`` gets kept.csv / rejected.csv (``file`` relative to ``synthetic_dir``), filter.json and the
    embeddings; an existing ``out`` is replaced only if it holds an earlier filter.json.
    """
    from ctqc.pools import units_from_folders

    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "filter.json").is_file())):
        raise UserError(f"--out {out}: exists and is not an earlier ctqc filter output; choose a new folder")
    atomic.check_can_create(out)
    threshold, memorisation = _settings(cfg.qc, threshold, memorisation)
    units = units_from_folders(real_dir, synthetic_dir, cfg)
    table, summary, embeddings = _score_units(units, cfg, threshold, memorisation, feature_cache())
    summary["fitted_on"] = f"a random {100 - 20} % of the real images of each class in {real_dir}; copy reference and floor: the other 20 %"
    summary["real"], summary["synthetic"] = str(real_dir), str(synthetic_dir)
    staging = out.parent / f".{out.name}.new"
    _write_filter(staging, table, summary)
    if embeddings is not None:
        _write_embeddings(staging, embeddings, cfg.qc.embeddings)
    atomic.replace_dir(staging, out)
    return _result(table, summary)


def feature_cache() -> Path:
    """Per-image feature cache for images outside a run (keyed by pixel content, so sharing is safe)."""
    from ctqc.qc.inception import cache_dir

    return cache_dir() / "features"


def _settings(qc: QCConfig, threshold: float | None, memorisation: bool | None) -> tuple[float, bool]:
    threshold = qc.c2st_threshold if threshold is None else threshold
    if not 0 < threshold < 1:
        raise UserError(f"--c2st-threshold must be between 0 and 1 (got {threshold}); 0.6 drops images a classifier calls synthetic with > 60 % confidence")
    return threshold, qc.memorisation if memorisation is None else memorisation


def _score_units(units, cfg, threshold: float, memorisation: bool, cache):
    """(score table, filter.json content, embedding table or None) over all units."""
    import pandas as pd

    from ctqc.qc.domain import encoders_if_used

    domain = encoders_if_used(units, cfg.qc.features, cache, cfg.seed)  # {fold: encoder}; {} unless "domain" is used
    rows, report, embedding_parts = [], {}, []
    for unit in units:
        unit_rows, report[unit.label], embedding = _filter_unit(unit, cfg, threshold, memorisation, cache, domain.get(unit.fold))
        rows += unit_rows
        if embedding is not None:
            embedding_parts.append(embedding)
    table = pd.DataFrame(rows, columns=SCORE_COLUMNS)
    kept = int((table["reasons"] == "").sum())
    summary = {
        "c2st_threshold": threshold,
        "memorisation": memorisation,
        "features": cfg.qc.features,
        "classifier": cfg.qc.classifier,
        "kept": kept,
        "rejected": int(len(table) - kept),
        "per_class": report,
    }
    return table, summary, pd.concat(embedding_parts, ignore_index=True) if embedding_parts else None


def _write_filter(staging: Path, table, summary: dict) -> None:
    shutil.rmtree(staging, ignore_errors=True)
    with atomic.atomic_dir(staging) as tmp:
        table[table["reasons"] == ""].to_csv(tmp / "kept.csv", index=False)
        table[table["reasons"] != ""].to_csv(tmp / "rejected.csv", index=False)
        (tmp / "filter.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")


def _result(table, summary: dict) -> FilterSummary:
    return FilterSummary(kept=summary["kept"], rejected=summary["rejected"], per_class=summary["per_class"])


def _filter_unit(unit, cfg, threshold: float, memorisation: bool, cache, domain_weights=None):
    """Score one fold × class: (score rows, report entry, embedding table or None)."""
    from ctqc.qc.features import feature_matrix
    from ctqc.qc.memorisation import check_copies

    qc, pool = cfg.qc, unit.pool
    real_f, pixel_columns = feature_matrix(unit.reference, qc.features, cache, domain_weights)
    syn_f, _ = feature_matrix(unit.synthetic, qc.features, cache, domain_weights)
    before = c2st_for(real_f, syn_f, qc, cfg.seed + unit.fold, pixel_columns)
    scores = before.synthetic_scores_ if before is not None else np.full(len(pool), np.nan)
    check = memorisation and len(unit.heldout) >= 2 and len(unit.reference) >= 2
    copies = check_copies(unit.synthetic, unit.reference, unit.heldout, qc.copy_percentile, qc.copy_max_shift) if check else None
    too_synthetic = scores > threshold
    copied = copies.flagged if copies is not None else np.zeros(len(pool), bool)
    reasons = ["+".join(r for r, hit in (("c2st", s), ("copy", c)) if hit) for s, c in zip(too_synthetic, copied)]
    kept_mask = ~(too_synthetic | copied)
    after = c2st_for(real_f, syn_f[kept_mask], qc, cfg.seed + unit.fold + 7919, pixel_columns) if kept_mask.any() else None
    report = {
        "n_synthetic": int(len(pool)),
        "kept": int(kept_mask.sum()),
        "rejected_c2st": int(too_synthetic.sum()),
        "rejected_copy": int(copied.sum()),
        "c2st_before": _summary(before),
        "c2st_after": _summary(after),
        "copy_threshold": None if copies is None else copies.threshold,
    }
    rows = [
        [
            sample_id, file, unit.name, unit.key, unit.fold, round(float(scores[i]), 6),
            None if copies is None else round(float(copies.distance[i]), 6),
            None if copies is None else round(float(copies.ratio[i]), 6),
            None if copies is None else unit.reference_ids[int(copies.nearest_train[i])],
            reasons[i],
        ]
        for i, (sample_id, file) in enumerate(zip(pool["sample_id"], pool["file"]))
    ]  # fmt: skip
    embedding = _embedding_rows(qc, cfg.seed, unit, real_f, syn_f, kept_mask, report) if qc.embeddings else None
    return rows, report, embedding


def _embedding_rows(qc: QCConfig, seed: int, unit, real_f, syn_f, kept_mask, report: dict):
    """t-SNE / UMAP coordinates of one fold and class: real reference images and the synthetic pool.

    A method skipped for too few images leaves its columns empty and a note in ``report["notes"]``.
    """
    import pandas as pd

    from ctqc.qc.embeddings import embed, skip_note

    table = pd.DataFrame(
        {
            "id": list(unit.reference_ids) + unit.pool["sample_id"].tolist(),
            "source": ["real"] * len(unit.reference_ids) + ["synthetic"] * len(unit.pool),
            "class": unit.name,
            "fold": unit.fold,
            "kept": [None] * len(unit.reference_ids) + kept_mask.tolist(),
        }
    )
    features = np.vstack([real_f, syn_f])
    for method in qc.embeddings:
        coords = embed(features, method, seed=seed + unit.fold)
        if coords is None:
            coords = np.full((len(features), 2), np.nan)
            report.setdefault("notes", []).append(skip_note(method, len(features), unit.label))
        table[f"{method}_x"], table[f"{method}_y"] = coords[:, 0].round(5), coords[:, 1].round(5)
    return table


def _write_embeddings(folder: Path, table, methods: list[str], prefix: str = "") -> list[str]:
    """embeddings.csv and one plot per method (first fold) into ``folder``; returns the names written."""
    from ctqc.qc.embeddings import plot_embedding

    atomic.write_text(folder / "embeddings.csv", table.to_csv(index=False))
    written = [f"{prefix}embeddings.csv"]
    fold0 = table[table["fold"] == table["fold"].min()]
    for method in methods:
        plot_embedding(fold0, method, folder / f"embedding_{method}.png")
        written.append(f"{prefix}embedding_{method}.png")
    return written
