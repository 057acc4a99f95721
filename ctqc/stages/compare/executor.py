"""Running training jobs: in-process or in a pool of spawned processes, with progress and resume.

Jobs run in ``workers`` spawned processes with ``threads`` torch threads each
(the stage picks ``cores // workers``, never more threads than cores). A job
whose unit file ``compare/units/<key>.json`` is complete and carries the job's
signature is not run again (:func:`load_unit`).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ctqc.pool import run_unordered
from ctqc.stages.compare.jobs import UNIT_FORMAT, TrainingJob, train_unit


def load_unit(path: Path, signature: str) -> dict | None:
    """A completed unit's record, or None when absent, unreadable or made from other inputs."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if record.get("format") != UNIT_FORMAT or record.get("signature") != signature:
        return None
    return record


def execute(pending: Iterator[TrainingJob], n_pending: int, workers: int, threads: int, progress: bool, console, total: int, already: int) -> Iterator[dict]:
    """Run the ``n_pending`` jobs of ``pending``, ``workers`` at a time; yield each record as it completes.

    ``pending`` is consumed lazily (at most ``workers + 1`` jobs are built ahead), so
    one fold's images are held at a time. The progress bar counts ``total`` units,
    ``already`` of them complete before this call.
    """
    if not n_pending:
        return
    bar = task = None
    if progress:
        bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(), console=console)
        task = bar.add_task(f"compare ({workers} process{'es' if workers > 1 else ''})", total=total, completed=already)
    with bar if bar is not None else contextlib.nullcontext():
        if workers == 1:
            yield from _in_process(pending, bar, task)
        else:
            yield from _in_pool(pending, workers, threads, bar, task)


def _in_process(pending: Iterator[TrainingJob], bar: Progress | None, task) -> Iterator[dict]:
    """One job after another in this process (its torch thread count is restored afterwards)."""
    before = torch.get_num_threads()
    try:
        for job in pending:
            on_epoch = None
            if bar is not None:
                label = f"{job.arm} fold {job.fold} seed {job.seed}"
                on_epoch = lambda r, label=label: bar.update(task, description=f"{label}: epoch {r['epoch']}, val loss {r['val_loss']:.3f}")
            record = train_unit(job, on_epoch)
            if bar is not None:
                bar.advance(task)
            yield record
    finally:
        torch.set_num_threads(before)


def _in_pool(queue: Iterator[TrainingJob], workers: int, threads: int, bar: Progress | None, task) -> Iterator[dict]:
    """``workers`` spawned processes (:func:`ctqc.pool.run_unordered`)."""
    for job, record in run_unordered(train_unit, queue, workers, threads):
        if bar is not None:
            bar.update(task, advance=1, description=f"compare ({workers} processes): {job.key} done")
        yield record
