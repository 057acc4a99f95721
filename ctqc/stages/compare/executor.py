"""Running training jobs: in-process or in a pool of spawned processes, with progress and resume.

Jobs run in ``workers`` spawned processes with ``threads`` torch threads each
(the stage picks ``cores // workers``, never more threads than cores). A job
whose unit file ``compare/units/<key>.json`` is complete and carries the job's
signature is not run again (:func:`load_unit`).
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from pathlib import Path

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from ctqc.stages.compare.jobs import UNIT_FORMAT, TrainingJob, train_unit


def available_cores() -> int:
    """The CPU cores this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def load_unit(path: Path, signature: str) -> dict | None:
    """A completed unit's record, or None when absent, unreadable or made from other inputs."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if record.get("format") != UNIT_FORMAT or record.get("signature") != signature:
        return None
    return record


def init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


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
    """``workers`` spawned processes; one job beyond ``workers`` is queued so that none waits idle."""
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=init_worker, initargs=(threads,)) as pool:
        running = {}
        try:
            for job in queue:
                running[pool.submit(train_unit, job)] = job.key
                if len(running) >= workers + 1:
                    break
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    key = running.pop(future)
                    record = future.result()
                    if bar is not None:
                        bar.update(task, advance=1, description=f"compare ({workers} processes): {key} done")
                    yield record
                    nxt = next(queue, None)
                    if nxt is not None:
                        running[pool.submit(train_unit, nxt)] = nxt.key
        except BaseException:
            for future in running:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
