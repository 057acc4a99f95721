"""The train stage: GAN(s) on each fold's training images only.

Per-class mode trains one GAN per class (as the paper does); conditional mode
one GAN for all classes. Outputs go to ``gan/fold<k>/<class-or-conditional>/``
(:meth:`ctqc.layout.RunLayout.gan_unit`). The pool is the generate stage's job.
"""

from __future__ import annotations

import contextlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from ctqc import distributed as ddp
from ctqc.config import Config
from ctqc.device import resolve_device
from ctqc.errors import UserError
from ctqc.layout import CONDITIONAL_UNIT, class_slug
from ctqc.pool import run_unordered, split_cores
from ctqc.run import Run
from ctqc.seeds import unit_seed
from ctqc.splits import DevelopmentData
from gan.batched import GanJob, check_groupable, train_gans_together, train_job
from gan.config import GanConfig


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
    resumes from its last checkpoint. The GANs are independent: ``gan.jobs`` of them
    train side by side in spawned processes (:func:`side_by_side`), each with its share
    of the cores. Under ``torchrun`` every rank trains every GAN, one after another, on
    its shard of each batch; rank 0 alone writes checkpoints and the manifest. With
    ``gan.train_together`` the GANs of all folds train together as one network
    (:mod:`gan.batched`; refused under torchrun).
    """
    cfg, data, splits = run.config, run.data(), run.splits
    world = ddp.init(resolve_device(cfg.device))
    together = cfg.gan.train_together
    if together:
        if world.enabled:
            raise UserError("gan.train_together does not run under torchrun; unset gan.train_together or run without torchrun")
        check_groupable(cfg.gan)
    n_gans = len(splits.folds) * len(unit_names(cfg))
    processes, threads = (1, torch.get_num_threads()) if together or world.enabled else side_by_side(cfg.gan.jobs, n_gans)
    with run.stage("train") if world.is_main else contextlib.nullcontext([]) as outputs:
        jobs = []
        for fold in splits.folds:
            dev = splits.development(data, fold)
            for unit in gan_units(cfg, dev):
                out = run.layout.gan_unit(fold, unit.name)
                if not run.layout.generator(fold, unit.name).is_file():  # one finished before an interruption is not redone
                    jobs.append(
                        GanJob(
                            unit.images,
                            out,
                            labels=unit.labels,
                            n_classes=len(data.class_names) if unit.labels is not None else 0,
                            val_images=unit.val_images,
                            seed=unit.seed,
                            description={"fold": fold, "unit": unit.name, "class_key": unit.class_key, "n_train": int(len(unit.images))},
                            progress_label=f"GAN fold {fold} {unit.name}",
                        )
                    )
                outputs.append(run.layout.rel(out))
        if together and jobs:
            train_gans_together(jobs, cfg.gan, device=cfg.device, resume=True, progress=progress)
        elif processes > 1 and len(jobs) > 1:
            _in_pool(jobs, cfg.gan, cfg.device, processes, threads, progress)
        else:
            before = torch.get_num_threads()
            torch.set_num_threads(threads)
            try:
                for job in jobs:
                    train_job(job, cfg.gan, device=cfg.device, resume=True, progress=progress)
            finally:
                torch.set_num_threads(before)
    return run


def side_by_side(jobs: int, n_gans: int, cores: int | None = None) -> tuple[int, int]:
    """``(processes, threads)`` for a run of ``n_gans`` GANs with ``gan.jobs = jobs`` (0: one process per core).

    Never more processes than the run's GANs or the cores; the cores are split evenly.
    Both follow the run's GANs, not the ones left to train, so a GAN resumed after an
    interruption gets the thread count it started with (:func:`ctqc.pool.split_cores`).
    """
    return split_cores(min(jobs or n_gans, max(1, n_gans)), cores)


def _train_one(item: tuple[GanJob, GanConfig, str]) -> float:
    """A pool process's work: one GAN (no progress bar); its training seconds."""
    job, gan_cfg, device = item
    return train_job(job, gan_cfg, device=device, resume=True, progress=False).seconds


def _in_pool(jobs: list[GanJob], gan_cfg: GanConfig, device: str, processes: int, threads: int, progress: bool) -> None:
    """``jobs`` in ``min(processes, len(jobs))`` spawned processes of ``threads`` torch threads.

    The progress bars follow each GAN's epoch from its ``stats.jsonl`` (what its process
    has logged), read about once a second.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    workers = min(processes, len(jobs))
    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), disable=not progress)
    overall = bar.add_task(f"GANs ({workers} processes × {threads} thread{'s' if threads > 1 else ''})", total=len(jobs))
    tasks = {job.out_dir: bar.add_task(f"  {job.progress_label}", total=gan_cfg.epochs) for job in jobs}

    def poll() -> None:
        for out_dir, task in tasks.items():
            epoch = _logged_epoch(out_dir / "stats.jsonl")
            if epoch is not None:
                bar.update(task, completed=epoch)

    with bar:
        for (job, _, _), seconds in run_unordered(_train_one, ((job, gan_cfg, device) for job in jobs), workers, threads, poll=poll if progress else None):
            bar.update(tasks[job.out_dir], completed=gan_cfg.epochs, description=f"  {job.progress_label}: done in {seconds:.0f} s")
            bar.advance(overall)


def _logged_epoch(stats: Path) -> int | None:
    """The epoch of the last complete line of a GAN's ``stats.jsonl`` (None when there is none yet)."""
    try:
        with stats.open("rb") as fh:
            fh.seek(max(0, fh.seek(0, 2) - 4096))
            lines = fh.read().splitlines()
    except OSError:
        return None
    for line in reversed(lines):
        try:
            return int(json.loads(line)["epoch"])
        except (ValueError, KeyError, TypeError):
            continue  # a line being written, or one without an epoch
    return None
