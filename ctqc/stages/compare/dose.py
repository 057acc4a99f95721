"""The dose-response arms (``compare.synthetic_ratios``): how many synthetic images each needs, and where they come from.

The arm ``original+synthetic-x<r>`` trains on a fold's real training images plus
``round(r × n_real_k)`` synthetic images of each class k, drawn at random from the
fold's pool (:func:`ctqc.stages.compare.arms.build_arm`). When a ratio needs more
images of a class than the pool holds, the pool is **extended from the fold's own
generator** — new latent draws from the same checkpoint ``ctqc generate`` sampled,
with a seed of their own, quantised to 8 bits as the pool's PNG files are — and
:data:`~ctqc.artefacts.DosePoint.extended` says how many. A pool without a
generator (synthetic images brought from elsewhere) cannot be extended: such a
ratio is skipped, with the reason.
"""

from __future__ import annotations

import numpy as np
import torch

from ctqc.config import ratio_arm
from ctqc.qc.units import generator_images
from ctqc.run import Run

#: Mixed into a generator's pool seed so that extension images are fresh latent draws.
EXTENSION_SALT = 0xE7E7


def wanted(ratio: float, n_real: int) -> int:
    """Synthetic images of one class for ``ratio`` synthetic images per real image (``n_real`` real ones)."""
    return int(round(ratio * n_real))


def plan(run: Run, ratios: list[float]) -> tuple[list[dict], dict[tuple[int, int], int]]:
    """The dose-response points and the extension each (fold, class key) needs, from the splits and the pool index.

    Returns ``(points, extension)``: ``points`` one dict per ratio (fields of
    :class:`~ctqc.artefacts.DosePoint`; ``skipped`` set when a needed extension has no
    generator), ``extension`` (fold, key) → images to draw beyond the pool (only the
    largest ratio that can be trained counts). Reads no image.
    """
    table, index = run.splits.table, run.pool()
    keys = sorted(run.config.data.classes)
    folds = run.splits.folds
    real = {(f, k): int(((table["fold"] == f) & (table["role"] == "train") & (table["label"] == k)).sum()) for f in folds for k in keys}
    pool = {(f, k): int(((index["fold"] == f) & (index["label"] == k)).sum()) for f in folds for k in keys}
    points, extension = [], {}
    for ratio in ratios:
        short = {fk: wanted(ratio, real[fk]) - pool[fk] for fk in real if wanted(ratio, real[fk]) > pool[fk]}
        missing = [fk for fk in short if not run.generator_checkpoint(*fk).is_file()]
        point = {
            "arm": ratio_arm(ratio),
            "ratio": ratio,
            "n_synthetic": float(np.mean([sum(wanted(ratio, real[(f, k)]) for k in keys) for f in folds])),
            "extended": int(sum(short.values())),
            "skipped": None,
        }
        if missing:
            f, k = missing[0]
            point["skipped"] = (
                f"needs {short[(f, k)]} more synthetic images of class {run.config.data.classes[k]!r} in fold {f} than the pool holds, "
                "and the run has no generator to draw them from: lower the ratio or add synthetic images"
            )
            point["extended"] = 0
        else:
            for fk, n in short.items():
                extension[fk] = max(extension.get(fk, 0), n)
        points.append(point)
    return points, extension


def extension_images(run: Run, fold: int, key: int, n: int) -> tuple[torch.Tensor, tuple[str, ...]]:
    """``n`` new images of class ``key`` from fold ``fold``'s generator: float32 N×1×S×S in [-1, 1] (8-bit steps), and their ids.

    Deterministic from the run's seed, fold and class; distinct from the pool's latent
    draws (:func:`ctqc.qc.units.generator_images` with :data:`EXTENSION_SALT`). Raises
    :class:`~ctqc.errors.UserError` when the generator is missing or unreadable (:func:`plan`
    skips ratios whose generator is missing).
    """
    return generator_images(run, fold, key, n, EXTENSION_SALT, "ext")
