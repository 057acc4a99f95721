"""One process per run directory, and run names that never collide.

Two mechanisms, both safe between processes started in the same second:

- :func:`reserved_name` reserves ``<root>/<name>`` (or ``<name>-2``, ``<name>-3``…) with an
  atomic ``os.mkdir`` of ``<root>/.<name>.reserved``: exactly one process gets each name,
  and holds it until its run is renamed into place.
- :func:`hold` takes the lock ``<run>/.lock`` (an ``flock`` through the ``filelock`` package,
  released by the system when the process dies). While held, the file records the holder
  (``pid``, host, command) for messages; released, it is empty again, so a command that
  was refused or failed leaves the run's bytes as they were.

Holding is re-entrant inside a process and keyed by the folder's inode, so a run built
under a temporary name and renamed into place stays held. Inside :func:`session` every
lock taken is kept until the session ends (``ctqc run`` holds its run across all stages).
Under torchrun only rank 0 takes locks (the callers run there).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ctqc.errors import UserError

LOCK_NAME = ".lock"


@dataclass
class _Held:
    lock: object  # filelock.FileLock, acquired once
    fd: int | None  # our own descriptor of the lock file: holder info is written through it
    count: int = 0
    paths: list[Path] = field(default_factory=list)


_held: dict[tuple[int, int], _Held] = {}
_session_depth = 0


@contextlib.contextmanager
def reserved_name(root: Path, base: str) -> Iterator[str]:
    """Reserve the first free name of ``base``, ``base-2``, ``base-3``… under ``root`` for the block.

    The reservation is the hidden folder ``root/.<name>.reserved``, made with ``os.mkdir``
    (atomic: two processes never hold the same one); a name is free when neither it nor its
    reservation exists. Create ``root/<name>`` inside the block; the reservation is given
    back when the block ends, whether or not the run was created. Raises :class:`UserError`
    when ``root`` is not writable.
    """
    root = Path(root)
    n = 1
    while True:
        name = base if n == 1 else f"{base}-{n}"
        marker = root / f".{name}.reserved"
        try:
            os.mkdir(marker)
        except FileExistsError:
            n += 1
            continue
        except OSError as exc:
            raise UserError(f"cannot write run directories under {root} ({exc.strerror or exc.__class__.__name__}); set run.root=DIR") from None
        if os.path.lexists(root / name):  # finished by someone before us: not free
            _rmdir(marker)
            n += 1
            continue
        break
    try:
        yield name
    finally:
        _rmdir(marker)


def drop_stale_reservations(stale_temporaries: list[Path]) -> None:
    """Give back the names reserved by creators that were killed: ``stale_temporaries`` are their
    temporary run folders (``.<name>.<pid>.<random>.tmp``, already removed by
    ``ctqc.atomic.remove_stale_temporaries``); their ``.<name>.reserved`` go too."""
    for tmp in stale_temporaries:
        match = re.fullmatch(r"\.(.+)\.\d+\.(?:[a-z0-9_]{8}\.)?tmp", tmp.name)
        if match:
            _rmdir(tmp.parent / f".{match.group(1)}.reserved")


def _rmdir(path: Path) -> None:
    with contextlib.suppress(OSError):
        path.rmdir()


def _key(run_path: Path) -> tuple[int, int] | None:
    try:
        st = os.stat(run_path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def holder(run_path: Path) -> str:
    """Who holds ``run_path`` as the lock file records it: ``pid 123 on host (ctqc train)``, or ``another process``."""
    try:
        info = json.loads((Path(run_path) / LOCK_NAME).read_text(encoding="utf-8"))
        return f"pid {info['pid']} on {info['host']} ({info['command']}, since {info['since']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


def is_held(run_path: Path) -> bool:
    """Whether another live process holds ``run_path`` (this process's own hold does not count)."""
    from filelock import FileLock, Timeout

    key = _key(run_path)
    if key is None or key in _held:
        return False
    lock_file = Path(run_path) / LOCK_NAME
    if not lock_file.exists():
        return False
    probe = FileLock(lock_file, timeout=0, thread_local=False)
    try:
        probe.acquire()
    except Timeout:
        return True
    except OSError:
        return False  # e.g. a read-only run: nobody can be writing it
    probe.release()
    return False


@contextlib.contextmanager
def hold(run_path: str | os.PathLike, wait: float = 1.0) -> Iterator[None]:
    """Hold the run folder ``run_path`` for this process until the block ends (or the session ends).

    Waits up to ``wait`` seconds for another holder, then raises :class:`UserError` naming the
    run and the holder. A folder whose lock file cannot be created (read-only) is not locked:
    nothing can be written there anyway. Re-entrant within a process.
    """
    from filelock import FileLock, Timeout

    run_path = Path(run_path)
    key = _key(run_path)
    entry = _held.get(key) if key is not None else None
    if key is not None and entry is None:
        lock = FileLock(run_path / LOCK_NAME, timeout=wait, thread_local=False)
        try:
            lock.acquire()
        except Timeout:
            raise UserError(f"{run_path}: in use by {holder(run_path)}; wait for it to finish, or start a new run") from None
        except OSError:
            lock = None  # cannot create the lock file: a read-only run
        fd = None
        if lock is not None:
            fd = _write_holder(run_path / LOCK_NAME)
        entry = _held[key] = _Held(lock=lock, fd=fd)
    if entry is not None:
        entry.count += 1
    try:
        yield
    finally:
        if entry is not None:
            entry.count -= 1
            if entry.count == 0 and _session_depth == 0:
                _release(key)


@contextlib.contextmanager
def session() -> Iterator[None]:
    """Keep every lock taken inside the block until it ends (``hold`` blocks inside do not release)."""
    global _session_depth
    _session_depth += 1
    try:
        yield
    finally:
        _session_depth -= 1
        if _session_depth == 0:
            for key in [k for k, e in _held.items() if e.count == 0]:
                _release(key)


def _write_holder(lock_file: Path) -> int | None:
    """Record this process in the (held) lock file, best effort: a full disk must not stop the command."""
    info = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(["ctqc", *sys.argv[1:3]]), "since": time.strftime("%Y-%m-%d %H:%M:%S")}
    try:
        fd = os.open(lock_file, os.O_RDWR)
    except OSError:
        return None
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
    return fd


def _release(key: tuple[int, int]) -> None:
    entry = _held.pop(key)
    if entry.fd is not None:
        with contextlib.suppress(OSError):
            os.ftruncate(entry.fd, 0)  # released: the file is empty again
        os.close(entry.fd)
    if entry.lock is not None:
        entry.lock.release()
