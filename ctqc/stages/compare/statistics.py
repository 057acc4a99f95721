"""The comparison's statistics: per-arm means with 95 % t-intervals and paired tests (``summary.json``).

Every metric is a fraction in [0, 1]. An arm's figure is the mean over its
folds × seeds; a paired comparison pairs the trainings of two arms that share
fold and seed (common random numbers) and tests the differences with a Wilcoxon
signed-rank or a paired-bootstrap test (``compare.test``), via
:mod:`classify.stats`.
"""

from __future__ import annotations

from classify.stats import mean_ci, paired_difference
from ctqc import paper
from ctqc.config import Config
from ctqc.stages.compare.arms import class_keys
from ctqc.stages.compare.jobs import METRICS

#: Comparisons beyond "every arm vs original": does filtering beat no filtering, and beat a random subset?
EXTRA_COMPARISONS = (("original+filtered", "original+synthetic"), ("original+filtered", "original+random-subset"))


def comparisons_for(arms: list[str]) -> list[tuple[str, str]]:
    """(arm, reference) pairs: every arm vs original, and the filtered arm vs its two controls."""
    pairs = [(arm, "original") for arm in arms if arm != "original" and "original" in arms]
    pairs += [(a, b) for a, b in EXTRA_COMPARISONS if a in arms and b in arms]
    return pairs


def summarise(results, cfg: Config, arms: list[str], skipped: dict, seeds: list[int], folds: list[int]) -> dict:
    """summary.json's content from ``results`` (pandas.DataFrame, one row per arm × fold × seed)."""
    arm_stats = {}
    for arm in arms:
        rows = results[results["arm"] == arm]
        arm_stats[arm] = {m: mean_ci(rows[m].to_numpy()) for m in METRICS}
    comparisons = []
    for arm, ref in comparisons_for(arms):
        a = results[results["arm"] == arm].set_index(["fold", "seed"])
        b = results[results["arm"] == ref].set_index(["fold", "seed"])
        common = a.index.intersection(b.index).sort_values()
        for metric in METRICS:
            test = paired_difference(
                a.loc[common, metric].to_numpy(), b.loc[common, metric].to_numpy(), cfg.compare.test, n_bootstrap=cfg.compare.n_bootstrap, seed=cfg.seed
            )
            comparisons.append({"arm": arm, "reference": ref, "metric": metric, **test})
    notes = [paper.NOTE]
    n_runs = len(folds) * len(seeds)
    if n_runs == 1:
        notes.append("one fold × one seed: no confidence intervals or tests possible; use --seeds 3 or more")
    return {
        "metrics": list(METRICS),
        "arms": arm_stats,
        "comparisons": comparisons,
        "skipped": skipped,
        "paper": {arm: dict(v) for arm, v in paper.TABLE1.items()},
        "seeds": seeds,
        "folds": folds,
        "config": {"classifier": cfg.classifier.model_dump(mode="json"), "compare": cfg.compare.model_dump(mode="json")},
        "ci": "95 % two-sided t-interval of the mean over folds × seeds",
        "paired_by": ["fold", "seed"],
        "test": cfg.compare.test,
        "positive_class": cfg.data.classes[class_keys(cfg)[-1]] if len(cfg.data.classes) == 2 else None,
        "evaluated_on": "each fold's real held-out test images; epochs chosen on its real validation images",
        "notes": notes,
    }
