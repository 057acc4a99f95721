"""The comparison's statistics (``summary.json``): image-level estimates, intervals, tests and verdicts.

Every metric is a fraction in [0, 1], differences in [-1, 1]. The headline numbers
come from the per-image test predictions (:mod:`classify.verdicts`): each arm's
correctness per test image and replicate — a replicate is one seed (holdout) or one
(repeat, seed) whose K fold models' out-of-fold predictions are pooled so every real
image is tested once — averaged over replicates, then a class-stratified bootstrap
over images shared by all arms (paired), a sign-flip permutation test over images,
the minimum detectable difference, and one verdict per comparison. Balanced
accuracy carries the pre-specified primary comparisons (fixed sequence:
:data:`PRIMARY`); every other comparison is secondary (Holm). ROC AUC (binary
tasks) has an image-level estimate and bootstrap interval per arm
(:func:`classify.verdicts.roc_auc_interval`) but no image-level test yet: its
comparisons stay "not estimable" with the per-training figures beside them.

Beside each image-level figure, ``over_trainings`` keeps the earlier per-training
summary (mean and t-interval over folds × seeds; Wilcoxon or paired bootstrap over
trainings, ``compare.test``, via :mod:`classify.stats`): it measures optimisation
noise on fixed test images only and is a secondary display.
"""

from __future__ import annotations

import numpy as np

from classify import decisions, verdicts
from classify.stats import mean_ci, paired_difference
from ctqc import paper
from ctqc.config import FILTER_STRATEGIES, Config, strategy_arm
from ctqc.stages.compare.arms import class_keys
from ctqc.stages.compare.jobs import METRICS, unit_key

#: The pre-specified primary comparisons, in their fixed testing order (issue 16 item 4).
PRIMARY = (("original+filtered", "original+random-subset"), ("original+filtered", "original+synthetic"))
#: The metric of the primary comparisons and of the verdict lines.
HEADLINE = "balanced_accuracy"
#: Significance level of every verdict.
ALPHA = 0.05

#: Comparisons beyond "every arm vs original": does filtering beat no filtering, and beat a random subset?
#: Do new (synthetic) images beat as many repeated real ones?
EXTRA_COMPARISONS = (
    ("original+filtered", "original+synthetic"),
    ("original+filtered", "original+random-subset"),
    ("original+synthetic", "original+duplicated"),
)


def comparisons_for(arms: list[str]) -> list[tuple[str, str]]:
    """(arm, reference) pairs: every arm vs original, the filtered arm vs its two controls, and the unfiltered pool vs duplicated reals.

    Each further filter strategy's filtered arm is compared with its own random control and the
    unfiltered pool too (secondary: the primary comparisons are the default strategy's).
    """
    pairs = [(arm, "original") for arm in arms if arm != "original" and "original" in arms]
    pairs += [(a, b) for a, b in EXTRA_COMPARISONS if a in arms and b in arms]
    for strategy in FILTER_STRATEGIES:
        filtered, control = strategy_arm("original+filtered", strategy), strategy_arm("original+random-subset", strategy)
        pairs += [(filtered, b) for b in ("original+synthetic", control) if filtered in arms and b in arms]
    return pairs


def replicates(predictions: dict[str, dict] | None, arm: str, folds: list[int], seeds: list[int], cfg: Config) -> dict[tuple[int, int], dict[str, tuple[int, bool]]]:
    """Per (repeat, seed) of ``arm``: {image id: (label, correct, probability of the positive class)} pooled over the repeat's folds.

    ``predictions``: unit key → the unit's ``predictions`` ({"id", "label", "pred", ...}).
    A replicate is kept only when every fold of its repeat has its unit (so every
    image of the pooled test set is predicted exactly once); holdout: repeat 0 = fold 0.
    """
    if not predictions:
        return {}
    k = cfg.split.folds if cfg.split.scheme == "kfold" else 1
    out = {}
    for repeat in sorted({f // k for f in folds}):
        members = [f for f in folds if f // k == repeat]
        for seed in seeds:
            units = [predictions.get(unit_key(arm, f, seed)) for f in members]
            if any(u is None for u in units):
                continue
            pooled: dict[str, tuple[int, bool, float]] = {}
            for u in units:
                probs = u.get("prob") or [np.nan] * len(u["id"])
                for i, lab, pred, prob in zip(u["id"], u["label"], u["pred"], probs):
                    pooled[str(i)] = (int(lab), int(lab) == int(pred), float(prob))
            out[(repeat, seed)] = pooled
    return out


def correctness(reps: dict, keys: list[int], replicate_keys: list, image_ids: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """``correct (R, N)`` (0/1) and ``labels (N,)`` as class indices into ``keys`` (binary: 1 = positive)."""
    correct = np.array([[reps[r][i][1] for i in image_ids] for r in replicate_keys], dtype=np.float64)
    labels = np.searchsorted(np.array(keys), [reps[replicate_keys[0]][i][0] for i in image_ids])
    return correct, labels


def _common(rep_sets: list[dict]) -> tuple[list, list[str]]:
    """The replicates all arms have, and the images every one of those replicates predicts (sorted)."""
    keys = sorted(set.intersection(*(set(r) for r in rep_sets))) if rep_sets else []
    if not keys:
        return [], []
    ids = set.intersection(*(set(r[k]) for r in rep_sets for k in keys))
    return keys, sorted(ids)


def _image_level_auc(reps: dict, keys: list[int], seed: int) -> dict | None:
    """The binary ROC AUC of one arm at the image level (:func:`classify.verdicts.roc_auc_interval`), or None."""
    rk, ids = _common([reps])
    if not ids or len(keys) != 2:
        return None
    scores = np.array([[reps[r][i][2] for i in ids] for r in rk], dtype=np.float64)
    labels = np.searchsorted(np.array(keys), [reps[rk[0]][i][0] for i in ids])
    try:
        est = verdicts.roc_auc_interval(scores, labels, seed=seed)
    except ValueError:  # a class absent from the test images, or no probabilities (an older run)
        return None
    return {
        "mean": est["estimate"], "ci_low": est["ci_low"], "ci_high": est["ci_high"], "se": est["se"], "n_images": len(ids),
        "n_replicates": len(rk), "interval": verdicts.AUC_INTERVAL_NOTE, "estimand": "ROC AUC of the trained pipeline on images like these, averaged over training seeds",
    }  # fmt: skip


def _image_level_arm(reps: dict, keys: list[int], metric: str, seed: int) -> dict | None:
    if metric == "roc_auc":
        return _image_level_auc(reps, keys, seed)
    rk, ids = _common([reps])
    if not ids:
        return None
    correct, labels = correctness(reps, keys, rk, ids)
    try:
        est = verdicts.estimate_arms(correct[None], labels, metric, seed=seed)
    except ValueError:  # e.g. sensitivity of a multi-class task, or a class absent from the test images
        return None
    return {
        "mean": float(est["estimate"][0]), "ci_low": float(est["ci_low"][0]), "ci_high": float(est["ci_high"][0]),
        "se": float(est["se"][0]), "seed_sd": float(est["seed_sd"][0]), "n_images": len(ids), "n_replicates": len(rk),
        "interval": verdicts.INTERVAL_NOTE, "estimand": verdicts.estimand(metric),
    }  # fmt: skip


def _image_level_difference(reps_a: dict, reps_b: dict, keys: list[int], metric: str, seed: int) -> dict:
    rk, ids = _common([reps_a, reps_b])
    if not ids:
        return decisions.verdict(None, None, None, metric, alpha=ALPHA)
    a, labels = correctness(reps_a, keys, rk, ids)
    b, _ = correctness(reps_b, keys, rk, ids)
    try:
        return decisions.verdict(a, b, labels, metric, alpha=ALPHA, seed=seed)
    except ValueError as exc:
        out = decisions.verdict(None, None, None, metric, alpha=ALPHA)
        out["why"] = str(exc)
        return out


def summarise(results, cfg: Config, arms: list[str], skipped: dict, seeds: list[int], folds: list[int], predictions: dict[str, dict] | None = None) -> dict:
    """summary.json's content from ``results`` (pandas.DataFrame, one row per arm × fold × seed) and the units' per-image ``predictions``.

    ``predictions``: unit key (``<arm>__f<fold>__s<seed>``) → {"id", "label", "pred", ...}
    lists. Without them (an older run) every comparison is "not estimable" and the
    per-arm figures are the per-training means.
    """
    keys = class_keys(cfg)
    reps = {arm: replicates(predictions, arm, folds, seeds, cfg) for arm in arms}
    arm_stats: dict[str, dict] = {}
    degenerate: dict[str, int] = {}  # trainings that predicted one class for every validation or test image
    for arm in arms:
        rows = results[results["arm"] == arm]
        arm_stats[arm] = {}
        for m in METRICS:
            over = mean_ci(rows[m].to_numpy(), bounds=(0.0, 1.0))
            image = _image_level_arm(reps[arm], keys, m, cfg.seed)
            if image is None:
                note = "over trainings only (folds × seeds): test images are not resampled"
                arm_stats[arm][m] = {**over, "interval": note, "over_trainings": over}
            else:
                arm_stats[arm][m] = {**image, "n": over["n"], "over_trainings": over}
        degenerate[arm] = int(rows["degenerate"].sum()) if "degenerate" in rows else 0
    comparisons = []
    for metric in METRICS:
        family = []
        for arm, ref in comparisons_for(arms):
            a = results[results["arm"] == arm].set_index(["fold", "seed"])
            b = results[results["arm"] == ref].set_index(["fold", "seed"])
            common = a.index.intersection(b.index).sort_values()
            over = paired_difference(a.loc[common, metric].to_numpy(), b.loc[common, metric].to_numpy(), cfg.compare.test, n_bootstrap=cfg.compare.n_bootstrap, seed=cfg.seed)
            if metric in verdicts.METRICS:
                image = _image_level_difference(reps[arm], reps[ref], keys, metric, cfg.seed)
            else:
                image = decisions.verdict(None, None, None, metric, alpha=ALPHA)
                image["why"] = "no image-level method for ROC AUC yet: see over_trainings"
            c = {"arm": arm, "reference": ref, "metric": metric, **image, "n_pairs": over["n_pairs"], "over_trainings": over}
            c["mean_diff"] = c["estimate"]  # the name earlier readers of summary.json use
            family.append(c)
        decisions.adjust(family, PRIMARY if metric == HEADLINE else (), ALPHA)
        for c in family:
            c["line"] = decisions.describe(c)
        comparisons += family
    sensitivity = _without_degenerate(results, cfg, arms, reps, keys, folds)
    notes = [paper.NOTE]
    if not predictions:
        notes.append("no per-image predictions: image-level intervals, tests and verdicts are not estimable")
    n_runs = len(folds) * len(seeds)
    if n_runs == 1:
        notes.append("one fold × one seed: no confidence intervals or tests possible; use --seeds 3 or more")
    return {
        "metrics": list(METRICS),
        "arms": arm_stats,
        "degenerate_trainings": degenerate,
        "comparisons": comparisons,
        "skipped": skipped,
        "paper": {arm: dict(v) for arm, v in paper.TABLE1.items()},
        "seeds": seeds,
        "folds": folds,
        "config": {"classifier": cfg.classifier.model_dump(mode="json"), "compare": cfg.compare.model_dump(mode="json")},
        "ci": f"{verdicts.INTERVAL_NOTE}; ROC AUC: {verdicts.AUC_INTERVAL_NOTE}; over_trainings: 95 % two-sided t-interval of the mean over folds × seeds",
        "estimand": verdicts.estimand(HEADLINE),
        "primary": [list(p) for p in PRIMARY if p[0] in arms and p[1] in arms],
        "alpha": ALPHA,
        "paired_by": ["test image", "fold", "seed"],
        "test": "paired sign-flip permutation over images (seed-averaged per-image differences)",
        "test_over_trainings": cfg.compare.test,
        "replicates": "one per seed (holdout) or per (repeat, seed) with the folds' out-of-fold predictions pooled (k-fold)",
        "positive_class": cfg.data.classes[class_keys(cfg)[-1]] if len(cfg.data.classes) == 2 else None,
        "evaluated_on": "each fold's real held-out test images; epochs chosen on its real validation images",
        "notes": notes,
        "sensitivity": sensitivity,
    }


#: How the sensitivity analysis leaves degenerate trainings out.
SENSITIVITY_RULE = "a replicate (seed, or k-fold repeat × seed) is left out of a comparison when a training of either arm in it predicted one class for every validation or test image"


def _without_degenerate(results, cfg: Config, arms: list[str], reps: dict, keys: list[int], folds: list[int]) -> dict | None:
    """The headline comparisons again without the degenerate trainings' replicates; ``None`` when there are none."""
    if "degenerate" not in results or not results["degenerate"].any():
        return None
    k = cfg.split.folds if cfg.split.scheme == "kfold" else 1
    bad = results[results["degenerate"].astype(bool)]
    dropped = {arm: {(int(f) // k, int(s)) for f, s in zip(bad.loc[bad["arm"] == arm, "fold"], bad.loc[bad["arm"] == arm, "seed"])} for arm in arms}
    family = []
    for arm, ref in comparisons_for(arms):
        gone = dropped[arm] | dropped[ref]
        keep_a = {r: v for r, v in reps[arm].items() if r not in gone}
        keep_b = {r: v for r, v in reps[ref].items() if r not in gone}
        c = {"arm": arm, "reference": ref, "metric": HEADLINE, **_image_level_difference(keep_a, keep_b, keys, HEADLINE, cfg.seed)}
        if reps[arm] and reps[ref] and not (set(keep_a) & set(keep_b)):
            c["why"] = "every replicate holds a degenerate training of one of the two arms"
        c["mean_diff"] = c["estimate"]
        family.append(c)
    decisions.adjust(family, PRIMARY, ALPHA)
    for c in family:
        c["line"] = decisions.describe(c)
    return {"excluded": {arm: int((bad["arm"] == arm).sum()) for arm in arms}, "rule": SENSITIVITY_RULE, "comparisons": family}
