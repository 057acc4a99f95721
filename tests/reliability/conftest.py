"""Shared set-up of the reliability suite: ctqc as a real subprocess, and small runs built once.

Every run in this suite uses the ``smoke`` preset with :data:`LIGHT` on top (a GAN
of width 8, no embeddings, few bootstrap replicates, one seed per arm), so a whole
``ctqc run`` takes seconds on two CPU cores. Tests that need a trained run copy
one of the session's runs (:func:`copy_run`) instead of training their own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CTQC = [sys.executable, "-m", "ctqc"]
#: ``--set`` overrides on top of ``--config smoke`` for every run of the suite.
LIGHT = [
    "gan.width=8",
    "qc.embeddings=[]",
    "qc.n_bootstrap=20",
    "qc.metric_features=domain",
    "compare.seeds=1",
    "compare.jobs=1",
]


def light_args(*extra: str) -> list[str]:
    """``--config smoke --set …`` for a CLI call: :data:`LIGHT` plus ``extra`` overrides."""
    args = ["--config", "smoke"]
    for item in (*LIGHT, *extra):
        args += ["--set", item]
    return args


def ctqc(*args, cwd: Path, failpoint: str | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run ``python -m ctqc ARGS`` in ``cwd``; ``failpoint`` sets ``CTQC_FAILPOINT`` (see ``ctqc.atomic``)."""
    env = {k: v for k, v in os.environ.items() if k != "CTQC_FAILPOINT"}
    env.update(PYTHONPATH=str(REPO), COLUMNS="200")
    if failpoint:
        env["CTQC_FAILPOINT"] = failpoint
    return subprocess.run([*CTQC, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def stages(run: Path) -> dict:
    """The manifest's stage entries."""
    return json.loads((run / "manifest.json").read_text())["stages"]


def copy_run(src: Path, root: Path) -> Path:
    """Copy the run ``src`` to ``root/runs/`` and point ``root/runs/latest`` at the copy."""
    dst = root / "runs" / src.name
    shutil.copytree(src, dst, symlinks=True)
    (root / "runs" / "latest").symlink_to(src.name)
    return dst


class SharedRuns:
    """The session's runs, built in-process on first use: ``trained`` (train) and ``filtered`` (train + filter)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self._runs: dict[str, Path] = {}

    def get(self, kind: str) -> Path:
        if kind not in self._runs:
            self._runs[kind] = self._build(kind)
        return self._runs[kind]

    def _build(self, kind: str) -> Path:
        from ctqc.config import load_config
        from ctqc.filtering import run_filter
        from ctqc.rundir import RunDir
        from ctqc.train import train

        if kind == "trained":
            cfg = load_config("smoke", [*LIGHT, f"run.root={self.base / kind}"])
            return train(cfg, progress=False).path
        if kind == "filtered":
            path = copy_run(self.get("trained"), self.base / kind)
            run_filter(RunDir(path))
            return path
        raise KeyError(kind)


@pytest.fixture(scope="session")
def shared_runs(tmp_path_factory) -> SharedRuns:
    return SharedRuns(tmp_path_factory.mktemp("shared_runs"))
