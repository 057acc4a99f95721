"""The QC stage (``ctqc qc``): how close, how diverse, how copied — without filtering anything.

Per class (and over all classes), against the real images the generator learned from:

- FID, KID, precision/recall (:mod:`ctqc.qc.metrics`) with bootstrap 95 % CIs, next to
  the real-vs-real floor (held-out real vs the same reference images, same n);
- the classifier two-sample test: AUC, accuracy, permutation p-value, read from the
  score stage's stored results (``qc/scoring.json``; nothing is re-fitted);
- memorisation: copies flagged by the stored copy check, the nearest pairs, and the
  data-copying statistic C_T.

When ``ctqc filter`` has run, the distribution metrics are also computed for the
kept images (``after_filter``) — against the fold's held-out (evaluation) real images,
which neither fitted the filter nor chose the kept set, not against the training
images that chose it; the floor is a same-size random subset of the training images
against the same evaluation images, and the whole pool is measured the same way
(``after_filter.pool_scopes``) so that before and after compare like with like.
Writes ``qc/metrics.json``.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ctqc import atomic
from ctqc.artefacts import QCMetrics, Scoring, read_artefact, write_artefact
from ctqc.errors import UserError
from ctqc.qc.diversity import diversity_check
from ctqc.qc.domain import describe_encoder, encoders_if_used
from ctqc.qc.features import extract
from ctqc.qc.inception import cache_dir
from ctqc.qc.memorisation import data_copying_statistic
from ctqc.qc.metrics import distribution_metrics
from ctqc.qc.scoring import ScoreSet, score_units
from ctqc.qc.units import units_from_folders, units_from_run
from ctqc.run import Run

PAIRS_SHOWN = 8  # nearest-training-image pairs kept per class for the report


def run_qc(run: Run) -> dict:
    """QC metrics of ``run``'s synthetic pool (and its kept set, when filtered); returns metrics.json's content."""
    run.require_stage("score", "ctqc filter")
    layout = run.layout
    with run.stage("qc") as outputs:  # the stage's time covers the computation, not just the writing
        units = units_from_run(run)
        kept = units_from_run(run, kept_only=True) if run.stage_status("filter") == "done" else None
        scoring = read_artefact(layout.scoring, Scoring)
        scores = ScoreSet(table=pd.read_csv(layout.scores, dtype={"id": str, "file": str, "nearest_train_id": str}), units=scoring.model_dump(by_alias=True)["units"])
        metrics = QCMetrics.model_validate(_qc(units, kept, run.config, layout.features, scores))
        write_artefact(layout.metrics, metrics)
        outputs.append(layout.rel(layout.metrics))
    return metrics.model_dump(by_alias=True, exclude_unset=True)


def qc_folders(real_dir: Path, synthetic_dir: Path, out: Path, cfg) -> dict:
    """Bring-your-own images: QC of ``synthetic_dir`` against ``real_dir``, written to ``out/`` all at once."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "metrics.json").is_file())):
        raise UserError(f"--out {out}: exists and is not an earlier ctqc qc output; choose a new folder")
    atomic.check_can_create(out)
    units = units_from_folders(real_dir, synthetic_dir, cfg)
    cache = cache_dir() / "features"
    scores = score_units(units, cfg.model_copy(update={"qc": cfg.qc.model_copy(update={"embeddings": []})}), cache)
    metrics = QCMetrics.model_validate({**_qc(units, None, cfg, cache, scores), "real": str(real_dir), "synthetic": str(synthetic_dir)})
    staging = out.parent / f".{out.name}.new"
    shutil.rmtree(staging, ignore_errors=True)
    with atomic.atomic_dir(staging) as tmp:
        write_artefact(tmp / "metrics.json", metrics)
        scores.table.to_csv(tmp / "scores.csv", index=False)
    atomic.replace_dir(staging, out)
    return metrics.model_dump(by_alias=True, exclude_unset=True)


def _qc(units, kept_units, cfg, cache, scores: ScoreSet) -> dict:
    """metrics.json content over all units; the C2ST and copy check come from ``scores``."""
    qc = cfg.qc
    single_fold = len({u.fold for u in units}) == 1
    scope = (lambda u: u.name) if single_fold else (lambda u: u.label)
    names = qc.metric_extractors()  # the first is the headline; CMMD's CLIP is added when its weights are given
    # {fold: weights of the domain encoder fitted on that fold's real training images}; {} unless "domain" is used
    domain = encoders_if_used(units, [*qc.features, *names], cache, cfg.seed)

    def features_of(name):
        return lambda images, fold: extract(name, images, cache, domain.get(fold), qc.weights)

    def scopes(name, some_units, **how):
        return _scopes(some_units, scope, qc, cfg.seed, features_of(name), **how)

    metrics: dict = {
        "extractor": names[0],
        "extractors": names,
        "n_bootstrap": qc.n_bootstrap,
        "c2st_features": qc.features,
        "c2st_classifier": qc.classifier,
        "reference": "real training images of each class (the GAN's own); floor: held-out (validation) real images vs the same reference",
        "warnings": [],
        "scopes": scopes(names[0], units),
        "c2st": {},
        "memorisation": {},
    }
    if domain:  # provenance of the fitted encoders (what they saw, their weights' hash)
        metrics["domain_encoders"] = {f"fold{k}": describe_encoder(path) for k, path in domain.items()}
    if kept_units is not None:  # the filter has run (scopes with fewer than two kept images are left out)
        kept_counts = {scope(u): len(u.pool) for u in kept_units}
        metrics["after_filter"] = {
            "kept": {scope(u): kept_counts.get(scope(u), 0) for u in units},
            "against": AGAINST_EVALUATION,
            "scopes": scopes(names[0], kept_units, evaluation=True),
            "pool_scopes": scopes(names[0], [u for u in units if kept_counts.get(scope(u), 0) >= 2], evaluation=True, sizes=kept_counts),
            "diversity": _diversity(units, kept_units, scope, cfg.seed, features_of(names[0])),
        }
    if len(names) > 1:  # agreement between extractors: pool, kept set and a same-size random subset on each
        randoms = random_like(units, kept_units, cfg.seed) if kept_units is not None else None
        metrics["by_extractor"] = {
            name: {
                "pool": metrics["scopes"] if i == 0 else scopes(name, units),
                "kept": None if kept_units is None else scopes(name, kept_units),  # vs the training images, like pool and random
                "random": None if randoms is None else scopes(name, randoms),
            }
            for i, name in enumerate(names)
        }
    for unit in units:
        metrics["c2st"][scope(unit)] = scores.units[unit.label]["c2st"]
        metrics["memorisation"][scope(unit)] = _memorisation(unit, qc, cache, scores, domain.get(unit.fold))
    for name, entry in metrics["scopes"].items():
        metrics["warnings"] += [f"{name}: {w}" for w in entry.pop("warnings", [])]
    extra = [e for part in ("scopes", "pool_scopes") for e in metrics.get("after_filter", {}).get(part, {}).values()]
    extra += [e for sets in metrics.get("by_extractor", {}).values() for group in sets.values() if group for e in group.values()]
    for entry in extra:
        entry.pop("warnings", None)
    return metrics


def random_like(units, kept_units, seed: int) -> list:
    """Per unit, a random subset of its synthetic pool as large as the filter's kept set (the filter's no-skill baseline)."""
    kept = {u.label: len(u.synthetic) for u in kept_units}
    out = []
    for unit in units:
        rng = np.random.default_rng([seed, unit.fold, unit.key])
        idx = np.sort(rng.choice(len(unit.synthetic), min(kept.get(unit.label, 0), len(unit.synthetic)), replace=False))
        out.append(dataclasses.replace(unit, synthetic=unit.synthetic[torch.from_numpy(idx)], pool=unit.pool.iloc[idx]))
    return out


AGAINST_EVALUATION = (
    "the fold's held-out (evaluation) real images, which neither fitted the filter nor chose the kept set; "
    "floor: a random subset of the training images of the kept set's size against the same evaluation images"
)
FLOOR_OFFSET = 31337  # the evaluation floor's random training subset: seed + fold + this


def _scopes(units, scope, qc, seed: int, features, evaluation: bool = False, sizes: dict | None = None) -> dict:
    """Distribution metrics per unit, and over all classes of the first fold (``features(images, fold)``: the metric features).

    Default: synthetic vs the training (reference) images, floor = held-out vs the same reference.
    With ``evaluation``: synthetic vs the held-out (evaluation) images, floor = a random subset of
    the training images vs the same evaluation images, of the synthetic set's size — or of
    ``sizes[scope]`` (the kept set's size), so that a pool and its kept set meet the same floor.
    """

    def measure(synthetic, reference, heldout, size, unit_seed):
        if not evaluation:
            return distribution_metrics(synthetic, reference, heldout, qc.n_bootstrap, unit_seed)
        n_floor = min(len(reference), size)
        floor = reference[np.sort(np.random.default_rng(unit_seed + FLOOR_OFFSET).choice(len(reference), n_floor, replace=False))]
        return distribution_metrics(synthetic, heldout, floor, qc.n_bootstrap, unit_seed)

    size = lambda u: (sizes or {}).get(scope(u), len(u.synthetic))  # noqa: E731
    out = {}
    for unit in units:
        if len(unit.synthetic) < 2 or (evaluation and len(unit.heldout) < 2):
            continue
        synthetic, reference, heldout = (features(x, unit.fold) for x in (unit.synthetic, unit.reference, unit.heldout))
        out[scope(unit)] = measure(synthetic, reference, heldout, size(unit), seed + unit.fold)
    first = [u for u in units if u.fold == units[0].fold] if units else []
    if len(first) > 1 and not (evaluation and sum(len(u.heldout) for u in first) < 2):
        cat = lambda attr: features(torch.cat([getattr(u, attr) for u in first]), first[0].fold)  # noqa: E731
        out["all"] = measure(cat("synthetic"), cat("reference"), cat("heldout"), sum(size(u) for u in first), seed)
    return out


def _diversity(units, kept_units, scope, seed: int, features) -> dict:
    """Density/coverage (Naeem et al. 2020) of each unit's pool, kept set and same-size random subsets on the metric features.

    Against the unit's training (reference) images, as the filter's view on the C2ST features
    (:func:`ctqc.qc.diversity.diversity_check`, k = 5, 20 random draws, warning when the kept set
    covers more than 0.1 less than the random subsets). Units with no kept image are left out.
    """
    kept_ids = {(u.fold, u.key): set(u.pool["sample_id"].astype(str)) for u in kept_units}
    out = {}
    for unit in units:
        ids = kept_ids.get((unit.fold, unit.key))
        if not ids or len(unit.synthetic) < 2:
            continue
        mask = unit.pool["sample_id"].astype(str).isin(ids).to_numpy()
        result = diversity_check(features(unit.reference, unit.fold), features(unit.synthetic, unit.fold), mask, seed=seed + unit.fold)
        if result is not None:
            out[scope(unit)] = result
    return out


def _memorisation(unit, qc, cache, scores: ScoreSet, domain_weights=None) -> dict:
    """Copies flagged by the stored copy check, the nearest pairs, and C_T on the metric features, for one unit."""
    table = scores.table
    rows = table[(table["source"] == "synthetic") & (table["fold"] == unit.fold) & (table["label"] == unit.key)]
    if len(unit.heldout) < 2 or len(unit.reference) < 2 or rows["copy_ratio"].isna().all():
        return {"c_t": None, "n_flagged": None, "pairs": [], "note": "fewer than two held-out or reference images"}
    feats = [extract(qc.metric_features[0], x, cache, domain_weights, qc.weights) for x in (unit.reference, unit.heldout, unit.synthetic)]
    c_t = data_copying_statistic(*feats, random_state=0)
    nearest = rows.sort_values("copy_ratio", kind="stable").head(PAIRS_SHOWN)
    pairs = [
        {"sample_id": r.id, "file": r.file, "train_id": _text(r.nearest_train_id), "correlation": round(1 - float(r.copy_distance), 6), "ratio": float(r.copy_ratio), "flagged": bool(r.copy_flagged)}
        for r in nearest.itertuples()
    ]
    return {
        "c_t": None if np.isnan(c_t) else round(c_t, 4),
        "n_flagged": int(rows["copy_flagged"].fillna(False).astype(bool).sum()),
        "copy_threshold": scores.units[unit.label]["copy_threshold"],
        "heldout_flagged": scores.units[unit.label].get("copy_heldout_flagged"),
        "pairs": pairs,
    }


def _text(value) -> str | None:
    """A CSV cell as a string, None where pandas read an empty cell (NaN)."""
    return None if pd.isna(value) else str(value)
