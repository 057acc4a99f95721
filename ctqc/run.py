"""The ``Run``: one run directory, its manifest, and what the stages load from it, loaded once.

Every stage takes a :class:`Run` and reads nothing else from disk: ``run.config``
(the saved, resolved config), ``run.data()`` (the real images, fingerprint-checked
against the manifest and decoded once per Run: the pipeline passes one Run along), ``run.splits`` and
``run.pool()`` / ``run.pool_images()`` (the synthetic pool and its pixels). Paths
come from :class:`ctqc.layout.RunLayout` (``run.layout``), the one place that spells
them out.

A run is created whole (built under a temporary name, then renamed), so a
failure while creating it leaves nothing behind. Later stages add files with
atomic writes and record their status in the manifest (:meth:`Run.stage`).
``<root>/latest`` is a symlink to the newest run.
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
from ctqc.artefacts import Manifest, write_artefact
from ctqc.config import Config, load_config
from ctqc.data import LabelledImages, load_dataset
from ctqc.data.synthetic import load_synthetic
from ctqc.errors import UserError
from ctqc.layout import CONDITIONAL_UNIT, LATEST, RunLayout, class_slug
from ctqc.splits import Splits


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


class Run:
    """One run directory: its layout, manifest and stage records, and its inputs loaded once."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._config: Config | None = None
        self._splits: Splits | None = None
        self._data: LabelledImages | None = None  # decoded once per Run object: the pipeline passes one along
        self._pool_pixels: dict[str, Any] = {}  # samples/ file name → 1×S×S tensor

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"

    @property
    def layout(self) -> RunLayout:
        return RunLayout(self.path)

    # ---------------------------------------------------------------- creation / lookup

    @classmethod
    @contextlib.contextmanager
    def create(cls, config: Config, data_summary: dict[str, Any], pipeline: bool = False) -> Iterator[Run]:
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
                atomic.write_text(RunLayout(tmp).config, config.to_yaml())
                run._write_manifest(
                    {
                        "ctqc_version": __version__,
                        "git_commit": git_commit(),
                        "created": _now(),
                        "name": config.name,
                        "config_hash": config.hash(),
                        "data": data_summary,
                        **({"pipeline": True} if pipeline else {}),
                        "stages": {},
                    }
                )
                yield run
                run.path = final  # the rename happens as the context exits
        atomic.replace_symlink(root / LATEST, name)

    @classmethod
    def open(cls, run: str | Path | None, root: str | Path = "runs") -> Run:
        """Open an existing run; ``None`` means ``<root>/latest``."""
        path = Path(root) / LATEST if run is None else Path(run)
        if not path.exists():
            if run is None:
                raise UserError(f"no run found at {path}: start one with `ctqc data prepare` (or pass --run DIR)")
            raise UserError(f"run directory not found: {path}")
        if not RunLayout(path).manifest.is_file():
            raise UserError(f"{path}: not a ctqc run directory (no {RunLayout(path).manifest.name})")
        atomic.remove_stale_temporaries(path)  # left by a killed stage; the stage itself redoes its work
        return cls(path.resolve())

    # ---------------------------------------------------------------- manifest

    @property
    def manifest_path(self) -> Path:
        return self.layout.manifest

    def manifest(self) -> dict[str, Any]:
        try:
            return json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as exc:
            raise UserError(f"{self.manifest_path}: unreadable manifest ({exc.__class__.__name__})") from None

    def _write_manifest(self, manifest: dict[str, Any]) -> None:
        """Validate ``manifest`` against :class:`ctqc.artefacts.Manifest` and write what it holds."""
        write_artefact(self.manifest_path, Manifest.model_validate(manifest))

    def stage_status(self, stage: str) -> str | None:
        return self.manifest().get("stages", {}).get(stage, {}).get("status")

    def finished_after(self, first: str, second: str) -> bool:
        """Whether stage ``first`` finished after stage ``second`` (so ``second``'s output may be stale)."""
        stages = self.manifest().get("stages", {})
        return str(stages.get(first, {}).get("finished") or "") > str(stages.get(second, {}).get("finished") or "")

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

    # ---------------------------------------------------------------- inputs, loaded once

    @property
    def config(self) -> Config:
        """The run's saved, resolved config (``config.yaml``)."""
        if self._config is None:
            self._config = load_config(self.layout.config)
        return self._config

    def data(self) -> LabelledImages:
        """The real images, decoded once per :class:`Run` object, checked against the manifest's fingerprint.

        The pipeline hands one ``Run`` from stage to stage, so ``ctqc run`` decodes the data once;
        each CLI command opens its own ``Run`` and so sees the data as they are on disk now.

        Raises :class:`UserError` when the data changed since the run was created.
        """
        if self._data is None:
            self._data = load_dataset(self.config.data)
        data = self._data
        recorded = self.manifest().get("data", {}).get("fingerprint")
        if recorded and recorded != data.source.fingerprint:
            raise UserError(f"{self.path}: the data changed since this run was created (fingerprint {data.source.fingerprint} ≠ {recorded}); start a new run")
        return data

    def adopt(self, config: Config, data: LabelledImages, splits: Splits | None = None) -> Run:
        """Hand over what the caller already loaded (the run's creator), so nothing is read twice."""
        self._config = config
        self._data = data
        self._splits = splits
        return self

    @property
    def splits(self) -> Splits:
        """``splits.csv``: image id, class, fold, role."""
        if self._splits is None:
            self._splits = Splits.load(self.layout.splits)
        return self._splits

    def pool(self, kept_only: bool = False):
        """The synthetic pool, ``samples/index.csv`` as a DataFrame (one row per image).

        ``kept_only`` keeps the rows that ``filter/kept.csv`` names. Raises :class:`UserError`
        when the pool is missing or empty, or the filter's output is older than the pool.
        """
        import pandas as pd

        index_path = self.layout.samples_index
        if not index_path.is_file():
            raise UserError(f"{index_path} is missing: no GAN samples; run `ctqc train` first (or `ctqc generate`)")
        index = pd.read_csv(index_path, dtype={"sample_id": str, "file": str})
        if index.empty:
            raise UserError(f"{index_path} lists no synthetic images: run `ctqc train` first (or `ctqc generate --n N`)")
        if not kept_only:
            return index
        return index[index["sample_id"].isin(self.kept()["sample_id"])].reset_index(drop=True)

    def kept(self, strategy: str | None = None):
        """``filter/kept.csv`` (or a strategy's ``filter/<strategy>/kept.csv``), checked to belong to the current pool;
        raises :class:`UserError` otherwise."""
        import pandas as pd

        self.require_stage("filter", "ctqc filter")
        kept_path = self.layout.kept if strategy is None else self.layout.strategy_kept(strategy)
        if not kept_path.is_file():
            raise UserError(f"{kept_path} is missing: run `ctqc filter` again")
        kept = pd.read_csv(kept_path, dtype={"sample_id": str, "file": str})
        if self.finished_after("generate", "filter"):
            raise UserError(f"{kept_path} is older than the synthetic pool (`ctqc generate` ran after `ctqc filter`): run `ctqc filter` again")
        index = pd.read_csv(self.layout.samples_index, dtype={"sample_id": str, "file": str})
        stale = sorted(set(kept["sample_id"]) - set(index["sample_id"]))
        if stale:
            raise UserError(f"{kept_path} names {stale[0]!r}, which is not in samples/index.csv: the pool was regenerated after filtering; run `ctqc filter` again")
        return kept

    def generator_checkpoint(self, fold: int, key: int) -> Path:
        """The final generator of class ``key`` in fold ``fold`` (the conditional GAN's in conditional mode); may not exist."""
        unit = CONDITIONAL_UNIT if self.config.gan.mode == "conditional" else class_slug(self.config.data.classes[key], key)
        return self.layout.generator(fold, unit)

    def pool_images(self, files):
        """Pixels of the pool's images ``files`` (names in ``samples/``): float32 N×1×S×S in [-1, 1], read once."""
        import torch

        missing = [f for f in dict.fromkeys(map(str, files)) if f not in self._pool_pixels]
        if missing:
            fresh = load_synthetic(self.layout.samples, missing, self.config.data.max_image_pixels)
            self._pool_pixels.update(zip(missing, fresh))
        pixels = [self._pool_pixels[str(f)] for f in files]
        if len({tuple(p.shape) for p in pixels}) > 1:
            raise UserError(f"{self.layout.samples}: synthetic images of different sizes; run `ctqc generate` again")
        return torch.stack(pixels) if pixels else torch.empty(0, 1, 0, 0)

    def forget_pool(self) -> None:
        """Drop cached pool pixels (the generate stage rewrote ``samples/``)."""
        self._pool_pixels.clear()


def _ensure_writable(root: Path) -> None:
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = root / f".write-probe-{time.time_ns()}"
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write run directories under {root} ({exc.strerror or exc.__class__.__name__}); set run.root=DIR") from None
