"""Shared fixtures: small phantom datasets on disk and an in-process CLI runner."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import pytest


@dataclass
class CliResult:
    code: int
    out: str
    err: str


@pytest.fixture
def run_cli(capsys, monkeypatch, tmp_path):
    """Run ``ctqc ARGS`` in-process (through ``ctqc.cli.main``) inside ``tmp_path``."""
    from ctqc.cli import main

    monkeypatch.chdir(tmp_path)

    def invoke(*args: str) -> CliResult:
        capsys.readouterr()
        monkeypatch.setattr(sys, "argv", ["ctqc", *map(str, args)])
        try:
            main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return invoke


@pytest.fixture(scope="session")
def phantom_folder(tmp_path_factory) -> Path:
    """A small Kaggle-layout phantom dataset: 12 images per class at 64 px."""
    from ctqc.demo_data import write_kaggle_layout
    from ctqc.phantoms import PhantomSpec

    out = tmp_path_factory.mktemp("phantom") / "head_ct_data"
    write_kaggle_layout(out, PhantomSpec(n_per_class=12, size=64, seed=3))
    return out


def tree_snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` with its bytes: to prove a failed command changed nothing."""
    if not root.exists():
        return {}
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}
