"""Does storage precision alone move ctqc's C2ST? Real vs real, one half stored as 8 bits.

The pool is stored as 8-bit PNG; real images often arrive as floats (the phantoms, DICOM after
windowing, any image after resizing). This script takes the real training images of each class
of fold 0 (the default preset's phantoms), splits them at random into two halves R times, stores
one half as 8 bits (:func:`ctqc.qc.pixels.quantise`, what a PNG round trip does) and fits ctqc's
configured C2ST (``qc.*`` of the preset, no permutations) of one half against the other, in two
ways on the same splits:

- ``as-given``: ctqc's extractor functions on each image's own precision
  (:func:`gan_quality.frozen_features`, the frozen yardstick's features) — what ctqc's QC did before its features moved to the 8-bit grid;
- ``on-grid``: :func:`ctqc.qc.features.feature_matrix`, which puts every image on the 8-bit
  grid first (what ctqc's QC does now).

The reference point is the same C2ST with neither half quantised (float vs float). Both halves
hold real images of one class, so every AUC above 0.5 is an artefact. Prints per class and way the
mean AUC over the R splits, the mean paired difference to float-vs-float with its standard error
(over splits; the splits share images, so it is a rough scale, not an interval), and the share of
the quantised half's calibrated scores above 0.6 (``ctqc filter``'s default threshold).

    python bench/precision_effect.py [--config default] [--features fft,histogram] [--splits 20]
"""

from __future__ import annotations

import argparse

import numpy as np


def main() -> None:
    from gan_quality import frozen_features  # the extractor functions on the images' own precision

    from ctqc.config import load_config
    from ctqc.data import load_dataset
    from ctqc.qc.c2st import fit_c2st
    from ctqc.qc.features import feature_matrix
    from ctqc.qc.pixels import quantise
    from ctqc.splits import Splits
    from ctqc.stages.train import gan_units

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="default", help="preset name or YAML path (its data, split and qc.*)")
    parser.add_argument("--features", default=None, help="comma-separated extractors (default: the preset's qc.features)")
    parser.add_argument("--splits", type=int, default=20, help="random halvings per class")
    args = parser.parse_args()
    cfg = load_config(args.config, ["qc.n_permutations=0"])
    names = args.features.split(",") if args.features else list(cfg.qc.features)
    data = load_dataset(cfg.data)
    dev = Splits.make(data, cfg.split, cfg.split_seed).development(data, 0)

    print(f"features {names}; qc.c2st_c={cfg.qc.c2st_c}; {args.splits} halvings per class")
    print(f"{'class':<6} {'way':<12} {'float/float':>11} {'float/8-bit':>11} {'difference':>16} {'> 0.6 float':>11} {'> 0.6 8-bit':>11}")
    for unit in gan_units(cfg, dev):
        x, stored = unit.images, quantise(unit.images)
        for way, featurise in (("as-given", lambda im: frozen_features(im, names)), ("on-grid", lambda im: feature_matrix(im, names))):
            (f_float, width), (f_stored, _) = featurise(x), featurise(stored)
            rng = np.random.default_rng(unit.class_key)
            rows = []
            for r in range(args.splits):
                perm = rng.permutation(len(x))
                a, b = perm[: len(x) // 2], perm[len(x) // 2 :]
                base = fit_c2st(f_float[a], f_float[b], cfg.qc, seed=r, pixel_columns=width)
                mixed = fit_c2st(f_float[a], f_stored[b], cfg.qc, seed=r, pixel_columns=width)
                rows.append((base.auc_, mixed.auc_, (base.synthetic_scores_ > 0.6).mean(), (mixed.synthetic_scores_ > 0.6).mean()))
            table = np.array(rows)
            diff = table[:, 1] - table[:, 0]
            se = diff.std(ddof=1) / np.sqrt(len(diff))
            print(f"{unit.class_key:<6} {way:<12} {table[:, 0].mean():11.3f} {table[:, 1].mean():11.3f} {diff.mean():+9.3f} ± {se:.3f} {table[:, 2].mean():11.3f} {table[:, 3].mean():11.3f}", flush=True)


if __name__ == "__main__":
    main()
