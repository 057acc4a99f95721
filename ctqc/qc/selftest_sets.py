"""QC self-test part (d): set-level defects, which change the *set* rather than each image.

Every defect of part (b) moves each image the same way (a mean shift in the features). These do
not: they remove diversity, which a strongly regularised linear C2ST barely sees. Over
:data:`SET_REPEATS` random splits of the development images into a reference half (the "training
images") and a held-out half:

- **reduced diversity** — the synthetic set is :data:`N_DISTINCT` held-out images plus small
  foreground noise (σ = :data:`DIVERSITY_NOISE`), repeated to the held-out half's size;
- **duplicated images** — half the set is genuine held-out images, the other half exact
  duplicates of :data:`N_DISTINCT` of them (a pool with repeats);
- **typical images** (recorded, not judged) — the most central half of the held-out half (nearest
  the reference centroid in the MMD's features): a narrower set with no image repeated, what a
  filter that keeps "average" images produces (issue 15);
- **null** — the genuine held-out half itself.

Each set is tested against the reference half by the global tests: the kernel MMD
(:mod:`ctqc.qc.mmd_two_sample`; B = ``qc.n_permutations``, at least :data:`MMD_PERMUTATIONS`, so that p < 0.05 is
reachable whatever the preset: permuting a precomputed kernel costs milliseconds) and, for comparison, the linear C2ST's permutation
test (one repeat of the configured C2ST; B = the self-test's null permutations). Criterion: the
MMD detects each defect (p < 0.05) in ≥ 90 % of the splits, and rejects the null in at most
:data:`NULL_REJECTION_MAX` of them (with 10 splits at a true 5 % rate, three or more rejections
happen with probability 0.012). The C2ST's detection rates, and both tests' on the typical
images, are recorded, not judged: they are the grounds for the choice of the MMD
(docs/qc-and-filtering.md).

**Dedup rule** (:mod:`ctqc.qc.dedup`, ``qc.dedup_threshold``): in each split the duplicated set,
and the same set with near duplicates (σ = :data:`NEAR_NOISE` noise and a 1-px shift) instead of
exact ones, must have ≥ 95 % of their duplicates flagged, while ≤ 5 % of the genuine held-out half
(the null set, which holds no duplicates) are.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ctqc.config import QCConfig
from ctqc.qc.c2st import configured_c2st
from ctqc.qc.dedup import find_duplicates
from ctqc.qc.features import feature_matrix
from ctqc.qc.mmd_two_sample import configured_mmd, mmd_features
from ctqc.qc.pixels import head_mask

SET_REPEATS = 10  # random reference / held-out splits
N_DISTINCT = 5  # distinct images behind a low-diversity or duplicated set
DIVERSITY_NOISE = 0.01  # foreground noise SD of the reduced-diversity set ([-1, 1] units)
NEAR_NOISE = 0.02  # foreground noise SD of the near duplicates (plus a 1-px shift)
ALPHA = 0.05
MMD_PERMUTATIONS = 200  # the fewest the self-test's MMD uses (the smoke preset's 19 could never reach p < 0.05)
DETECTION_MIN = 0.9
NULL_REJECTION_MAX = 0.2
DEFECTS = ("reduced_diversity", "duplicated")  # judged: the MMD detects each in ≥ 90 % of splits
RECORDED = ("typical_images",)  # recorded for the comparison of the two tests


def _noisy(x: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    return (x + sigma * torch.randn(x.shape, generator=generator) * head_mask(x)).clamp(-1, 1)


def set_level(
    images: torch.Tensor,
    feats: np.ndarray,
    pixel_columns: int | None,
    qc: QCConfig,
    seed: int = 0,
    c2st_permutations: int = 100,
    domain_weights=None,
    repeats: int = SET_REPEATS,
    n_distinct: int = N_DISTINCT,
) -> dict:
    """Part (d) on development ``images`` (N×1×S×S in [-1, 1]) with their C2ST features ``feats`` (N × d); a JSON-able dict.

    ``pixel_columns``: the width of the features' pixel block (None without one). ``n_distinct``:
    the distinct images behind the defective sets (fewer = a grosser defect; bench/set_level.py varies it).
    """
    rng = np.random.default_rng(seed + 4_099)  # its own stream: parts (a)–(c) draw exactly as before
    gen = torch.Generator().manual_seed(seed + 4_099)
    one_repeat = qc.model_copy(update={"n_repeats": 1})  # the global p-value uses the first repeat's folds only
    n = len(images)
    mmd_p = {k: [] for k in ("null", *DEFECTS, *RECORDED)}
    c2st_p, c2st_auc = {k: [] for k in (*DEFECTS, *RECORDED)}, {k: [] for k in (*DEFECTS, *RECORDED)}
    dup_flagged = {"exact": [], "near": []}
    genuine_flagged, diversity_flagged = [], []
    for r in range(repeats):
        order = rng.permutation(n)
        ref, held = order[: n // 2], order[n // 2 :]
        m = len(held)
        k = min(n_distinct, m)
        half = m - m // 2  # genuine images in the duplicated set; the rest repeat its first k
        repeat_rows = np.arange(m // 2) % k
        diverse = _noisy(images[held[:k]][np.arange(m) % k], DIVERSITY_NOISE, gen)
        x, z = mmd_features(feats[ref], feats[held], qc.pca_components, pixel_columns, seed + r)
        typical = held[np.argsort(((z - x.mean(axis=0)) ** 2).sum(axis=1))[: m // 2]]
        sets = {
            "null": feats[held],
            "reduced_diversity": feature_matrix(diverse, qc.features, domain_weights=domain_weights)[0],
            "duplicated": np.vstack([feats[held[:half]], feats[held[:k]][repeat_rows]]),
            "typical_images": feats[typical],
        }
        for name, synthetic in sets.items():
            mmd = configured_mmd(feats[ref], synthetic, qc, seed + r, pixel_columns, n_permutations=max(qc.n_permutations, MMD_PERMUTATIONS))
            mmd_p[name].append(None if mmd is None else mmd.p_value)
            if name != "null":
                folds = min(qc.n_splits, len(ref), len(synthetic))  # tiny data sets (the smoke preset): fewer folds
                test = configured_c2st(one_repeat, seed + r, pixel_columns, n_splits=folds, n_permutations=c2st_permutations).fit(feats[ref], synthetic) if folds >= 2 else None
                c2st_p[name].append(None if test is None else test.p_value_)
                c2st_auc[name].append(None if test is None else round(test.auc_, 4))
        # dedup: exact and near duplicates in the duplicated set; genuine held-out images (the null set)
        genuine = images[held[:half]]
        originals = images[held[:k]][repeat_rows]
        near = _noisy(F.pad(originals, [1, 0, 0, 1], value=-1.0)[..., 1:, :-1], NEAR_NOISE, gen)
        for kind, copies in (("exact", originals), ("near", near)):
            dup_flagged[kind].extend(find_duplicates(torch.cat([genuine, copies]), qc.dedup_threshold, qc.copy_max_shift).flagged[half:])
        genuine_flagged.extend(find_duplicates(images[held], qc.dedup_threshold, qc.copy_max_shift).flagged)
        diversity_flagged.extend(find_duplicates(diverse, qc.dedup_threshold, qc.copy_max_shift).flagged)
    return _report(mmd_p, c2st_p, c2st_auc, dup_flagged, genuine_flagged, diversity_flagged, qc, repeats, n, c2st_permutations, n_distinct)


def _share(p_values: list, alpha: float = ALPHA) -> float:
    return round(float(np.mean([p is not None and p < alpha for p in p_values])), 4)


def _rounded(values: list) -> list:
    return [None if v is None else round(v, 4) for v in values]


def _report(mmd_p, c2st_p, c2st_auc, dup_flagged, genuine_flagged, diversity_flagged, qc: QCConfig, repeats: int, n: int, c2st_permutations: int, n_distinct: int) -> dict:
    defects = {
        name: {
            "mmd_p_values": _rounded(mmd_p[name]),
            "mmd_detected": _share(mmd_p[name]),
            "c2st_p_values": _rounded(c2st_p[name]),
            "c2st_auc": c2st_auc[name],
            "c2st_detected": _share(c2st_p[name]),
            "judged": name in DEFECTS,
        }
        for name in (*DEFECTS, *RECORDED)
    }
    null = {"mmd_p_values": _rounded(mmd_p["null"]), "mmd_rejected": _share(mmd_p["null"])}
    flagged = {kind: round(float(np.mean(v)), 4) for kind, v in dup_flagged.items()}
    genuine = round(float(np.mean(genuine_flagged)), 4)
    dedup = {
        "threshold": qc.dedup_threshold,
        "flagged": flagged,
        "genuine_flagged": genuine,
        "reduced_diversity_flagged": round(float(np.mean(diversity_flagged)), 4),
        "pass": bool(min(flagged.values()) >= 0.95 and genuine <= 0.05),
    }
    detected = all(defects[name]["mmd_detected"] >= DETECTION_MIN for name in DEFECTS)
    null_ok = null["mmd_rejected"] <= NULL_REJECTION_MAX
    return {
        "n_repeats": repeats,
        "n_reference": n // 2,
        "set_size": n - n // 2,
        "n_distinct": n_distinct,
        "alpha": ALPHA,
        "global_test": "kernel MMD (Gaussian RBF, median heuristic) on the C2ST's features",
        "mmd_permutations": max(qc.n_permutations, MMD_PERMUTATIONS),
        "c2st_permutations": c2st_permutations,
        "defects": defects,
        "null": null,
        "dedup": dedup,
        "detected_at_least_0.9": detected,
        "null_rejected_at_most_0.2": null_ok,
        "pass": bool(detected and null_ok and dedup["pass"]),
    }
