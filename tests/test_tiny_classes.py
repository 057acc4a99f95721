"""Tiny classes: t-SNE/UMAP adapt to small sets or are skipped with a note; the filter stage completes."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from ctqc.qc.embeddings import MIN_POINTS, embed


@pytest.mark.parametrize("method", ["tsne", "umap"])
def test_embed_adapts_to_small_sets_and_skips_below_the_minimum(method):
    rng = np.random.default_rng(0)
    smallest = MIN_POINTS[method]
    assert embed(rng.normal(size=(smallest - 1, 12)), method) is None
    for n in (smallest, 7):
        coords = embed(rng.normal(size=(n, 12)), method, seed=0)
        assert coords.shape == (n, 2) and np.isfinite(coords).all()


def test_filter_with_one_synthetic_image_per_class_completes(tmp_path, run_cli):
    """Bring-your-own: 4 real and 1 synthetic image per class (issue 19 item 7)."""
    rng = np.random.default_rng(0)
    for root, n in (("real", 4), ("syn", 1)):
        for name in ("normal", "haemorrhage"):
            (tmp_path / root / name).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(tmp_path / root / name / f"{i}.png")
    result = run_cli("filter", "--real", tmp_path / "real", "--synthetic", tmp_path / "syn", "--out", tmp_path / "out", "--set", "qc.n_permutations=0")
    assert result.code == 0, result.err
    report = json.loads((tmp_path / "out" / "filter.json").read_text())
    notes = [note for entry in report["per_class"].values() for note in entry.get("notes", [])]
    table = pd.read_csv(tmp_path / "out" / "embeddings.csv")
    for method, name in (("tsne", "t-SNE"), ("umap", "UMAP")):
        counts = table.groupby("class").size()
        skipped = [c for c, n in counts.items() if n < MIN_POINTS[method]]
        embedded = table[~table["class"].isin(skipped)]
        assert embedded[f"{method}_x"].notna().all()  # adapted where the data allow
        assert table[table["class"].isin(skipped)][f"{method}_x"].isna().all()
        assert len([n for n in notes if n.startswith(name)]) == len(skipped)
    assert notes, "this set is small enough that one embedding is skipped somewhere"
    assert (tmp_path / "out" / "embedding_tsne.png").is_file() and (tmp_path / "out" / "embedding_umap.png").is_file()
