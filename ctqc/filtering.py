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

import numpy as np
import torch

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


def load_synthetic(folder, files) -> torch.Tensor:
    """8-bit grayscale PNGs → float32 N×1×S×S in [-1, 1]."""
    from PIL import Image

    arrays = []
    for name in files:
        with Image.open(folder / name) as im:
            arrays.append(np.asarray(im.convert("L"), dtype=np.float32))
    return torch.from_numpy(np.stack(arrays) / 127.5 - 1.0).unsqueeze(1).float()


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
    """Score and filter the synthetic pool of ``run``; returns counts."""
    import pandas as pd

    from ctqc.train import open_for_resume

    run.require_stage("generate", "ctqc train")
    cfg, data, splits = open_for_resume(run)
    qc = cfg.qc
    threshold = qc.c2st_threshold if threshold is None else threshold
    if not 0 < threshold < 1:
        raise UserError(f"--c2st-threshold must be between 0 and 1 (got {threshold}); 0.6 drops images a classifier calls synthetic with > 60 % confidence")
    memorisation = qc.memorisation if memorisation is None else memorisation
    samples = run.path / "samples"
    index = pd.read_csv(samples / "index.csv")
    cache = run.path / "qc" / "features"
    rows, report, embedding_parts = [], {}, []
    for fold in splits.folds:
        dev = splits.development(data, fold)
        for key, name in cfg.data.classes.items():
            pool = index[(index["fold"] == fold) & (index["label"] == key)]
            if pool.empty:
                continue
            unit_rows, report[f"fold{fold}/{name}"], embedding = _filter_unit(dev, key, name, fold, pool, samples, cfg, threshold, memorisation, cache)
            rows += unit_rows
            if embedding is not None:
                embedding_parts.append(embedding)
    table = pd.DataFrame(rows, columns=SCORE_COLUMNS)
    kept = table[table["reasons"] == ""]
    rejected = table[table["reasons"] != ""]
    summary = {
        "c2st_threshold": threshold,
        "memorisation": memorisation,
        "features": qc.features,
        "classifier": qc.classifier,
        "kept": int(len(kept)),
        "rejected": int(len(rejected)),
        "per_class": report,
        "fitted_on": "each fold's real training images vs that fold's synthetic pool; copy reference: the fold's validation images",
    }
    staging = run.path / ".filter.new"
    shutil.rmtree(staging, ignore_errors=True)
    with run.stage("filter") as outputs:
        with atomic.atomic_dir(staging) as tmp:
            kept.to_csv(tmp / "kept.csv", index=False)
            rejected.to_csv(tmp / "rejected.csv", index=False)
            (tmp / "filter.json").write_text(json.dumps(summary, indent=2, default=float) + "\n")
        atomic.replace_dir(staging, run.path / "filter")
        outputs += ["filter/kept.csv", "filter/rejected.csv", "filter/filter.json"]
        if embedding_parts:
            outputs += _write_embeddings(run, pd.concat(embedding_parts, ignore_index=True), qc.embeddings)
    return FilterSummary(kept=len(kept), rejected=len(rejected), per_class=report)


def _filter_unit(dev, key: int, name: str, fold: int, pool, samples, cfg, threshold: float, memorisation: bool, cache):
    """Score one fold × class: (score rows, report entry, embedding table or None)."""
    from ctqc.qc.features import feature_matrix
    from ctqc.qc.memorisation import check_copies

    qc = cfg.qc
    real = dev.train.subset(np.flatnonzero(dev.train.labels == key))
    heldout = dev.val.images[torch.from_numpy(dev.val.labels == key)]
    synthetic = load_synthetic(samples, pool["file"])
    real_f, pixel_columns = feature_matrix(real.images, qc.features, cache)
    syn_f, _ = feature_matrix(synthetic, qc.features, cache)
    before = c2st_for(real_f, syn_f, qc, cfg.seed + fold, pixel_columns)
    scores = before.synthetic_scores_ if before is not None else np.full(len(pool), np.nan)
    copies = check_copies(synthetic, real.images, heldout, qc.copy_percentile, qc.copy_max_shift) if memorisation and len(heldout) >= 2 else None
    too_synthetic = scores > threshold
    copied = copies.flagged if copies is not None else np.zeros(len(pool), bool)
    reasons = ["+".join(r for r, hit in (("c2st", s), ("copy", c)) if hit) for s, c in zip(too_synthetic, copied)]
    kept_mask = ~(too_synthetic | copied)
    after = c2st_for(real_f, syn_f[kept_mask], qc, cfg.seed + fold + 7919, pixel_columns) if kept_mask.any() else None
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
            sample_id, file, name, key, fold, round(float(scores[i]), 6),
            None if copies is None else round(float(copies.distance[i]), 6),
            None if copies is None else round(float(copies.ratio[i]), 6),
            None if copies is None else real.ids[int(copies.nearest_train[i])],
            reasons[i],
        ]
        for i, (sample_id, file) in enumerate(zip(pool["sample_id"], pool["file"]))
    ]  # fmt: skip
    embedding = _embedding_rows(qc, cfg.seed, fold, name, real.ids, real_f, pool, syn_f, kept_mask) if qc.embeddings else None
    return rows, report, embedding


def _embedding_rows(qc: QCConfig, seed: int, fold: int, name: str, real_ids, real_f, pool, syn_f, kept_mask):
    """t-SNE / UMAP coordinates of one fold and class: real training images and the synthetic pool."""
    import pandas as pd

    from ctqc.qc.embeddings import embed

    table = pd.DataFrame(
        {
            "id": list(real_ids) + pool["sample_id"].tolist(),
            "source": ["real"] * len(real_ids) + ["synthetic"] * len(pool),
            "class": name,
            "fold": fold,
            "kept": [None] * len(real_ids) + kept_mask.tolist(),
        }
    )
    features = np.vstack([real_f, syn_f])
    for method in qc.embeddings:
        coords = embed(features, method, seed=seed + fold)
        table[f"{method}_x"], table[f"{method}_y"] = coords[:, 0].round(5), coords[:, 1].round(5)
    return table


def _write_embeddings(run: RunDir, table, methods: list[str]) -> list[str]:
    from ctqc.qc.embeddings import plot_embedding

    qc_dir = run.path / "qc"
    atomic.write_text(qc_dir / "embeddings.csv", table.to_csv(index=False))
    written = ["qc/embeddings.csv"]
    fold0 = table[table["fold"] == table["fold"].min()]
    for method in methods:
        plot_embedding(fold0, method, qc_dir / f"embedding_{method}.png")
        written.append(f"qc/embedding_{method}.png")
    return written
