"""What QC compares: per fold and class, a synthetic pool against real images.

A :class:`QCUnit` holds one class of one fold: the *reference* real images (the
images the generator learned from — a run's training split; never validation or
test), *held-out* real images of the same class (the real-vs-real floor and the
copy check's reference: a run's validation split), and the synthetic pool.

Two sources: a ctqc run (:func:`units_from_run`) or two folders of
images from any generator (:func:`units_from_folders`), where the real folder is
split per class into reference and held-out parts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ctqc.config import DataConfig
from ctqc.data import load_dataset
from ctqc.errors import UserError
from ctqc.run import Run
from ctqc.seeds import unit_seed
from gan.sampling import load_generator, sample_pixels

POOL_COLUMNS = ["sample_id", "file", "class", "label", "fold"]


@dataclass
class QCUnit:
    fold: int
    key: int
    name: str
    reference: torch.Tensor  # real images the generator learned from, N×1×S×S in [-1, 1]
    reference_ids: tuple[str, ...]
    heldout: torch.Tensor  # real images of the class it never saw
    heldout_ids: tuple[str, ...]
    synthetic: torch.Tensor
    pool: object  # pandas DataFrame with POOL_COLUMNS, one row per synthetic image
    # images the filter never selects from, for its frozen check: new draws from the fold's generator (None: none drawn)
    fresh: torch.Tensor | None = None
    fresh_ids: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"fold{self.fold}/{self.name}"


def units_from_folders(real_dir: Path, synthetic_dir: Path, cfg, heldout_fraction: float = 0.2):
    """Units from two folders (labels from a CSV or class subfolders, as ``ctqc data inspect`` reads them).

    The real images of each class are split at random (seeded by ``cfg.seed``) into a reference
    part, which the C2ST and the copy search compare against, and a held-out part of
    ``heldout_fraction`` for the real-vs-real floor and the copy threshold.
    """
    import pandas as pd

    for role, folder in (("--real", real_dir), ("--synthetic", synthetic_dir)):
        if not Path(folder).is_dir():
            raise UserError(f"{role} {folder}: not a folder")
    settings = cfg.data.model_dump(exclude={"path", "format"})
    real = load_dataset(DataConfig(**settings, path=Path(real_dir), format="folder"))
    synthetic = load_dataset(DataConfig(**settings, path=Path(synthetic_dir), format="folder"), require_all_classes=False)
    rng = np.random.default_rng(cfg.seed)
    units = []
    for key, name in cfg.data.classes.items():
        syn_idx = np.flatnonzero(synthetic.labels == key)
        if len(syn_idx) == 0:
            continue
        real_idx = rng.permutation(np.flatnonzero(real.labels == key))
        n_held = max(2, int(round(heldout_fraction * len(real_idx))))
        if len(real_idx) - n_held < 2:
            raise UserError(f"{real_dir}: class {name!r} has {len(real_idx)} real image(s); QC needs at least 4 per class")
        held, ref = np.sort(real_idx[:n_held]), np.sort(real_idx[n_held:])
        files = [synthetic.source.files[i] for i in syn_idx]
        pool = pd.DataFrame({"sample_id": [synthetic.ids[i] for i in syn_idx], "file": files, "class": name, "label": key, "fold": 0})
        units.append(
            QCUnit(
                fold=0,
                key=key,
                name=name,
                reference=real.images[ref],
                reference_ids=tuple(real.ids[i] for i in ref),
                heldout=real.images[held],
                heldout_ids=tuple(real.ids[i] for i in held),
                synthetic=synthetic.images[syn_idx],
                pool=pool,
            )
        )
    if not units:
        raise UserError(f"--synthetic {synthetic_dir}: no images of the configured classes ({', '.join(cfg.data.classes.values())})")
    return units


#: Mixed into a generator's pool seed for the frozen filter's fresh pool (the pool itself uses 0x5EED).
FRESH_SALT = 0xF4E5


def generator_images(run: Run, fold: int, key: int, n: int, salt: int, prefix: str) -> tuple[torch.Tensor, tuple[str, ...]]:
    """``n`` new images of class ``key`` from fold ``fold``'s generator: float32 N×1×S×S in [-1, 1] (8-bit steps), and their ids.

    Deterministic from the run's seed, fold, class and ``salt`` (each use its own, so that its
    latent draws are distinct from the pool's); quantised to 8 bits as the pool's PNG files are.
    Ids are ``<prefix>_<class key>_<fold>_<i>``. Raises :class:`~ctqc.errors.UserError` when the
    generator is missing or unreadable.
    """
    ckpt = run.generator_checkpoint(fold, key)
    G, meta = load_generator(ckpt)
    y = sorted(run.config.data.classes).index(key) if meta["n_classes"] else None
    pixels = sample_pixels(G, n, unit_seed(run.config.seed, fold, key) ^ salt, y=y)
    ids = tuple(f"{prefix}_{key}_{fold}_{i:05d}" for i in range(n))
    return (pixels.float() / 127.5 - 1.0).unsqueeze(1), ids


def units_from_run(run: Run, kept_only: bool = False, fresh: bool = False) -> list[QCUnit]:
    """The QC units of ``run``: every fold × class with synthetic images (only kept ones with ``kept_only``).

    With ``fresh``, each unit whose fold has a generator also gets as many new draws from it as
    its pool holds (:data:`FRESH_SALT`): the frozen filter's fresh pool (:mod:`ctqc.qc.scoring`).
    """
    cfg, data, splits = run.config, run.data(), run.splits
    index = run.pool(kept_only=kept_only)
    units = []
    for fold in splits.folds:
        dev = splits.development(data, fold)
        for key, name in cfg.data.classes.items():
            pool = index[(index["fold"] == fold) & (index["label"] == key)].reset_index(drop=True)
            if pool.empty:
                continue
            real = dev.train.subset(np.flatnonzero(dev.train.labels == key))
            held = dev.val.subset(np.flatnonzero(dev.val.labels == key))
            units.append(
                QCUnit(
                    fold=fold,
                    key=key,
                    name=name,
                    reference=real.images,
                    reference_ids=real.ids,
                    heldout=held.images,
                    heldout_ids=held.ids,
                    synthetic=run.pool_images(pool["file"]) if len(pool) else torch.empty(0),
                    pool=pool[POOL_COLUMNS],
                )
            )
            if fresh and run.generator_checkpoint(fold, key).is_file():
                units[-1].fresh, units[-1].fresh_ids = generator_images(run, fold, key, len(pool), FRESH_SALT, "fresh")
    return units
