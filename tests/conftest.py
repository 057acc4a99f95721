"""Shared fixtures: small phantom datasets on disk and an in-process CLI runner."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
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


def tree_snapshot(root: Path) -> dict[str, object]:
    """Every entry under ``root``: a file's bytes, a link's target, ``"dir"`` for a folder.

    Equal snapshots before and after a failed command prove it changed nothing:
    no partial file, no new (even empty) folder, no moved link.
    """
    if not root.exists():
        return {}
    snapshot: dict[str, object] = {}
    for p in sorted(root.rglob("*")):
        key = str(p.relative_to(root))
        if p.is_symlink():
            snapshot[key] = ("link", os.readlink(p))
        elif p.is_file():
            snapshot[key] = p.read_bytes()
        else:
            snapshot[key] = "dir"
    return snapshot


def make_folder(root: Path, n_per_class: int = 5, header: str = "id, hemorrhage", image_dir: str = "head_ct") -> Path:
    """A small valid dataset: 20×24 grayscale PNGs in ``root/image_dir`` plus labels.csv."""
    from PIL import Image

    images = root / image_dir
    images.mkdir(parents=True, exist_ok=True)
    rows = [header]
    rng = np.random.default_rng(0)
    for n in range(2 * n_per_class):
        Image.fromarray(rng.integers(0, 255, (20, 24), dtype=np.uint8)).save(images / f"{n:03d}.png")
        rows.append(f"{n:03d}, {n % 2}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


# ----------------------------------------------------------------------------- hand-made compare/summary.json

#: the top-level fields of a compare/summary.json written before issue 16: per-training t-intervals over 5 seeds of fold 0
T_TEST_FIELDS = {"ci": "95 % two-sided t-interval of the mean over folds × seeds", "test": "paired t", "seeds": [0, 1, 2, 3, 4], "folds": [0]}


def paired_t(arm: str, mean_diff: float, ci_low: float, ci_high: float, p_value: float, metric: str = "balanced_accuracy", **extra) -> dict:
    """One ``comparisons`` entry as written before issue 16: ``arm`` − original, a paired t-test over 5 trainings (no role, verdict or MDE)."""
    return {"arm": arm, "reference": "original", "metric": metric, "mean_diff": mean_diff, "ci_low": ci_low, "ci_high": ci_high, "p_value": p_value, "test": "paired t", "n_pairs": 5, **extra}


def t_test_summary(metrics: list[str], arms: dict, more_comparisons: tuple[dict, ...] = (), **fields) -> dict:
    """A hand-made compare/summary.json as written before issue 16 (:data:`T_TEST_FIELDS`): on balanced accuracy,
    original+filtered − original +2.1 points (95 % CI −3.0 to +7.2, p = 0.41) and original+synthetic − original +5.0
    (+1.0 to +9.0, p = 0.02), then ``more_comparisons``; ``fields`` add top-level keys."""
    comparisons = [paired_t("original+filtered", 0.021, -0.030, 0.072, 0.41), paired_t("original+synthetic", 0.05, 0.01, 0.09, 0.02), *more_comparisons]
    return {"metrics": metrics, "arms": arms, "comparisons": comparisons, **T_TEST_FIELDS, **fields}
