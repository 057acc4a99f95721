"""Run directories: every stage reads and writes one, through ``manifest.json``.

A run is created whole (built under a temporary name, then renamed), so a
failure while creating it leaves nothing behind. Later stages add files with
atomic writes and record their status in the manifest. ``<root>/latest`` is a
symlink to the newest run.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ctqc import __version__, atomic, runlock
from ctqc.config import Config
from ctqc.errors import UserError

MANIFEST = "manifest.json"
LATEST = "latest"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def git_commit() -> str | None:
    """The ctqc source tree's commit (with ``+dirty`` when modified), or None outside git."""
    src = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        if head.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(src), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=5)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return None


class RunDir:
    """One run directory and its manifest."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    # ---------------------------------------------------------------- creation / lookup

    @classmethod
    @contextlib.contextmanager
    def create(cls, config: Config, data_summary: dict[str, Any]) -> Iterator[RunDir]:
        """Create ``<config.run.root>/<timestamp>-<name>`` atomically and point ``latest`` at it.

        Inside the ``with`` block the yielded run lives under a temporary name;
        write the initial files there. On success it is renamed into place. The name is
        reserved atomically first (``ctqc.runlock.reserved_name``: parallel processes get
        ``-2``, ``-3``…), and the run is held (``ctqc.runlock.hold``) while it is built.
        """
        root = Path(config.run.root)
        _ensure_writable(root)
        runlock.drop_stale_reservations(atomic.remove_stale_temporaries(root, recursive=False))  # runs whose creation was killed
        stamp = time.strftime("%Y%m%d-%H%M%S")
        with runlock.reserved_name(root, f"{stamp}-{config.name}") as name:
            final = root / name
            with atomic.atomic_dir(final) as tmp, runlock.hold(tmp):
                run = cls(tmp)
                atomic.write_text(tmp / "config.yaml", config.to_yaml())
                run._write_manifest(
                    {
                        "ctqc_version": __version__,
                        "git_commit": git_commit(),
                        "created": _now(),
                        "name": config.name,
                        "config_hash": config.hash(),
                        "data": data_summary,
                        "stages": {},
                    }
                )
                yield run
                run.path = final  # the rename happens as the context exits
        atomic.replace_symlink(root / LATEST, name)

    @classmethod
    def open(cls, run: str | Path | None, root: str | Path = "runs") -> RunDir:
        """Open an existing run; ``None`` means ``<root>/latest``."""
        path = Path(root) / LATEST if run is None else Path(run)
        if not path.exists():
            if run is None:
                raise UserError(f"no run found at {path}: start one with `ctqc data prepare` (or pass --run DIR)")
            raise UserError(f"run directory not found: {path}")
        if not (path / MANIFEST).is_file():
            raise UserError(f"{path}: not a ctqc run directory (no {MANIFEST})")
        atomic.remove_stale_temporaries(path)  # left by a killed stage; the stage itself redoes its work
        return cls(path.resolve())

    # ---------------------------------------------------------------- manifest

    @property
    def manifest_path(self) -> Path:
        return self.path / MANIFEST

    def manifest(self) -> dict[str, Any]:
        try:
            return json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"{self.manifest_path}: unreadable manifest ({exc.__class__.__name__})") from None

    def _write_manifest(self, manifest: dict[str, Any]) -> None:
        atomic.write_json(self.manifest_path, manifest)

    def stage_status(self, stage: str) -> str | None:
        return self.manifest().get("stages", {}).get(stage, {}).get("status")

    def require_stage(self, stage: str, command: str) -> None:
        """Refuse to go on when an upstream stage has not finished."""
        if self.stage_status(stage) != "done":
            raise UserError(f"{self.path}: stage '{stage}' has not run; run `{command}` first")

    @contextlib.contextmanager
    def stage(self, stage: str) -> Iterator[list[str]]:
        """Record a stage's start, and on success its finish and outputs.

        Yields a list; append the run-relative paths the stage wrote. A
        :class:`UserError` (bad input found on the way: the user's to fix) puts the
        stage's manifest entry back as it was, so a refused command leaves the run
        as before; any other failure marks the stage ``failed``. Either way the
        exception propagates.

        The run is held by this process meanwhile (``ctqc.runlock.hold``): a run another
        process holds is refused with one line naming it and the holder.
        """
        with runlock.hold(self.path):
            previous = self.manifest().get("stages", {}).get(stage)
            self._update_stage(stage, status="running", started=_now(), finished=None)
            outputs: list[str] = []
            start = time.perf_counter()
            try:
                yield outputs
            except UserError:
                with contextlib.suppress(UserError):  # e.g. the disk is full: the first error is the one to report
                    self._restore_stage(stage, previous)
                raise
            except BaseException as exc:
                with contextlib.suppress(UserError):
                    self._update_stage(stage, status="failed", error=exc.__class__.__name__, seconds=round(time.perf_counter() - start, 3))
                raise
            self._update_stage(stage, status="done", finished=_now(), seconds=round(time.perf_counter() - start, 3), outputs=outputs)

    def _restore_stage(self, stage: str, entry: dict[str, Any] | None) -> None:
        manifest = self.manifest()
        if entry is None:
            manifest.get("stages", {}).pop(stage, None)
        else:
            manifest["stages"][stage] = entry
        self._write_manifest(manifest)

    def _update_stage(self, stage: str, **fields: Any) -> None:
        manifest = self.manifest()
        entry = manifest.setdefault("stages", {}).setdefault(stage, {})
        entry.update(fields)
        if fields.get("status") != "failed":
            entry.pop("error", None)
        self._write_manifest(manifest)

    # ---------------------------------------------------------------- helpers

    def config(self) -> Config:
        from ctqc.config import load_config

        return load_config(self.path / "config.yaml")


def _ensure_writable(root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".write-probe-{time.time_ns()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write run directories under {root} ({exc.strerror or exc.__class__.__name__}); set run.root=DIR") from None
