"""Out-of-design defects: what the C2ST's per-image scores do with CT artefacts the features were not chosen for.

The ``structure`` features (ctqc/qc/structure.py) were chosen with the self-test's seven defect
families in view, so the self-test's rates for those are in-design figures. This bench plants four
defects of other kinds, with strengths fixed before its first run (2026-11-30) and not tuned on
its results, in the self-test's (b) design (:func:`ctqc.qc.selftest.planted_defects`: per split,
a reference half of the development images against a pool of one clean and one defective
quarter; one K-fold repeat; calibrated p(synthetic) > ``qc.c2st_threshold``), and prints per
defect and strength the mean AUROC and the shares of defective and of genuine images removed,
for each feature set given. Nothing here is judged; the figures go to bench/RESULTS.md.

- ``streaks``: metal-artefact-like streaks, 6 one-pixel lines through a random point of the
  central half at random angles, alternately brighter and darker by the amplitude (0.1 / 0.2 /
  0.4 in [-1, 1] units), on the head only;
- ``rings``: detector ring artefacts, one-pixel circles around the image centre every 4 px (at
  32 px), alternately ± the amplitude (0.05 / 0.1 / 0.2), on the head only;
- ``contrast``: a window mismatch, the head's intensities pulled towards its mean by the factor
  (0.85 / 0.7 / 0.5);
- ``motion``: smear along one axis, the mean of the image shifted by 0 … k px (k = 1 / 2 / 4 at 32 px).

    python bench/qc_out_of_design.py [--config default] [--splits 10] [--features fft,histogram,structure] [--features pixels,fft,histogram,structure]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from ctqc.config import load_config
from ctqc.data import load_dataset
from ctqc.qc.features import feature_matrix
from ctqc.qc.pixels import head_mask
from ctqc.qc.selftest import STRENGTHS, planted_defects
from ctqc.splits import Splits


def _grid(size: int) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij")


def streaks(x: torch.Tensor, amplitude: float, generator: torch.Generator, lines: int = 6) -> torch.Tensor:
    """``lines`` one-pixel lines through a random point of each image's central half, ± ``amplitude`` alternately, on the head.

    ``x``: N×1×S×S in [-1, 1]; ``amplitude`` in the same units. Returns a new batch, clamped to [-1, 1].
    """
    size = x.shape[-1]
    yy, xx = _grid(size)
    out = x.clone()
    for i in range(len(x)):
        cy, cx = (size / 4 + torch.rand(2, generator=generator) * size / 2).tolist()
        pattern = torch.zeros(size, size)
        for k, angle in enumerate((torch.rand(lines, generator=generator) * np.pi).tolist()):
            on_line = ((yy - cy) * np.cos(angle) - (xx - cx) * np.sin(angle)).abs() < 0.5
            pattern[on_line] = amplitude * (1 if k % 2 == 0 else -1)
        out[i] = x[i] + pattern * head_mask(x[i])
    return out.clamp(-1, 1)


def rings(x: torch.Tensor, amplitude: float, spacing: float) -> torch.Tensor:
    """One-pixel circles around the image centre every ``spacing`` px, ± ``amplitude`` alternately, on the head.

    ``x``: N×1×S×S in [-1, 1]; ``amplitude`` in the same units; ``spacing`` in px. Returns a new batch, clamped to [-1, 1].
    """
    size = x.shape[-1]
    yy, xx = _grid(size)
    radius = ((yy - (size - 1) / 2) ** 2 + (xx - (size - 1) / 2) ** 2).sqrt() / spacing
    ring = torch.round(radius)
    pattern = torch.where(((radius - ring).abs() * spacing < 0.5) & (ring > 0), amplitude * (1 - 2 * (ring % 2)), torch.zeros(()))
    return (x + pattern * head_mask(x)).clamp(-1, 1)


def contrast(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Each head's intensities pulled towards its own mean by ``factor`` (1 = unchanged, < 1 = less contrast); the air untouched.

    ``x``: N×1×S×S in [-1, 1]. Returns a new batch.
    """
    head = head_mask(x)
    mean = (x * head).sum(dim=(-2, -1), keepdim=True) / head.sum(dim=(-2, -1), keepdim=True).clamp(min=1)
    return torch.where(head.bool(), mean + factor * (x - mean), x)


def motion(x: torch.Tensor, shift: int) -> torch.Tensor:
    """The mean of the image shifted by 0 … ``shift`` px along the last axis (``torch.roll``: the border is air).

    ``x``: N×1×S×S in [-1, 1]. Returns a new batch.
    """
    return torch.stack([torch.roll(x, k, dims=-1) for k in range(shift + 1)]).mean(dim=0)


def defects(generator: torch.Generator, size: int) -> dict:
    """name → strength → function, at the strengths of the module docstring (px scaled from 32 px)."""
    scale = size / 32
    return {
        "streaks": {s: (lambda x, a=a: streaks(x, a, generator)) for s, a in zip(STRENGTHS, (0.1, 0.2, 0.4))},
        "rings": {s: (lambda x, a=a: rings(x, a, 4 * scale)) for s, a in zip(STRENGTHS, (0.05, 0.1, 0.2))},
        "contrast": {s: (lambda x, f=f: contrast(x, f)) for s, f in zip(STRENGTHS, (0.85, 0.7, 0.5))},
        "motion": {s: (lambda x, k=max(1, round(k * scale)): motion(x, k)) for s, k in zip(STRENGTHS, (1, 2, 4))},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="default")
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--splits", type=int, default=10, help="random splits pooled per cell (default 10)")
    parser.add_argument("--features", action="append", default=None, help="comma-separated qc.features; repeatable (default: the config's)")
    args = parser.parse_args()
    cfg = load_config(args.config, args.overrides)
    data = load_dataset(cfg.data)
    dev = Splits.make(data, cfg.split, cfg.split_seed).development(data)
    images = torch.cat([dev.train.images, dev.val.images])
    rng = np.random.default_rng(cfg.seed + 2)  # not the self-test's own draws
    orders = [rng.permutation(len(images)) for _ in range(args.splits)]
    sets = [s.split(",") for s in args.features] if args.features else [list(cfg.qc.features)]
    if any("domain" in names for names in sets):
        parser.error("--features: the domain encoder is fitted per run and not available here; use fixed extractors (pixels, fft, histogram, structure)")
    print(f"{len(images)} development images, {args.splits} splits, operating point p(synthetic) > {cfg.qc.c2st_threshold:g}; removed / genuine removed")
    for names in sets:
        qc = cfg.qc.model_copy(update={"features": names})
        start = time.perf_counter()
        feats, pixel_columns = feature_matrix(images, names)
        r = planted_defects(images, feats, pixel_columns, qc, cfg.seed, orders, defects(torch.Generator().manual_seed(cfg.seed), images.shape[-1]))
        print(f"features {'+'.join(names)} ({r['n_defective']} defective / {r['n_genuine']} genuine images per cell):")
        for name, levels in r["auroc"].items():
            removed, genuine = r["removed"][name], r["genuine_removed"][name]
            cells = "; ".join(f"{s} AUROC {levels[s]:.3f}, {removed[s]:.0%} / {genuine[s]:.0%}" for s in STRENGTHS)
            print(f"    {name:9s} {cells}")
        print(f"    ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
