"""What QC compares: per fold and class, a synthetic pool against real images.

A :class:`QCUnit` holds one class of one fold: the *reference* real images (the
images the generator learned from — a run's training split; never validation or
test), *held-out* real images of the same class (the real-vs-real floor and the
copy check's reference: a run's validation split), and the synthetic pool.

Two sources: a ctqc run (:func:`units_from_run`) or two folders of images from any
generator (:func:`units_from_folders`), where the real folder is split per class
into reference and held-out parts.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ctqc.errors import UserError

POOL_COLUMNS = ["sample_id", "file", "class", "label", "fold"]


@dataclass
class QCUnit:
    fold: int
    key: int
    name: str
    reference: torch.Tensor  # real images the generator learned from, N×1×S×S in [-1, 1]
    reference_ids: tuple[str, ...]
    heldout: torch.Tensor  # real images of the class it never saw
    synthetic: torch.Tensor
    pool: object  # pandas DataFrame with POOL_COLUMNS, one row per synthetic image

    @property
    def label(self) -> str:
        return f"fold{self.fold}/{self.name}"


def load_synthetic(folder: Path, files, max_pixels: int) -> torch.Tensor:
    """The pool's 8-bit grayscale PNGs (``files`` relative to ``folder``) → float32 N×1×S×S in [-1, 1].

    ``files`` come from ``samples/index.csv``, which anyone can edit: a name that
    leaves ``folder``, an unreadable file, an image over ``max_pixels`` (the
    decompression-bomb guard) or images of different sizes raise :class:`UserError`.
    """
    import warnings

    from PIL import Image

    from ctqc.data.images import check_pixel_count

    inside = Path(folder).resolve()
    arrays = []
    for name in files:
        path = Path(folder) / str(name)
        if not path.resolve().is_relative_to(inside):
            raise UserError(f"{folder / 'index.csv'}: file {str(name)!r} leaves {folder}; run `ctqc generate` again")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(path) as im:
                    check_pixel_count(path, *im.size, max_pixels)
                    arrays.append(np.asarray(im.convert("L"), dtype=np.float32))
        except UserError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise UserError(f"{path}: image is too large to decode safely (decompression-bomb guard); run `ctqc generate` again") from None
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            raise UserError(f"{path}: cannot read synthetic image ({exc.__class__.__name__}); run `ctqc generate` again") from None
    if len({a.shape for a in arrays}) > 1:
        raise UserError(f"{folder}: synthetic images of different sizes ({', '.join(sorted({f'{a.shape[1]}×{a.shape[0]}' for a in arrays}))}); run `ctqc generate` again")
    return torch.from_numpy(np.stack(arrays) / 127.5 - 1.0).unsqueeze(1).float()


def units_from_run(run, kept_only: bool = False):
    """(config, units) of a run's synthetic pool (or only its kept images), every fold × class."""
    import pandas as pd

    from ctqc.train import open_for_resume

    run.require_stage("generate", "ctqc train")
    cfg, data, splits = open_for_resume(run)
    samples = run.path / "samples"
    index = pd.read_csv(samples / "index.csv")
    if kept_only:
        kept = pd.read_csv(run.path / "filter" / "kept.csv")
        index = index[index["sample_id"].isin(kept["sample_id"])]
    units = []
    for fold in splits.folds:
        dev = splits.development(data, fold)
        for key, name in cfg.data.classes.items():
            pool = index[(index["fold"] == fold) & (index["label"] == key)].reset_index(drop=True)
            if pool.empty:
                continue
            real = dev.train.subset(np.flatnonzero(dev.train.labels == key))
            units.append(
                QCUnit(
                    fold=fold,
                    key=key,
                    name=name,
                    reference=real.images,
                    reference_ids=real.ids,
                    heldout=dev.val.images[torch.from_numpy(dev.val.labels == key)],
                    synthetic=load_synthetic(samples, pool["file"], cfg.data.max_image_pixels),
                    pool=pool[POOL_COLUMNS],
                )
            )
    return cfg, units


def units_from_folders(real_dir: Path, synthetic_dir: Path, cfg, heldout_fraction: float = 0.2):
    """Units from two folders (labels from a CSV or class subfolders, as ``ctqc data inspect`` reads them).

    The real images of each class are split at random (seeded by ``cfg.seed``) into a reference
    part, which the C2ST and the copy search compare against, and a held-out part of
    ``heldout_fraction`` for the real-vs-real floor and the copy threshold.
    """
    import pandas as pd

    from ctqc.config import DataConfig
    from ctqc.data import load_dataset

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
                synthetic=synthetic.images[syn_idx],
                pool=pool,
            )
        )
    if not units:
        raise UserError(f"--synthetic {synthetic_dir}: no images of the configured classes ({', '.join(cfg.data.classes.values())})")
    return units

