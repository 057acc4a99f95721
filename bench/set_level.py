"""Set-level defects: the kernel MMD against the linear C2ST's permutation test (issue 15 item 5).

    python bench/set_level.py [--config default] [--permutations 200] [--repeats 10] [--distinct 5 20 40]

Part (d) of the self-test (ctqc/qc/selftest_sets.py) on the development images, with more distinct
images behind the defective sets (a subtler loss of diversity), both tests at the same number of
permutations; then the "typical images" defect of issue 15 (the held-out half's most central half:
a narrower set with no image repeated), and a Gaussian simulation with known truth: synthetic features with half the real
spread (same mean), 100 vs 100 images, 20 features, both tests on the same draws.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from ctqc.config import load_config
from ctqc.data import load_dataset
from ctqc.qc.c2st import configured_c2st
from ctqc.qc.features import feature_matrix
from ctqc.qc.mmd_two_sample import configured_mmd
from ctqc.qc.selftest_sets import set_level
from ctqc.splits import Splits


def phantoms(cfg, permutations: int, repeats: int, distinct: list[int]) -> None:
    data = load_dataset(cfg.data)
    dev = Splits.make(data, cfg.split, cfg.split_seed).development(data)
    images = torch.cat([dev.train.images, dev.val.images])
    feats, pixel_columns = feature_matrix(images, cfg.qc.features)
    qc = cfg.qc.model_copy(update={"n_permutations": permutations})
    print(f"{len(images)} development images, features {'+'.join(qc.features)}; {repeats} splits, B = {permutations} for both tests")
    for k in distinct:
        start = time.perf_counter()
        r = set_level(images, feats, pixel_columns, qc, seed=cfg.seed, c2st_permutations=permutations, repeats=repeats, n_distinct=k)
        for name, d in r["defects"].items():
            print(
                f"  {k:3d} distinct  {name:18s} detected: MMD {d['mmd_detected']:.0%}, C2ST {d['c2st_detected']:.0%}"
                f"  (median p: MMD {np.median(d['mmd_p_values']):.3g}, C2ST {np.median(d['c2st_p_values']):.3g}; C2ST AUC {np.mean(d['c2st_auc']):.3f})"
            )
        print(
            f"  {k:3d} distinct  null rejected by the MMD {r['null']['mmd_rejected']:.0%}; dedup {r['dedup']['flagged']}, genuine {r['dedup']['genuine_flagged']:.0%}  [{time.perf_counter() - start:.0f} s]"
        )


def central(cfg, permutations: int, repeats: int) -> None:
    """The most central half of the held-out images (nearest the reference centroid in the MMD's features) vs the reference half."""
    from ctqc.qc.mmd_two_sample import mmd_features

    data = load_dataset(cfg.data)
    dev = Splits.make(data, cfg.split, cfg.split_seed).development(data)
    images = torch.cat([dev.train.images, dev.val.images])
    feats, pixel_columns = feature_matrix(images, cfg.qc.features)
    qc = cfg.qc.model_copy(update={"n_permutations": permutations, "n_repeats": 1})
    rng = np.random.default_rng(cfg.seed + 1)
    mmd_hits, c2st_hits, aucs = [], [], []
    for r in range(repeats):
        order = rng.permutation(len(images))
        ref, held = order[: len(order) // 2], order[len(order) // 2 :]
        x, z = mmd_features(feats[ref], feats[held], qc.pca_components, pixel_columns, r)
        typical = held[np.argsort(((z - x.mean(axis=0)) ** 2).sum(axis=1))[: len(held) // 2]]
        mmd_hits.append(configured_mmd(feats[ref], feats[typical], qc, r, pixel_columns).p_value < 0.05)
        test = configured_c2st(qc, r, pixel_columns).fit(feats[ref], feats[typical])
        c2st_hits.append(test.p_value_ < 0.05)
        aucs.append(test.auc_)
    print(f"  typical images (the most central half of the held-out half, none repeated): detected MMD {np.mean(mmd_hits):.0%}, C2ST {np.mean(c2st_hits):.0%} (mean C2ST AUC {np.mean(aucs):.3f})")


def null(cfg, splits: int) -> None:
    """The MMD's false-rejection rate on real-vs-real random halves (B = 200): should be ≤ 0.05 up to noise."""
    data = load_dataset(cfg.data)
    dev = Splits.make(data, cfg.split, cfg.split_seed).development(data)
    images = torch.cat([dev.train.images, dev.val.images])
    feats, pixel_columns = feature_matrix(images, cfg.qc.features)
    rng = np.random.default_rng(1)
    p = []
    for r in range(splits):
        order = rng.permutation(len(images))
        p.append(configured_mmd(feats[order[: len(order) // 2]], feats[order[len(order) // 2 :]], cfg.qc, r, pixel_columns, n_permutations=200).p_value)
    p = np.array(p)
    print(f"  null, {splits} random halves of the {len(images)} development images: MMD rejects {np.mean(p < 0.05):.1%} at 0.05 (mean p {p.mean():.3f})")


def gaussian(permutations: int, sims: int = 20, n: int = 100, d: int = 20) -> None:
    from ctqc.config import QCConfig

    qc = QCConfig(n_permutations=permutations, n_repeats=1)
    rng = np.random.default_rng(0)
    mmd_hits, c2st_hits, aucs = [], [], []
    for s in range(sims):
        real, synthetic = rng.normal(size=(n, d)), 0.5 * rng.normal(size=(n, d))
        mmd_hits.append(configured_mmd(real, synthetic, qc, s, None).p_value < 0.05)
        test = configured_c2st(qc, s, None).fit(real, synthetic)
        c2st_hits.append(test.p_value_ < 0.05)
        aucs.append(test.auc_)
    print(f"Gaussian, half the spread, {n} vs {n}, {d} features, {sims} simulations: detected MMD {np.mean(mmd_hits):.0%}, C2ST {np.mean(c2st_hits):.0%} (mean C2ST AUC {np.mean(aucs):.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="default")
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--permutations", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--distinct", type=int, nargs="*", default=[5, 20, 40])
    parser.add_argument("--null-splits", type=int, default=300)
    args = parser.parse_args()
    cfg = load_config(args.config, args.overrides)
    phantoms(cfg, args.permutations, args.repeats, args.distinct)
    central(cfg, args.permutations, args.repeats)
    null(cfg, args.null_splits)
    gaussian(args.permutations)


if __name__ == "__main__":
    main()
