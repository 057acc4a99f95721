"""The generate stage: the synthetic pool from each fold's trained (EMA) generators.

Files are ``samples/syn_<class>_<fold>_<idx>.png`` — 8-bit grayscale, marked as
synthetic in their PNG text chunks (tool, version, run, checkpoint, seed) — and
``samples/index.csv``. The same run and seed give byte-identical files.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from ctqc import __version__, atomic
from ctqc.errors import UserError
from ctqc.layout import class_slug
from ctqc.run import Run
from ctqc.seeds import unit_seed
from gan.sampling import load_generator, sample_pixels

INDEX_COLUMNS = ["sample_id", "file", "class", "label", "fold", "seed", "checkpoint", "synthetic"]


def allocate(total: int, counts: dict[int, int]) -> dict[int, int]:
    """Split ``total`` across classes in proportion to ``counts`` (largest remainder)."""
    keys = sorted(counts)
    weights = np.array([counts[k] for k in keys], dtype=float)
    exact = total * weights / weights.sum()
    shares = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - shares), kind="stable")[: total - shares.sum()]:
        shares[i] += 1
    return {k: int(s) for k, s in zip(keys, shares)}


def generate(run: Run, n: int | None = None, per_class: bool = False, seed: int | None = None) -> Path:
    """(Re)write ``samples/`` for ``run``; ``n`` defaults to ``gan.n_synthetic`` per fold.

    With ``per_class`` every class gets ``n`` images, otherwise ``n`` is shared in
    proportion to the fold's training class counts. Returns the samples folder.
    """
    import pandas as pd

    run.require_stage("train", "ctqc train")
    cfg = run.config
    seed = cfg.seed if seed is None else seed
    n = cfg.gan.n_synthetic if n is None else n
    if n < 1:
        raise UserError(f"--n must be at least 1 (got {n})")
    splits = run.splits
    classes = sorted(cfg.data.classes)
    rows = []
    staging = run.layout.staging(run.layout.samples)
    shutil.rmtree(staging, ignore_errors=True)  # left over by an interrupted run
    with run.stage("generate") as outputs:
        with atomic.atomic_dir(staging) as tmp:
            for fold in splits.folds:
                train_labels = splits.table[(splits.table["fold"] == fold) & (splits.table["role"] == "train")]["label"]
                counts = {k: int((train_labels == k).sum()) for k in classes}
                wanted = {k: n for k in classes} if per_class else allocate(n, counts)
                for k in classes:
                    if wanted[k]:
                        rows += _write_class_samples(run, cfg, tmp, fold, k, wanted[k], seed)
            pd.DataFrame(rows, columns=INDEX_COLUMNS).to_csv(tmp / run.layout.samples_index.name, index=False)
        atomic.replace_dir(staging, run.layout.samples)
        run.forget_pool()
        outputs += [run.layout.rel(run.layout.samples_index)]
    return run.layout.samples


def _write_class_samples(run: Run, cfg, folder: Path, fold: int, key: int, n: int, seed: int) -> list[list]:
    """Sample ``n`` images of class ``key`` from fold ``fold``'s generator into ``folder``; return index rows."""
    name = cfg.data.classes[key]
    slug = class_slug(name, key)
    ckpt = run.generator_checkpoint(fold, key)
    if not ckpt.is_file():
        raise UserError(f"{ckpt} is missing: training of fold {fold} ({ckpt.parent.parent.name}) did not finish; run `ctqc train --resume`")
    G, meta = load_generator(ckpt)
    s = unit_seed(seed, fold, key) ^ 0x5EED  # not the training seed: fresh z
    y = sorted(cfg.data.classes).index(key) if meta["n_classes"] else None
    pixels = sample_pixels(G, n, s, y=y).numpy()
    rel_ckpt = run.layout.rel(ckpt)
    rows = []
    for i, arr in enumerate(pixels):
        file = f"syn_{slug}_{fold}_{i:05d}.png"
        info = PngInfo()
        for tag, value in (
            ("Software", f"ctqc {__version__}"),
            ("ctqc:synthetic", "true"),
            ("ctqc:run", run.path.name),
            ("ctqc:checkpoint", rel_ckpt),
            ("ctqc:seed", str(s)),
            ("ctqc:index", str(i)),
        ):
            info.add_text(tag, value)
        Image.fromarray(arr).save(folder / file, format="PNG", pnginfo=info)
        rows.append([file[:-4], file, name, key, fold, s, rel_ckpt, 1])
    return rows
