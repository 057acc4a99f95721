"""The train stage: GAN(s) on each fold's training images only.

Per-class mode trains one GAN per class (as the paper does); conditional mode
one GAN for all classes. Outputs go to ``gan/fold<k>/<class-or-conditional>/``
(:meth:`ctqc.layout.RunLayout.gan_unit`). The pool is the generate stage's job.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch

from ctqc import distributed as ddp
from ctqc.config import Config
from ctqc.device import resolve_device
from ctqc.errors import UserError
from ctqc.layout import CONDITIONAL_UNIT, class_slug
from ctqc.run import Run
from ctqc.seeds import unit_seed
from ctqc.splits import DevelopmentData
from gan.batched import GanJob, check_groupable, train_gans_together, train_job


@dataclass(frozen=True)
class GanUnit:
    """One GAN to train: its directory name, training images and (conditional) labels."""

    name: str
    class_key: int | None  # None for the conditional GAN
    images: torch.Tensor
    labels: torch.Tensor | None
    val_images: torch.Tensor
    seed: int


def gan_units(cfg: Config, dev: DevelopmentData) -> list[GanUnit]:
    train, val = dev.train, dev.val
    if cfg.gan.mode == "conditional":
        return [GanUnit(CONDITIONAL_UNIT, None, train.images, torch.from_numpy(train.targets), val.images, unit_seed(cfg.seed, dev.fold, -1))]
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


def unit_names(cfg: Config) -> list[str]:
    """The GAN units of one fold: one per class slug, or the conditional GAN."""
    if cfg.gan.mode == "conditional":
        return [CONDITIONAL_UNIT]
    return [class_slug(name, key) for key, name in cfg.data.classes.items()]


def untrained(run: Run) -> list[str]:
    """``gan/fold<k>/<unit>`` folders without a final generator (reads only the config and splits)."""
    return [run.layout.rel(run.layout.gan_unit(fold, name)) for fold in run.splits.folds for name in unit_names(run.config) if not run.layout.generator(fold, name).is_file()]


def train(run: Run, *, progress: bool = True) -> Run:
    """Train every GAN of ``run`` (each fold × class, or one conditional GAN per fold); resumable.

    A GAN whose final generator exists is not trained again; one interrupted mid-way
    resumes from its last checkpoint. Under ``torchrun`` every rank trains every GAN
    on its shard of each batch; rank 0 alone writes checkpoints and the manifest.
    With ``gan.train_together`` the GANs of all folds train together (:mod:`gan.batched`;
    refused under torchrun).
    """
    cfg, data, splits = run.config, run.data(), run.splits
    world = ddp.init(resolve_device(cfg.device))
    together = cfg.gan.train_together
    if together:
        if world.enabled:
            raise UserError("gan.train_together does not run under torchrun; unset gan.train_together or run without torchrun")
        check_groupable(cfg.gan)
    with run.stage("train") if world.is_main else contextlib.nullcontext([]) as outputs:
        jobs = []
        for fold in splits.folds:
            dev = splits.development(data, fold)
            for unit in gan_units(cfg, dev):
                out = run.layout.gan_unit(fold, unit.name)
                if not run.layout.generator(fold, unit.name).is_file():  # one finished before an interruption is not redone
                    job = GanJob(
                        unit.images,
                        out,
                        labels=unit.labels,
                        n_classes=len(data.class_names) if unit.labels is not None else 0,
                        val_images=unit.val_images,
                        seed=unit.seed,
                        description={"fold": fold, "unit": unit.name, "class_key": unit.class_key, "n_train": int(len(unit.images))},
                        progress_label=f"GAN fold {fold} {unit.name}",
                    )
                    if together:
                        jobs.append(job)
                    else:
                        train_job(job, cfg.gan, device=cfg.device, resume=True, progress=progress)
                outputs.append(run.layout.rel(out))
        if jobs:
            train_gans_together(jobs, cfg.gan, device=cfg.device, resume=True, progress=progress)
    return run
