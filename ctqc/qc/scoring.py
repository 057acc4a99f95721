"""Score once, decide cheaply: per-image C2ST and copy-check scores of every QC unit.

:func:`score_units` does the expensive work once per fold × class: feature
extraction, the classifier two-sample test (:mod:`ctqc.qc.c2st`) fitted on the
unit's *reference* real images (the GAN's own training images) vs its synthetic
pool, the kernel MMD test on the same features (:mod:`ctqc.qc.mmd_two_sample`), the copy check
(:mod:`ctqc.qc.memorisation`) and duplicates within the pool (:mod:`ctqc.qc.dedup`). It returns a
:class:`ScoreSet`: one table row per image, synthetic and real, with each real
image's role —

- ``fit``: a reference image, used to fit the C2ST; its score is out of fold;
- ``heldout``: a held-out real image of the same class (a run's validation split),
  never used to fit; each scored per repeat by one fold model of the C2ST —

and, for the frozen filter's check, rows of source and role ``fresh``: synthetic images
the filter never selects from, scored by the fitted fold models like held-out images —
new draws from the fold's generator when the unit has them (``QCUnit.fresh``), else
(bring-your-own folders, imported pools) the second half of the pool at random, with
a second C2ST fitted on the first half only (:func:`_fresh_scores`) —

plus each image's ``label_prob`` (:mod:`ctqc.qc.label_scores`: p(its class) from a classifier fitted on
the fold's real training images; synthetic and held-out rows), the global results per unit and the C2ST feature matrices, so that thresholds
(:func:`decide`), the after-filter check (:func:`after_check`), the calibration view
(:func:`calibration`) and the diversity view (:func:`diversity`) need no re-fit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from ctqc import atomic
from ctqc.qc.c2st import c2st_summary, fit_c2st, two_sided_p_value
from ctqc.qc.calibration import reliability
from ctqc.qc.classifiers import feature_transform
from ctqc.qc.dedup import find_duplicates
from ctqc.qc.diversity import diversity_check
from ctqc.qc.domain import encoders_if_used
from ctqc.qc.embeddings import embed, skip_note
from ctqc.qc.features import extract, feature_matrix
from ctqc.qc.fidelity_metrics import per_sample_authenticity
from ctqc.qc.label_scores import add_label_probabilities
from ctqc.qc.memorisation import CopyCheck, check_copies
from ctqc.qc.mmd_two_sample import configured_mmd, mmd_summary
from ctqc.qc.strategies import decide_strategy, flags

COPY_COLUMNS = ["copy_distance", "copy_ratio", "nearest_train_id", "copy_flagged"]
DUPLICATE_COLUMNS = ["dup_of", "duplicate_flagged"]  # synthetic rows: the id of the group's first image; flagged = not that image
SCORE_COLUMNS = ["fold", "class", "label", "source", "role", "id", "file", "c2st_score", "authentic", "label_prob", *COPY_COLUMNS, *DUPLICATE_COLUMNS]
AFTER_SEED_OFFSET = 7919  # the after-filter C2ST draws new folds: seed + fold + this
FRESH_SEED_OFFSET = 104729  # the split-half frozen check's split and C2ST: seed + fold + this


@dataclass
class UnitFeatures:
    """The C2ST feature matrices of one unit (rows in the order of the score table's rows)."""

    reference: np.ndarray  # n_reference × d
    synthetic: np.ndarray  # n_synthetic × d
    heldout: np.ndarray  # n_heldout × d
    pixel_columns: int | None  # the leading pixel block that PCA reduces (None: no pixel block)
    fresh: np.ndarray | None = None  # n_fresh × d: the frozen filter's fresh images (None: none)


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

    # {fold: encoder}; {} unless "domain" is used (by the C2ST, or by authenticity on the headline metric features)
    domain = encoders_if_used(units, [*cfg.qc.features, cfg.qc.metric_features[0]], cache, cfg.seed)
    rows, results, features, embedding_parts = [], {}, {}, []
    for unit in units:
        unit_rows, results[unit.label], features[unit.label] = _score_unit(unit, cfg, cache, memorisation, domain.get(unit.fold))
        rows += unit_rows
        if cfg.qc.embeddings:
            embedding_parts.append(_embedding_rows(cfg.qc.embeddings, cfg.seed, unit, features[unit.label], results[unit.label]))
    table = pd.DataFrame(rows, columns=SCORE_COLUMNS)
    add_label_probabilities(table, units, features, cfg.qc, cfg.seed, results)  # the label strategy's score (ctqc.qc.label_scores)
    embeddings = pd.concat(embedding_parts, ignore_index=True) if embedding_parts else None
    return ScoreSet(table=table, units=results, features=features, embeddings=embeddings)


def _score_unit(unit, cfg, cache, memorisation: bool, domain_weights=None):
    """(score rows, results, features) of one fold × class."""
    qc = cfg.qc
    reference, pixel_columns = feature_matrix(unit.reference, qc.features, cache, domain_weights)
    synthetic, _ = feature_matrix(unit.synthetic, qc.features, cache, domain_weights)
    heldout, _ = feature_matrix(unit.heldout, qc.features, cache, domain_weights) if len(unit.heldout) else (np.zeros((0, reference.shape[1])), None)
    fresh_images, fresh_ids, fresh_files, source = _fresh_pool(unit, cfg.seed)
    fresh = feature_matrix(fresh_images, qc.features, cache, domain_weights)[0] if len(fresh_ids) else np.zeros((0, reference.shape[1]))
    drawn = source == "generator"  # new draws are scored by the main C2ST's fold models, like held-out images
    extra = np.vstack([heldout, fresh]) if drawn else heldout
    test = fit_c2st(reference, synthetic, qc, cfg.seed + unit.fold, pixel_columns, heldout=extra if len(extra) else None)
    nan = lambda n: np.full(n, np.nan)  # noqa: E731
    syn_scores = test.synthetic_scores_ if test is not None else nan(len(synthetic))
    ref_scores = test.real_scores_ if test is not None else nan(len(reference))
    extra_scores = test.heldout_scores_ if test is not None and len(extra) else nan(len(extra))
    held_scores = extra_scores[: len(heldout)]
    fresh_scores = extra_scores[len(heldout) :] if drawn else _fresh_scores(reference, synthetic, fresh, unit, qc, cfg.seed, pixel_columns)
    authentic = _authenticity(unit, qc, cache, domain_weights)
    check = memorisation and len(unit.reference) >= 3
    copies = check_copies(unit.synthetic, unit.reference, unit.heldout, qc.copy_percentile, qc.copy_max_shift) if check else None
    fresh_copies = check_copies(fresh_images, unit.reference, None, qc.copy_percentile, qc.copy_max_shift) if check and len(fresh_ids) else None
    set_level, duplicate_columns = _set_level(unit, qc, cfg.seed + unit.fold, reference, synthetic, pixel_columns)
    base = {"fold": unit.fold, "class": unit.name, "label": unit.key}
    rows = []
    for i, (sample_id, file) in enumerate(zip(unit.pool["sample_id"], unit.pool["file"])):
        rows.append(
            {
                **base,
                "source": "synthetic",
                "role": "synthetic",
                "id": str(sample_id),
                "file": str(file),
                "c2st_score": _round(syn_scores[i]),
                "authentic": authentic[i],
                **_copy_columns(copies, i, unit.reference_ids),
                **duplicate_columns[i],
            }
        )
    for role, ids, scores in (("fit", unit.reference_ids, ref_scores), ("heldout", unit.heldout_ids, held_scores)):
        rows += [{**base, "source": "real", "role": role, "id": str(i), "file": None, "c2st_score": _round(s)} for i, s in zip(ids, scores)]
    for i, (sample_id, file) in enumerate(zip(fresh_ids, fresh_files)):
        rows.append({**base, "source": "fresh", "role": "fresh", "id": str(sample_id), "file": file, "c2st_score": _round(fresh_scores[i]), **_copy_columns(fresh_copies, i, unit.reference_ids)})
    results = {
        "fold": unit.fold,
        "class": unit.name,
        "label": unit.key,
        "n_synthetic": len(synthetic),
        "n_reference": len(reference),
        "n_heldout": len(heldout),
        "c2st": {**c2st_summary(test), "n_real": len(reference), "n_synthetic": len(synthetic)},
        "c2st_c": None if test is None else [float(c) for c in test.chosen_c_] or float(test.c),
        "c2st_uninformative_folds": None if test is None else [test.uninformative_folds_, test.n_fold_models_],
        "copy_threshold": None if copies is None else round(float(copies.threshold), 6),
        "fresh": {"source": source, "n": len(fresh_ids)},
        # the threshold is set by the training images alone; held-out images it would flag = its false-flag rate
        "copy_heldout_flagged": None if copies is None or not len(copies.heldout_flagged) else [int(copies.heldout_flagged.sum()), len(copies.heldout_flagged)],
        **set_level,
    }
    if test is not None and test.uninformative_folds_:
        results["notes"] = [
            f"in {test.uninformative_folds_} of {test.n_fold_models_} C2ST fold models the calibration found no signal (the inner cross-validation "
            "ranked real and synthetic images the wrong way round, as small samples do): their images score 0.5 and are not rejected as c2st"
        ]
    return [[r.get(c) for c in SCORE_COLUMNS] for r in rows], results, UnitFeatures(reference, synthetic, heldout, pixel_columns, fresh if len(fresh_ids) else None)


def _copy_columns(copies: CopyCheck | None, i: int, reference_ids: Sequence[str]) -> dict:
    """:data:`COPY_COLUMNS` of image ``i`` of a copy check, by name: the distance to its nearest training
    image and its ratio to the training images' median leave-one-out distance (6 decimals), that image's
    id, and whether it is flagged as a copy; all ``None`` when no copy check ran."""
    if copies is None:
        return dict.fromkeys(COPY_COLUMNS)
    return {
        "copy_distance": round(float(copies.distance[i]), 6),
        "copy_ratio": round(float(copies.ratio[i]), 6),
        "nearest_train_id": reference_ids[int(copies.nearest_train[i])],
        "copy_flagged": bool(copies.flagged[i]),
    }


def _fresh_pool(unit, seed: int) -> tuple:
    """(images, ids, files, source) of the frozen filter's fresh images for ``unit``.

    New draws from the fold's generator when the unit has them (``source`` "generator", files
    None); otherwise the second half of the pool, split at random (``source`` "split half", with
    their files), or nothing (``source`` None) when the pool holds fewer than 2 × :data:`MIN_HALF`.
    """
    if unit.fresh is not None and len(unit.fresh):
        return unit.fresh, tuple(unit.fresh_ids), (None,) * len(unit.fresh_ids), "generator"
    if len(unit.synthetic) < 2 * MIN_HALF:
        return None, (), (), None
    second = _second_half(len(unit.synthetic), seed + unit.fold)
    return unit.synthetic[second], tuple(str(unit.pool["sample_id"].iloc[i]) for i in second), tuple(str(unit.pool["file"].iloc[i]) for i in second), "split half"


MIN_HALF = 5  # the fewest synthetic images in each half of a split-half frozen check


def _second_half(n: int, seed: int) -> np.ndarray:
    """Indices (sorted) of the random half of ``n`` pool images that the split-half frozen check holds back."""
    order = np.random.default_rng(seed + FRESH_SEED_OFFSET).permutation(n)
    return np.sort(order[n // 2 :])


def _fresh_scores(reference, synthetic, fresh, unit, qc, seed: int, pixel_columns) -> np.ndarray:
    """Split half: p(synthetic) of the held-back half by a C2ST fitted on the other half only (NaN without one).

    The second C2ST sees the reference images and the first half of the pool; each held-back
    image is scored per repeat by one of its fold models, like a held-out image — so the frozen
    filter is applied to images that took no part in fitting it.
    """
    if not len(fresh):
        return np.zeros(0)
    first = np.setdiff1d(np.arange(len(synthetic)), _second_half(len(synthetic), seed + unit.fold))
    test = fit_c2st(reference, synthetic[first], qc, seed + unit.fold + FRESH_SEED_OFFSET, pixel_columns, heldout=fresh)
    return test.heldout_scores_ if test is not None else np.full(len(fresh), np.nan)


def _authenticity(unit, qc, cache, domain_weights) -> list[bool | None]:
    """Per synthetic image: authentic (True) or a likely copy (False) on the headline metric features (Alaa et al. 2022).

    Against the unit's reference images, by :func:`ctqc.qc.fidelity_metrics.per_sample_authenticity`; None
    for every image when there are fewer than two reference images.
    """
    if len(unit.reference) < 2 or len(unit.synthetic) == 0:
        return [None] * len(unit.synthetic)
    name = qc.metric_features[0]
    synthetic, reference = (extract(name, x, cache, domain_weights, qc.weights) for x in (unit.synthetic, unit.reference))
    return [bool(a) for a in per_sample_authenticity(synthetic, reference)]


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


def decide(table, threshold, memorisation: bool, inauthentic: bool = False, dedup: bool = False):
    """The realism strategy's decision over stored scores: a ``reasons`` column per synthetic row ('' = kept).

    ``table``: the synthetic rows of a score table. An image is rejected as ``c2st`` when its
    p(synthetic) exceeds ``threshold`` (one number, or one per row: e.g. each unit's conformal
    threshold), as ``copy`` when the copy check flagged it (only with ``memorisation``), with
    ``inauthentic`` as ``inauthentic`` when its ``authentic`` score is False (``qc.reject_inauthentic``),
    and with ``dedup`` as ``duplicate`` when it repeats another pool image
    (:func:`ctqc.qc.dedup.duplicate_reasons`); reasons are joined with ``+``. The rules live in
    :mod:`ctqc.qc.strategies`. Returns a copy with ``reasons``.
    """
    return decide_strategy(table, "realism", flags(table, threshold, 0.0, memorisation, inauthentic), dedup=dedup)


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


FROZEN_CHECK = "the filter frozen (same fitted models, same threshold, same copy rule) applied to fresh synthetic images that took no part in fitting or choosing it; its kept images vs the fold's held-out real images, two-sided"


def frozen_check(table, unit: dict, features: UnitFeatures, threshold: float | None, memorisation: bool, qc, seed: int) -> dict | None:
    """The frozen filter on the unit's fresh images: what it keeps, and that kept set vs the evaluation images.

    ``table``: the score table (the unit's ``fresh`` rows); ``threshold``: the unit's p(synthetic)
    threshold (None = no C2ST rejection). The kept fresh images are tested like the selection's
    kept set (:func:`after_check`: a new C2ST against the held-out real images, two-sided), and
    their density/coverage against the held-out images is compared with same-size random subsets
    of the fresh pool (:func:`diversity`). None when the unit has no fresh images.
    """
    rows = table[(table["fold"] == unit["fold"]) & (table["label"] == unit["label"]) & (table["role"] == "fresh")]
    if rows.empty or features.fresh is None or len(features.fresh) != len(rows):
        return None
    kept = (decide(rows, 1.0 if threshold is None else threshold, memorisation, qc.reject_inauthentic)["reasons"] == "").to_numpy()
    fresh = UnitFeatures(features.reference, features.fresh, features.heldout, features.pixel_columns)
    against_evaluation = UnitFeatures(features.heldout, features.fresh, features.heldout, features.pixel_columns)
    return {
        "source": unit.get("fresh", {}).get("source"),
        "n": len(rows),
        "kept": int(kept.sum()),
        "c2st_after": after_check(fresh, kept, qc, seed, unit["fold"]),
        "diversity_vs_heldout": diversity(against_evaluation, kept, qc, seed, unit["fold"]),
    }


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

    Features: standardised; a pixel block, when there is one, PCA-reduced to
    ``qc.pca_components`` (without one, unlike the C2ST, no PCA); fitted on the reference images, so 1,024 pixel columns do not swamp
    the spectrum and histogram in the distances. See :func:`ctqc.qc.diversity.diversity_check`.
    """
    transform = feature_transform(seed + fold, len(features.reference), qc.pca_components, features.pixel_columns)
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
        if f.fresh is not None:
            arrays[f"u{n}_fresh"] = f.fresh
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
            fresh = npz[f"u{n}_fresh"] if f"u{n}_fresh" in npz else None
            out[label] = UnitFeatures(npz[f"u{n}_reference"], npz[f"u{n}_synthetic"], npz[f"u{n}_heldout"], int(columns) if columns else None, fresh)
            n += 1
    return out
