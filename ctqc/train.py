"""The train stage: GAN(s) on each fold's training images only, then the synthetic pool.

Per-class mode trains one GAN per class (as the paper does); conditional mode
one GAN for all classes. Outputs go to ``gan/fold<k>/<class-or-conditional>/``.
"""

from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass

import numpy as np
import torch

from ctqc.config import Config
from ctqc.data import LabelledImages, load_dataset
from ctqc.errors import UserError
from ctqc.prepare import prepare_run
from ctqc.rundir import RunDir
from ctqc.splits import DevelopmentData, Splits


@dataclass(frozen=True)
class GanUnit:
    """One GAN to train: its directory name, training images and (conditional) labels."""

    name: str
    class_key: int | None  # None for the conditional GAN
    images: torch.Tensor
    labels: torch.Tensor | None
    val_images: torch.Tensor
    seed: int


def class_slug(name: str, key: int) -> str:
    """A file-name-safe form of a class name (falls back to the key)."""
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")
    return slug or f"class{key}"


def unit_seed(seed: int, fold: int, key: int) -> int:
    return int(np.random.SeedSequence([seed, fold, key + 1]).generate_state(1)[0])


def gan_units(cfg: Config, dev: DevelopmentData) -> list[GanUnit]:
    train, val = dev.train, dev.val
    if cfg.gan.mode == "conditional":
        return [
            GanUnit("conditional", None, train.images, torch.from_numpy(train.targets), val.images, unit_seed(cfg.seed, dev.fold, -1))
        ]
    units = []
    for key, name in train.class_names.items():
        units.append(
            GanUnit(
                class_slug(name, key),
                key,
                train.images[torch.from_numpy(train.labels == key)],
                None,
                val.images[torch.from_numpy(val.labels == key)],
                unit_seed(cfg.seed, dev.fold, key),
            )
        )
    return units


def open_for_resume(run: RunDir) -> tuple[Config, LabelledImages, Splits]:
    """Reload a run's config, data (checking the fingerprint) and splits."""
    cfg = run.config()
    data = load_dataset(cfg.data)
    recorded = run.manifest().get("data", {}).get("fingerprint")
    if recorded and recorded != data.source.fingerprint:
        raise UserError(f"{run.path}: the data changed since this run was created (fingerprint {data.source.fingerprint} ≠ {recorded}); start a new run")
    return cfg, data, Splits.load(run.path / "splits.csv")


def train(config: Config | None = None, *, run: RunDir | None = None, progress: bool = True) -> RunDir:
    """Create a run (or continue ``run``), train its GANs, and generate the synthetic pool.

    Under ``torchrun`` every rank trains every GAN on its shard of each batch;
    rank 0 alone creates the run, writes checkpoints and the manifest, and
    generates the pool.
    """
    from ctqc import distributed as ddp
    from gan.trainer import resolve_device, train_gan

    cfg = config if run is None else run.config()
    world = ddp.init(resolve_device(cfg.device))
    if run is None and not world.enabled:
        assert config is not None
        prepared = prepare_run(config)
        run, data, splits = prepared.run, prepared.data, prepared.splits
    else:
        if run is None:  # rank 0 creates the run; every rank then reads it
            assert config is not None
            run = RunDir(ddp.from_main(lambda: prepare_run(config).run.path))
        cfg, data, splits = open_for_resume(run)
    # resuming a finished run (rank 0's view, before its stage record changes)
    finished = ddp.from_main(lambda: run.stage_status("train") == "done" and run.stage_status("generate") == "done")
    with run.stage("train") if world.is_main else contextlib.nullcontext([]) as outputs:
        for fold in splits.folds:
            dev = splits.development(data, fold)
            for unit in gan_units(cfg, dev):
                out = run.path / "gan" / f"fold{fold}" / unit.name
                if (out / "checkpoints" / "generator.pt").is_file():  # finished before an interruption: not redone
                    outputs.append(str(out.relative_to(run.path)))
                    continue
                train_gan(
                    unit.images,
                    cfg.gan,
                    out,
                    labels=unit.labels,
                    n_classes=len(data.class_names) if unit.labels is not None else 0,
                    val_images=unit.val_images,
                    seed=unit.seed,
                    device=cfg.device,
                    resume=True,
                    progress=progress,
                    progress_label=f"GAN fold {fold} {unit.name}",
                    description={"fold": fold, "unit": unit.name, "class_key": unit.class_key, "n_train": int(len(unit.images))},
                )
                outputs.append(str(out.relative_to(run.path)))
    from ctqc.generate import generate

    if not finished:  # a new pool would also make the filter's output stale
        ddp.from_main(lambda: generate(run))
    return run
