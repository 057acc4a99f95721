"""The QC stage (``ctqc qc``): how close, how diverse, how copied — without filtering anything.

Per class (and over all classes), against the real images the generator learned from:

- FID, KID, precision/recall (:mod:`ctqc.qc.metrics`) with bootstrap 95 % CIs, next to
  the real-vs-real floor (held-out real vs the same reference images, same n);
- the classifier two-sample test: AUC, accuracy, permutation p-value, and an
  out-of-fold p(synthetic) for every image (``qc/c2st_scores.csv``);
- memorisation: nearest training image per synthetic image, its distance ratio to
  genuine held-out distances, copies flagged, and the data-copying statistic C_T.

When ``ctqc filter`` has run, the distribution metrics are also computed for the
kept images (``after_filter``). Writes ``qc/metrics.json``, ``qc/c2st_scores.csv``
and ``qc/memorisation.csv``.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import torch

from ctqc import atomic
from ctqc.errors import UserError
from ctqc.rundir import RunDir

PAIRS_SHOWN = 8  # nearest-training-image pairs kept per class for the report


def run_qc(run: RunDir) -> dict:
    """QC metrics of ``run``'s synthetic pool (and its kept set, when filtered); returns metrics.json's content."""
    from ctqc.pools import units_from_run

    run.require_stage("generate", "ctqc train")
    with run.stage("qc") as outputs:  # the stage's time covers the computation, not just the writing
        cfg, units = units_from_run(run)
        cache = run.path / "qc" / "features"
        kept = units_from_run(run, kept_only=True)[1] if run.stage_status("filter") == "done" else None
        metrics, scores, copies = _qc(units, kept, cfg, cache)
        qc_dir = run.path / "qc"
        atomic.write_text(qc_dir / "c2st_scores.csv", scores.to_csv(index=False))
        atomic.write_text(qc_dir / "memorisation.csv", copies.to_csv(index=False))
        atomic.write_json(qc_dir / "metrics.json", metrics)
        outputs += ["qc/metrics.json", "qc/c2st_scores.csv", "qc/memorisation.csv"]
    return metrics


def qc_folders(real_dir: Path, synthetic_dir: Path, out: Path, cfg) -> dict:
    """Bring-your-own images: QC of ``synthetic_dir`` against ``real_dir``, written to ``out/`` all at once."""
    from ctqc.filtering import feature_cache
    from ctqc.pools import units_from_folders

    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "metrics.json").is_file())):
        raise UserError(f"--out {out}: exists and is not an earlier ctqc qc output; choose a new folder")
    atomic.check_can_create(out)
    units = units_from_folders(real_dir, synthetic_dir, cfg)
    metrics, scores, copies = _qc(units, None, cfg, feature_cache())
    metrics["real"], metrics["synthetic"] = str(real_dir), str(synthetic_dir)
    staging = out.parent / f".{out.name}.new"
    shutil.rmtree(staging, ignore_errors=True)
    with atomic.atomic_dir(staging) as tmp:
        (tmp / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float) + "\n")
        scores.to_csv(tmp / "c2st_scores.csv", index=False)
        copies.to_csv(tmp / "memorisation.csv", index=False)
    atomic.replace_dir(staging, out)
    return metrics


def _qc(units, kept_units, cfg, cache):
    """(metrics.json content, per-image C2ST scores, per-image copy check) over all units."""
    import pandas as pd

    from ctqc.qc.domain import describe_encoder, encoders_if_used

    qc = cfg.qc
    single_fold = len({u.fold for u in units}) == 1
    scope = (lambda u: u.name) if single_fold else (lambda u: u.label)
    # {fold: weights of the domain encoder fitted on that fold's real training images}; {} unless "domain" is used
    domain = encoders_if_used(units, [*qc.features, qc.metric_features], cache, cfg.seed)
    metrics: dict = {
        "extractor": qc.metric_features,
        "n_bootstrap": qc.n_bootstrap,
        "c2st_features": qc.features,
        "c2st_classifier": qc.classifier,
        "reference": "real training images of each class (the GAN's own); floor: held-out (validation) real images vs the same reference",
        "warnings": [],
        "scopes": _scopes(units, scope, qc, cfg.seed, cache, domain),
        "c2st": {},
        "memorisation": {},
    }
    if domain:  # provenance of the fitted encoders (what they saw, their weights' hash)
        metrics["domain_encoders"] = {f"fold{k}": describe_encoder(path) for k, path in domain.items()}
    if kept_units is not None:  # the filter has run (scopes with fewer than two kept images are left out)
        kept_counts = {scope(u): len(u.pool) for u in kept_units}
        metrics["after_filter"] = {"kept": {scope(u): kept_counts.get(scope(u), 0) for u in units}, "scopes": _scopes(kept_units, scope, qc, cfg.seed, cache, domain)}
    score_parts, copy_parts = [], []
    for unit in units:
        c2st, unit_scores = _c2st(unit, cfg, cache, domain.get(unit.fold))
        metrics["c2st"][scope(unit)] = c2st
        score_parts.append(unit_scores)
        summary, unit_copies = _memorisation(unit, qc, cache, domain.get(unit.fold))
        metrics["memorisation"][scope(unit)] = summary
        copy_parts.append(unit_copies)
    for name, entry in metrics["scopes"].items():
        metrics["warnings"] += [f"{name}: {w}" for w in entry.pop("warnings", [])]
    for entry in metrics.get("after_filter", {}).get("scopes", {}).values():
        entry.pop("warnings", None)
    return metrics, pd.concat(score_parts, ignore_index=True), pd.concat(copy_parts, ignore_index=True)


def _scopes(units, scope, qc, seed: int, cache, domain: dict | None = None) -> dict:
    """Distribution metrics per unit, and over all classes of the first fold (``domain``: {fold: encoder})."""
    from ctqc.qc.features import extract
    from ctqc.qc.metrics import distribution_metrics

    def features(images, fold):
        return extract(qc.metric_features, images, cache, (domain or {}).get(fold))

    out = {}
    for unit in units:
        if len(unit.synthetic) < 2:
            continue
        synthetic, reference, heldout = (features(x, unit.fold) for x in (unit.synthetic, unit.reference, unit.heldout))
        out[scope(unit)] = distribution_metrics(synthetic, reference, heldout, qc.n_bootstrap, seed + unit.fold)
    first = [u for u in units if u.fold == units[0].fold] if units else []
    if len(first) > 1:
        cat = lambda attr: features(torch.cat([getattr(u, attr) for u in first]), first[0].fold)  # noqa: E731
        out["all"] = distribution_metrics(cat("synthetic"), cat("reference"), cat("heldout"), qc.n_bootstrap, seed)
    return out


def _c2st(unit, cfg, cache, domain_weights=None):
    """Global C2ST of one unit and its per-image scores."""
    import pandas as pd

    from ctqc.filtering import c2st_for
    from ctqc.qc.features import feature_matrix

    real_f, pixel_columns = feature_matrix(unit.reference, cfg.qc.features, cache, domain_weights)
    syn_f, _ = feature_matrix(unit.synthetic, cfg.qc.features, cache, domain_weights)
    test = c2st_for(real_f, syn_f, cfg.qc, cfg.seed + unit.fold, pixel_columns)
    synthetic = unit.pool[["sample_id", "file", "class", "fold"]].copy()
    synthetic.insert(1, "source", "synthetic")
    synthetic["c2st_score"] = np.round(test.synthetic_scores_, 6) if test is not None else np.nan
    real = pd.DataFrame({"sample_id": list(unit.reference_ids), "source": "real", "file": None, "class": unit.name, "fold": unit.fold})
    real["c2st_score"] = np.round(test.real_scores_, 6) if test is not None else np.nan
    scores = pd.concat([synthetic, real], ignore_index=True)  # real rows: for the calibration plot
    if test is None:
        return {"auc": None, "accuracy": None, "p_value": None, "n_real": len(real_f), "n_synthetic": len(syn_f), "note": "too few images"}, scores
    summary = {"auc": round(test.auc_, 4), "accuracy": round(test.accuracy_, 4), "p_value": test.p_value_, "n_real": len(real_f), "n_synthetic": len(syn_f)}
    return summary, scores


def _memorisation(unit, qc, cache, domain_weights=None):
    """Copy check (pixel correlation over flips/shifts) and C_T on the metric features, for one unit."""
    import pandas as pd

    from ctqc.qc.features import extract
    from ctqc.qc.memorisation import check_copies, data_copying_statistic

    table = unit.pool[["sample_id", "file", "class", "fold"]].copy()
    if len(unit.heldout) < 2 or len(unit.reference) < 2:
        return {"c_t": None, "n_flagged": None, "pairs": [], "note": "fewer than two held-out or reference images"}, table
    check = check_copies(unit.synthetic, unit.reference, unit.heldout, qc.copy_percentile, qc.copy_max_shift)
    table["train_id"] = [unit.reference_ids[int(i)] for i in check.nearest_train]
    table["correlation"] = np.round(1 - check.distance, 6)
    table["ratio"] = np.round(check.ratio, 6)
    table["flagged"] = check.flagged
    feats = [extract(qc.metric_features, x, cache, domain_weights) for x in (unit.reference, unit.heldout, unit.synthetic)]
    c_t = data_copying_statistic(*feats, random_state=0)
    order = np.argsort(check.ratio)[:PAIRS_SHOWN]
    pairs = table.iloc[order][["sample_id", "file", "train_id", "correlation", "ratio", "flagged"]].to_dict(orient="records")
    summary = {
        "c_t": None if np.isnan(c_t) else round(c_t, 4),
        "n_flagged": int(check.flagged.sum()),
        "copy_threshold": round(check.threshold, 6),
        "pairs": [{k: (bool(v) if k == "flagged" else v) for k, v in p.items()} for p in pairs],
    }
    return summary, table
