"""Score once, decide cheaply: per-image C2ST and copy-check scores of every QC unit.

:func:`score_units` does the expensive work once per fold × class: feature
extraction, the classifier two-sample test (:mod:`ctqc.qc.c2st`) fitted on the
unit's *reference* real images (the GAN's own training images) vs its synthetic
pool, the kernel MMD test on the same features (:mod:`ctqc.qc.mmd`), the copy check
(:mod:`ctqc.qc.memorisation`) and duplicates within the pool (:mod:`ctqc.qc.dedup`). It returns a
:class:`ScoreSet`: one table row per image, synthetic and real, with each real
image's role —

- ``fit``: a reference image, used to fit the C2ST; its score is out of fold;
- ``heldout``: a held-out real image of the same class (a run's validation split),
  never used to fit; scored by every fold model of the C2ST —

plus the global results per unit and the C2ST feature matrices, so that thresholds
(:func:`decide`), the after-filter check (:func:`after_check`), the calibration view
(:func:`calibration`) and the diversity view (:func:`diversity`) need no re-fit.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ctqc import atomic
from ctqc.qc.c2st import c2st_summary, fit_c2st, two_sided_p_value
from ctqc.qc.calibration import reliability
from ctqc.qc.classifiers import make_classifier
from ctqc.qc.dedup import find_duplicates
from ctqc.qc.diversity import diversity_check
from ctqc.qc.domain import encoders_if_used
from ctqc.qc.embeddings import embed, skip_note
from ctqc.qc.features import feature_matrix
from ctqc.qc.memorisation import check_copies
from ctqc.qc.mmd import configured_mmd, mmd_summary

COPY_COLUMNS = ["copy_distance", "copy_ratio", "nearest_train_id", "copy_flagged"]
DUPLICATE_COLUMNS = ["dup_of", "duplicate_flagged"]  # synthetic rows: the id of the group's first image; flagged = not that image
SCORE_COLUMNS = ["fold", "class", "label", "source", "role", "id", "file", "c2st_score", *COPY_COLUMNS, *DUPLICATE_COLUMNS]
AFTER_SEED_OFFSET = 7919  # the after-filter C2ST draws new folds: seed + fold + this


@dataclass
class UnitFeatures:
    """The C2ST feature matrices of one unit (rows in the order of the score table's rows)."""

    reference: np.ndarray  # n_reference × d
    synthetic: np.ndarray  # n_synthetic × d
    heldout: np.ndarray  # n_heldout × d
    pixel_columns: int | None  # the leading pixel block that PCA reduces (None: no pixel block)


@dataclass
class ScoreSet:
    """What :func:`score_units` found: per-image rows, per-unit results and features.

    ``table`` has :data:`SCORE_COLUMNS`; ``units`` maps a unit label (``fold<k>/<class>``)
    to its JSON-ready results (C2ST AUC/accuracy/p-value, copy threshold, counts);
    ``features`` maps the same labels to :class:`UnitFeatures`; ``embeddings`` holds
    t-SNE/UMAP coordinates of reference + synthetic images (or None).
    """

    table: object  # pandas DataFrame
    units: dict[str, dict]
    features: dict[str, UnitFeatures] = field(default_factory=dict)
    embeddings: object = None  # pandas DataFrame or None


def score_units(units, cfg, cache, memorisation: bool = True) -> ScoreSet:
    """Fit the C2ST and the copy check of every unit once (``cfg``: :class:`ctqc.config.Config`)."""
    import pandas as pd

    domain = encoders_if_used(units, cfg.qc.features, cache, cfg.seed)  # {fold: encoder}; {} unless "domain" is used
    rows, results, features, embedding_parts = [], {}, {}, []
    for unit in units:
        unit_rows, results[unit.label], features[unit.label] = _score_unit(unit, cfg, cache, memorisation, domain.get(unit.fold))
        rows += unit_rows
        if cfg.qc.embeddings:
            embedding_parts.append(_embedding_rows(cfg.qc.embeddings, cfg.seed, unit, features[unit.label], results[unit.label]))
    table = pd.DataFrame(rows, columns=SCORE_COLUMNS)
    embeddings = pd.concat(embedding_parts, ignore_index=True) if embedding_parts else None
    return ScoreSet(table=table, units=results, features=features, embeddings=embeddings)


def _score_unit(unit, cfg, cache, memorisation: bool, domain_weights=None):
    """(score rows, results, features) of one fold × class."""
    qc = cfg.qc
    reference, pixel_columns = feature_matrix(unit.reference, qc.features, cache, domain_weights)
    synthetic, _ = feature_matrix(unit.synthetic, qc.features, cache, domain_weights)
    heldout, _ = feature_matrix(unit.heldout, qc.features, cache, domain_weights) if len(unit.heldout) else (np.zeros((0, reference.shape[1])), None)
    test = fit_c2st(reference, synthetic, qc, cfg.seed + unit.fold, pixel_columns, heldout=heldout if len(heldout) else None)
    nan = lambda n: np.full(n, np.nan)  # noqa: E731
    syn_scores = test.synthetic_scores_ if test is not None else nan(len(synthetic))
    ref_scores = test.real_scores_ if test is not None else nan(len(reference))
    held_scores = test.heldout_scores_ if test is not None and len(heldout) else nan(len(heldout))
    check = memorisation and len(unit.heldout) >= 2 and len(unit.reference) >= 2
    copies = check_copies(unit.synthetic, unit.reference, unit.heldout, qc.copy_percentile, qc.copy_max_shift) if check else None
    set_level, duplicate_columns = _set_level(unit, qc, cfg.seed + unit.fold, reference, synthetic, pixel_columns)
    base = {"fold": unit.fold, "class": unit.name, "label": unit.key}
    rows = []
    for i, (sample_id, file) in enumerate(zip(unit.pool["sample_id"], unit.pool["file"])):
        copy = (None, None, None, None) if copies is None else (
            round(float(copies.distance[i]), 6), round(float(copies.ratio[i]), 6),
            unit.reference_ids[int(copies.nearest_train[i])], bool(copies.flagged[i]),
        )  # fmt: skip
        rows.append(
            {**base, "source": "synthetic", "role": "synthetic", "id": str(sample_id), "file": str(file), "c2st_score": _round(syn_scores[i]), **dict(zip(COPY_COLUMNS, copy)), **duplicate_columns[i]}
        )
    for role, ids, scores in (("fit", unit.reference_ids, ref_scores), ("heldout", unit.heldout_ids, held_scores)):
        rows += [{**base, "source": "real", "role": role, "id": str(i), "file": None, "c2st_score": _round(s)} for i, s in zip(ids, scores)]
    results = {
        "fold": unit.fold,
        "class": unit.name,
        "label": unit.key,
        "n_synthetic": len(synthetic),
        "n_reference": len(reference),
        "n_heldout": len(heldout),
        "c2st": {**c2st_summary(test), "n_real": len(reference), "n_synthetic": len(synthetic)},
        "c2st_c": None if test is None else [float(c) for c in test.chosen_c_] or float(test.c),
        "copy_threshold": None if copies is None else round(float(copies.threshold), 6),
        **set_level,
    }
    return [[r.get(c) for c in SCORE_COLUMNS] for r in rows], results, UnitFeatures(reference, synthetic, heldout, pixel_columns)


def _set_level(unit, qc, seed: int, reference: np.ndarray, synthetic: np.ndarray, pixel_columns: int | None) -> tuple[dict, list[dict]]:
    """The unit's set-level checks: the kernel MMD test (reference vs pool) and duplicates within the pool.

    Returns (results entries ``mmd``, ``n_duplicates``, ``dedup_threshold``; per synthetic row its
    :data:`DUPLICATE_COLUMNS`, empty with ``qc.dedup`` off).
    """
    results = {"mmd": mmd_summary(configured_mmd(reference, synthetic, qc, seed, pixel_columns))}
    if not qc.dedup:
        return {**results, "n_duplicates": None, "dedup_threshold": None}, [{}] * len(synthetic)
    found = find_duplicates(unit.synthetic, qc.dedup_threshold, qc.copy_max_shift)
    ids = [str(i) for i in unit.pool["sample_id"]]
    columns = [{"dup_of": ids[d] if d >= 0 else None, "duplicate_flagged": bool(d >= 0)} for d in found.dup_of]
    return {**results, "n_duplicates": int(found.flagged.sum()), "dedup_threshold": qc.dedup_threshold}, columns


def _round(value: float) -> float:
    return round(float(value), 6)


def decide(table, threshold, memorisation: bool, dedup: bool = True):
    """The filter's decision over stored scores: a ``reasons`` column per synthetic row ('' = kept).

    ``table``: the synthetic rows of a score table. An image is rejected as ``c2st`` when its
    p(synthetic) exceeds ``threshold`` (one number, or one per row: e.g. each unit's conformal
    threshold), as ``copy`` when the copy check flagged it (only with ``memorisation``), as
    ``duplicate`` when it repeats another pool image (only with ``dedup``; :func:`duplicate_reasons`);
    reasons are joined with ``+``. Returns a copy with ``reasons``.
    """
    out = table.copy()
    too_synthetic = out["c2st_score"].to_numpy(float) > np.asarray(threshold, dtype=float)
    copied = out["copy_flagged"].fillna(False).astype(bool).to_numpy() if memorisation else np.zeros(len(out), bool)
    out["reasons"] = ["+".join(r for r, hit in (("c2st", s), ("copy", c)) if hit) for s, c in zip(too_synthetic, copied)]
    if dedup:
        out["reasons"] = ["+".join(r for r in (before, "duplicate" if hit else "") if r) for before, hit in zip(out["reasons"], duplicate_reasons(out))]
    return out


def duplicate_reasons(table) -> np.ndarray:
    """(n,) bool: the rows of ``table`` (synthetic rows with ``reasons`` so far) rejected as duplicates.

    A duplicate group (per fold and class: a first image and the rows whose ``dup_of`` names it) keeps
    one image — its first member that no other reason rejects, or the first member when every one is
    rejected anyway — and rejects the rest. A table without the dedup columns (older scores, or
    ``qc.dedup`` off) has no duplicates.
    """
    if "dup_of" not in table.columns:
        return np.zeros(len(table), bool)
    dup_of = table["dup_of"].astype(object).where(table["dup_of"].notna(), None).tolist()
    ids = table["id"].astype(str).tolist()
    groups = [(f, lab, d if d is not None else i) for f, lab, d, i in zip(table["fold"], table["label"], dup_of, ids)]
    members: dict = {}
    for row, group in enumerate(groups):
        members.setdefault(group, []).append(row)
    hit = np.zeros(len(table), bool)
    for rows in members.values():
        if len(rows) > 1:
            clean = [r for r in rows if not table["reasons"].iloc[r]]
            hit[rows] = True
            hit[clean[0] if clean else rows[0]] = False
    return hit


AFTER_CHECK = "kept synthetic images vs the fold's held-out (validation) real images of the class, which neither fitted the scores nor chose the kept set; two-sided"


def after_check(features: UnitFeatures, kept_mask: np.ndarray, qc, seed: int, fold: int) -> dict:
    """A fresh C2ST (new folds) of the kept synthetic images vs the unit's *evaluation* real images.

    The evaluation images are the unit's held-out real images (``features.heldout``): they took no
    part in fitting the scores or choosing the kept set. The reference images that chose the kept
    set would grade it too kindly (issue 15: AUC 0.24 against 0.60 with fresh real images in a
    simulation). Reported two-sided: an AUC well below 0.5 is an artefact, never success.
    """
    kept = features.synthetic[np.asarray(kept_mask, bool)]
    if not len(kept):
        return {**c2st_summary(None), "note": "no image kept"}
    test = fit_c2st(features.heldout, kept, qc, seed + fold + AFTER_SEED_OFFSET, features.pixel_columns)
    if test is None:
        return {**c2st_summary(None), "note": f"too few images for a C2ST ({len(features.heldout)} held-out real, {len(kept)} kept)"}
    summary = {**c2st_summary(test), "p_value_two_sided": two_sided_p_value(test), "n_real": len(features.heldout), "n_synthetic": len(kept)}
    statistic = getattr(test, "permutation_statistic_", None)  # the exact test's own AUC (label-free C, uncalibrated)
    if statistic is not None and statistic < 0.5 and summary["p_value_two_sided"] is not None and summary["p_value_two_sided"] <= 0.05:
        summary["note"] = f"the test statistic's AUC is {statistic:.2f}, well below 0.5: an artefact of the comparison, not evidence of realism"
    return summary


def calibration(table, unit: dict, qc) -> dict | None:
    """Reliability curve and ECE of one unit's stored scores as they are (``fit`` and synthetic rows, out of fold).

    Real images are weighted n_synthetic / n_real, as the equal-prior score assumes. None without
    scores of both groups. Nothing is re-fitted and no score changes: this shows how close the
    stored score is to calibrated.
    """
    rows = table[(table["fold"] == unit["fold"]) & (table["label"] == unit["label"]) & table["role"].isin(["synthetic", "fit"])]
    scores = rows["c2st_score"].to_numpy(float)
    labels = (rows["role"] == "synthetic").to_numpy(int)
    ok = np.isfinite(scores)
    scores, labels = scores[ok], labels[ok]
    if not labels.any() or labels.all():
        return None
    if qc.classifier == "logreg":
        how = "C chosen per fold by inner CV on log-loss (one-SE rule)" if qc.c2st_c == "auto" else f"L2 logistic regression at qc.c2st_c = {qc.c2st_c:g}"
        what = f"calibrated: {how}, cross-fitted Platt scaling, out of fold, equal-prior correction"
    else:
        what = f"calibrated: {qc.classifier} with cross-fitted Platt scaling, out of fold, equal-prior correction"
    return {**reliability(scores, labels), "n_real": int((labels == 0).sum()), "n_synthetic": int(labels.sum()), "score": what}


def diversity(features: UnitFeatures, kept_mask: np.ndarray, qc, seed: int, fold: int) -> dict | None:
    """Density/coverage of pool, kept images and same-size random subsets against the reference images.

    Features: the C2ST's label-free transform (standardise; PCA of the pixel block to
    ``qc.pca_components``) fitted on the reference images, so 1,024 pixel columns do not swamp
    the spectrum and histogram in the distances. See :func:`ctqc.qc.diversity.diversity_check`.
    """
    n_components = min(qc.pca_components, len(features.reference) - 1) if qc.pca_components and features.pixel_columns else None
    transform = make_classifier("logreg", seed + fold, n_components, features.pixel_columns if n_components else None)[:-1]
    real = transform.fit_transform(features.reference)
    return diversity_check(real, transform.transform(features.synthetic), kept_mask, seed=seed + fold)


def _embedding_rows(methods: list[str], seed: int, unit, features: UnitFeatures, results: dict):
    """t-SNE / UMAP coordinates of one fold and class: reference real images and the synthetic pool.

    A method skipped for too few images leaves its columns empty and a note in ``results["notes"]``.
    """
    import pandas as pd

    table = pd.DataFrame(
        {
            "id": list(unit.reference_ids) + unit.pool["sample_id"].astype(str).tolist(),
            "source": ["real"] * len(unit.reference_ids) + ["synthetic"] * len(unit.pool),
            "class": unit.name,
            "fold": unit.fold,
        }
    )
    stacked = np.vstack([features.reference, features.synthetic])
    for method in methods:
        coords = embed(stacked, method, seed=seed + unit.fold)
        if coords is None:
            coords = np.full((len(stacked), 2), np.nan)
            results.setdefault("notes", []).append(skip_note(method, len(stacked), unit.label))
        table[f"{method}_x"], table[f"{method}_y"] = coords[:, 0].round(5), coords[:, 1].round(5)
    return table


def save_features(path, features: dict[str, UnitFeatures]) -> None:
    """All units' C2ST feature matrices in one ``.npz`` (atomic)."""
    arrays = {}
    for n, (label, f) in enumerate(features.items()):
        arrays.update({f"u{n}_reference": f.reference, f"u{n}_synthetic": f.synthetic, f"u{n}_heldout": f.heldout})
        arrays[f"u{n}_meta"] = np.array([label, "" if f.pixel_columns is None else str(f.pixel_columns)])
    with atomic.atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)


def load_features(path) -> dict[str, UnitFeatures]:
    """What :func:`save_features` wrote, by unit label."""
    out = {}
    with np.load(path, allow_pickle=False) as npz:
        n = 0
        while f"u{n}_meta" in npz:
            label, columns = (str(v) for v in npz[f"u{n}_meta"])
            out[label] = UnitFeatures(npz[f"u{n}_reference"], npz[f"u{n}_synthetic"], npz[f"u{n}_heldout"], int(columns) if columns else None)
            n += 1
    return out
