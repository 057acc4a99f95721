"""Atomic file and directory writes: a reader never sees a partial file.

Everything is written under a temporary name in the destination's own directory
(so the final ``os.replace`` is a same-filesystem rename) and renamed into place.
Temporary names are hidden and carry the writer's process id
(``.<name>.<pid>.<random>.tmp``), so what a killed process left behind can be
told from a live writer's files and removed (:func:`remove_stale_temporaries`).
A write that fails for lack of space or permission raises :class:`UserError`
naming the destination, after removing its temporary file.

**Failpoints** (for the reliability tests, ``tests/reliability/``): the
environment variable ``CTQC_FAILPOINT="<glob>:<n>[:<action>]"`` acts at the
``n``-th write in this process whose destination path matches ``<glob>``
(``fnmatch``, e.g. ``*/checkpoints/last.pt``). Actions: ``kill`` (default:
SIGKILL once the temporary file is complete, before the rename — a crash in the
middle of a write), ``kill-after`` (SIGKILL just after the rename — a crash
between two steps), or an errno name such as ``ENOSPC`` / ``EACCES`` / ``EROFS``
(raise that ``OSError`` instead of renaming — disk full, no permission).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fnmatch
import json
import os
import re
import shutil
import signal
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ctqc.errors import UserError

FAILPOINT_ENV = "CTQC_FAILPOINT"
#: errnos that say "this destination cannot be written", whatever raised them: reported as user errors (exit code 2).
_FULL_OR_READ_ONLY = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS}
_TEMP_NAME = re.compile(r"^\..+\.(?P<pid>\d+)\.(?:[a-z0-9_]{8}\.)?tmp$")  # see _temp_prefix
_failpoint_hits: dict[str, int] = {}  # failpoint spec → matching writes seen by this process
_FIX = "free some disk space or choose a writable location (run.root, --out)"


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    On any exception the temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    with _write_errors_as_user_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent)
        os.close(fd)
    tmp_path = Path(tmp)
    try:
        with _write_errors_as_user_errors(path, _FULL_OR_READ_ONLY):
            yield tmp_path
        with _write_errors_as_user_errors(path):
            os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp creates 0600; give the usual mode
            _fsync_file(tmp_path)
            failpoint(path)
            os.replace(tmp_path, path)
    except UserError:
        tmp_path.unlink(missing_ok=True)
        raise
    except BaseException as exc:
        full = _no_space_left(path.parent)  # e.g. torch.save's zip writer reports ENOSPC as a RuntimeError
        tmp_path.unlink(missing_ok=True)
        if full and isinstance(exc, Exception):
            raise UserError(f"cannot write {path} (No space left on device); {_FIX}") from None
        raise
    failpoint(path, renamed=True)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary directory; rename it to ``path`` on success.

    ``path`` must not exist yet (or be an empty directory). On failure the
    temporary directory is deleted, so no half-written output is left behind.
    """
    path = Path(path)
    with _write_errors_as_user_errors(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=_temp_prefix(path), suffix=".tmp", dir=path.parent))
    try:
        with _write_errors_as_user_errors(path, _FULL_OR_READ_ONLY):
            yield tmp
        with _write_errors_as_user_errors(path):
            os.chmod(tmp, 0o777 & ~_umask())  # mkdtemp creates 0700
            failpoint(path)
            if path.is_dir() and not any(path.iterdir()):
                path.rmdir()
            os.rename(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    failpoint(path, renamed=True)


def replace_dir(new: str | os.PathLike, final: str | os.PathLike) -> None:
    """Put the finished directory ``new`` in place of ``final`` (which may exist).

    Where the system can (Linux ``renameat2``), the two directories are exchanged
    in one atomic step; elsewhere the old directory is renamed aside first and
    put back if the second rename fails. Either way ``final`` is the complete old
    or the complete new version, and the old one is removed afterwards (``new``
    too, when it cannot be put in place).
    """
    new, final = Path(new), Path(final)
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    try:
        with _write_errors_as_user_errors(final):
            failpoint(final)
            if not final.exists():
                new.rename(final)
            elif _exchange(new, final):
                new.rename(old)  # ``new`` now holds the previous version
            else:
                final.rename(old)
                try:
                    new.rename(final)
                except BaseException:
                    old.rename(final)
                    raise
    except BaseException:
        shutil.rmtree(new, ignore_errors=True)  # the staged version is not kept when it cannot be put in place
        raise
    shutil.rmtree(old, ignore_errors=True)
    failpoint(final, renamed=True)


def replace_symlink(link: str | os.PathLike, target: str) -> None:
    """Point ``link`` at ``target`` atomically (create the new link, then rename over)."""
    link = Path(link)
    tmp = link.with_name(f"{_temp_prefix(link)}tmp")
    with _write_errors_as_user_errors(link):
        tmp.unlink(missing_ok=True)
        os.symlink(target, tmp)
        os.replace(tmp, link)


def check_can_create(path: str | os.PathLike) -> None:
    """Refuse early (before the work that fills it) an output ``path`` that could not be created.

    Its nearest existing ancestor must be a folder this process may write to.
    """
    ancestor = Path(path).absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir() or not os.access(ancestor, os.W_OK | os.X_OK):
        raise UserError(f"cannot write {path}: {ancestor} is not a writable folder; choose another location")


def remove_stale_temporaries(root: str | os.PathLike, recursive: bool = True) -> list[Path]:
    """Delete the temporary files and folders that killed processes left in ``root``; return them.

    Temporary names carry their writer's process id, so those of a live process are kept.
    """
    found = Path(root).rglob(".*.tmp") if recursive else Path(root).glob(".*.tmp")
    removed = []
    for path in sorted(found, key=lambda p: len(p.parts)):
        match = _TEMP_NAME.match(path.name)
        if match is None or _alive(int(match["pid"])) or not os.path.lexists(path):
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):  # e.g. a read-only run: leave it
                path.unlink()
        removed.append(path)
    return removed


def failpoint(path: Path, renamed: bool = False) -> None:
    """The ``CTQC_FAILPOINT`` test hook (see the module docstring); does nothing when it is unset."""
    spec = os.environ.get(FAILPOINT_ENV)
    if not spec:
        return
    head, _, action = spec.rpartition(":")
    if action.isdigit():
        pattern, count, action = head, action, "kill"
    else:
        pattern, _, count = head.rpartition(":")
    if not fnmatch.fnmatch(str(path), pattern):
        return
    if not renamed:
        _failpoint_hits[spec] = _failpoint_hits.get(spec, 0) + 1
    if _failpoint_hits.get(spec) != int(count):
        return
    if action == ("kill-after" if renamed else "kill"):
        os.kill(os.getpid(), signal.SIGKILL)
    elif not renamed and action.startswith("E"):
        code = getattr(errno, action)
        raise OSError(code, os.strerror(code), str(path))


@contextlib.contextmanager
def _write_errors_as_user_errors(path: Path, errnos: set[int] | None = None) -> Iterator[None]:
    """Turn an OSError (with one of ``errnos``, or any) into a one-line UserError naming ``path``.

    ctqc's own steps (mkdir, temporary file, rename) fail only because the destination cannot
    be written; inside the caller's block only "disk full / read-only" errnos are that certain.
    """
    try:
        yield
    except OSError as exc:
        if errnos is not None and exc.errno not in errnos:
            raise
        raise UserError(f"cannot write {path} ({exc.strerror or exc.__class__.__name__}); {_FIX}") from None


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically with Linux ``renameat2(RENAME_EXCHANGE)``; False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):  # old kernel or a filesystem without exchange
        return False
    raise OSError(code, os.strerror(code), str(b))


def _no_space_left(folder: Path) -> bool:
    """True when the file system holding ``folder`` has no block left for this user."""
    try:
        return os.statvfs(folder).f_bavail == 0
    except OSError:
        return False


def _temp_prefix(path: Path) -> str:
    """``.<name>.<pid>.``: hidden, next to the destination, and traceable to its writer."""
    return f".{path.name}.{os.getpid()}."


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _fsync_file(path: Path) -> None:
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())
