"""Independent jobs in a pool of spawned processes, each with its own torch thread count.

Used where a stage's jobs are small trainings that share nothing (the compare
stage's classifier trainings, the train stage's GANs): on a few CPU cores two
one-thread trainings side by side finish sooner than the same two one after the
other with two threads each, because the small convolutions of these models do
not keep two threads busy (bench/RESULTS.md, "GANs side by side").

Processes are *spawned* (not forked): a child imports what it needs afresh and
inherits no torch thread pools or CUDA state. ``fn`` and the jobs must therefore
be picklable (module-level functions, plain data and tensors).
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import TypeVar

import torch

J = TypeVar("J")
R = TypeVar("R")


def available_cores() -> int:
    """The CPU cores this process may run on (its affinity mask; ``os.cpu_count()`` where there is none)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def split_cores(jobs: int, cores: int | None = None) -> tuple[int, int]:
    """``(processes, threads)``: ``jobs`` processes (0: one per core; never more than the cores) and the cores split evenly between them.

    The threads follow the requested processes, not the jobs left to run, so that a
    job resumed after an interruption runs with the thread count it had in one go
    (a CPU kernel's summation order, and so its last bits, depend on it). Callers run
    ``min(processes, pending)`` processes.
    """
    cores = available_cores() if cores is None else cores
    processes = max(1, min(jobs or cores, cores))
    return processes, max(1, cores // processes)


def init_worker(threads: int) -> None:
    """A pool process's initialiser: its torch intra-op thread count."""
    torch.set_num_threads(threads)


def run_unordered(fn: Callable[[J], R], queue: Iterator[J], workers: int, threads: int) -> Iterator[tuple[J, R]]:
    """``fn(job)`` for every job of ``queue`` in ``workers`` spawned processes of ``threads`` threads each.

    Yields ``(job, result)`` as each finishes (completion order, not queue order).
    ``queue`` is consumed lazily: at most ``workers + 1`` jobs are submitted ahead, so
    none waits idle and few are held in memory. An exception raised by ``fn`` is
    raised here (after the pool has cancelled what had not started and waited for
    what had); so is an interrupt.
    """
    with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=init_worker, initargs=(threads,)) as pool:
        running = {}
        try:
            for job in queue:
                running[pool.submit(fn, job)] = job
                if len(running) >= workers + 1:
                    break
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    job = running.pop(future)
                    result = future.result()
                    yield job, result
                    nxt = next(queue, None)
                    if nxt is not None:
                        running[pool.submit(fn, nxt)] = nxt
        except BaseException:
            for future in running:
                future.cancel()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
