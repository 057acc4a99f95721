"""Independent jobs in a pool of spawned processes, each with its own torch thread count.

Used where a stage's jobs are small trainings that share nothing (the compare
stage's classifier trainings, the train stage's GANs): on a few CPU cores two
one-thread trainings side by side finish sooner than the same two one after the
other with two threads each, because the small convolutions of these models do
not keep two threads busy (bench/RESULTS.md, "GANs side by side").

Processes are *spawned* (not forked): a child imports what it needs afresh and
inherits no torch thread pools or CUDA state. ``fn`` and the jobs must therefore
be picklable (module-level functions, plain data and tensors).

A pool never outlives its command: a worker ends when the process that started it
dies (Linux: ``prctl(PR_SET_PDEATHSIG)``; elsewhere, or when the pool was started off
the main thread, a thread waiting on the parent's sentinel), so a killed ``ctqc``
leaves no orphan writing into a run it no longer locks; and a failure or interrupt in the parent ends the running workers at once
(their last checkpoints stay; a resume continues from them).

``OMP_NUM_THREADS``, when set, caps the cores a pool splits (the convention torch
and OpenMP follow for one process).
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import TypeVar

import torch

J = TypeVar("J")
R = TypeVar("R")


def affinity_cores() -> int:
    """The CPU cores this process may run on: its affinity mask (``os.cpu_count()`` where there is none)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def available_cores() -> int:
    """The CPU cores a pool may split: :func:`affinity_cores`, capped by ``OMP_NUM_THREADS`` when that is a positive integer.

    Not for torchrun ranks: torchrun sets ``OMP_NUM_THREADS=1`` in each rank unless it is set (use
    :func:`affinity_cores` divided by the local ranks there).
    """
    cores = affinity_cores()
    try:
        cap = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        return cores
    return min(cores, cap) if cap > 0 else cores


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


def init_worker(threads: int, parent: int | None = None, from_main_thread: bool = False) -> None:
    """A pool process's initialiser: its torch intra-op thread count, and its end when ``parent`` (a pid) dies."""
    torch.set_num_threads(threads)
    if parent is not None:
        _end_with(parent, from_main_thread)


def _end_with(parent: int, from_main_thread: bool) -> None:
    """End this process when ``parent`` dies.

    On Linux, when the parent's main thread started this process: the parent-death signal
    (SIGTERM; the kernel sends it when the *thread* that created the child exits, hence the
    main-thread condition). Otherwise a daemon thread waits on the parent's sentinel
    (:func:`multiprocessing.parent_process`, every OS) and exits when it fires.
    """
    if from_main_thread and sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            if ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM)) == 0:  # PR_SET_PDEATHSIG = 1
                if os.getppid() != parent:  # the parent died before the call: no signal will come
                    os._exit(1)
                return
    parent_process = multiprocessing.parent_process()
    if parent_process is None:
        return

    def watch() -> None:
        multiprocessing.connection.wait([parent_process.sentinel])
        os._exit(1)

    threading.Thread(target=watch, daemon=True, name="ctqc-parent-watch").start()


def _terminate(pool: ProcessPoolExecutor) -> None:
    """End ``pool``'s worker processes now (running jobs are lost; what they wrote atomically stays)."""
    if hasattr(pool, "terminate_workers"):  # Python ≥ 3.14 (it does not wait for them)
        pool.terminate_workers()
        pool.shutdown(wait=True)
        return
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(Exception):
            process.terminate()
    pool.shutdown(wait=True, cancel_futures=True)


def run_unordered(
    fn: Callable[[J], R], queue: Iterator[J], workers: int, threads: int, poll: Callable[[], None] | None = None, poll_every: float = 1.0
) -> Iterator[tuple[J, R]]:
    """``fn(job)`` for every job of ``queue`` in ``workers`` spawned processes of ``threads`` threads each.

    Yields ``(job, result)`` as each finishes (completion order, not queue order).
    ``queue`` is consumed lazily: at most ``workers + 1`` jobs are submitted ahead, so
    none waits idle and few are held in memory. ``poll`` (if given) is called about
    every ``poll_every`` seconds while jobs run, e.g. to show their progress. An
    exception raised by ``fn`` is raised here, and so is an interrupt, after the
    running workers have been ended and the queued jobs cancelled.
    """
    from_main_thread = threading.current_thread() is threading.main_thread()  # workers start on this thread (in submit)
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=init_worker, initargs=(threads, os.getpid(), from_main_thread))
    running = {}
    try:
        for job in queue:
            running[pool.submit(fn, job)] = job
            if len(running) >= workers + 1:
                break
        while running:
            done, _ = wait(running, timeout=poll_every if poll is not None else None, return_when=FIRST_COMPLETED)
            if poll is not None:
                poll()
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
        _terminate(pool)
        raise
    pool.shutdown(wait=True)
