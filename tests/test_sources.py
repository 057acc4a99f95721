"""Folder + CSV quirks, MedMNIST .npz, phantoms, and the data fingerprint."""

import numpy as np
import pytest
from PIL import Image

from ctqc.config import DataConfig
from ctqc.data import load_dataset
from tests.conftest import make_folder


def test_kaggle_nested_folder_and_integer_ids(tmp_path):
    make_folder(tmp_path, image_dir="head_ct/head_ct")  # the Kaggle archive nests the folder twice
    (tmp_path / "labels.csv").write_text("id, hemorrhage\n" + "".join(f"{n}, {n % 2}\n" for n in range(10)))  # ids read as ints
    data = load_dataset(DataConfig(path=tmp_path))
    assert len(data) == 10 and data.source.images_dir.endswith("head_ct/head_ct")
    assert data.ids[:3] == ("0", "1", "2") and data.class_counts() == {"normal": 5, "haemorrhage": 5}


def test_configurable_columns_groups_and_label_names(tmp_path):
    make_folder(tmp_path)
    rows = ["patient,file,diagnosis"] + [f"P{n // 2},{n:03d},{'haemorrhage' if n % 2 else 'normal'}" for n in range(10)]
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    cfg = DataConfig(path=tmp_path, id_column="file", label_column="diagnosis", group_column="patient")
    data = load_dataset(cfg)
    assert data.groups[:4] == ("P0", "P0", "P1", "P1") and data.labels.tolist() == [0, 1] * 5


def test_multiclass_npz_medmnist_style(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {}
    for split, n in (("train", 30), ("val", 9), ("test", 12)):
        arrays[f"{split}_images"] = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        arrays[f"{split}_labels"] = (np.arange(n) % 3).reshape(-1, 1)
    np.savez(tmp_path / "organ.npz", **arrays)
    data = load_dataset(DataConfig(path=tmp_path / "organ.npz", classes={0: "a", 1: "b", 2: "c"}))
    assert tuple(data.images.shape) == (51, 1, 32, 32)
    assert data.class_counts() == {"a": 17, "b": 17, "c": 17}
    assert data.ids[0] == "train_00000" and data.ids[-1] == "test_00011"
    assert data.targets.max() == 2
    first = arrays["train_images"][0].astype(np.float32) / 255 * 2 - 1
    assert float(data.images[0].mean()) == pytest.approx(float(first.mean()), abs=0.02)


def test_fingerprint_tracks_content_and_preprocessing(tmp_path):
    make_folder(tmp_path)
    base = load_dataset(DataConfig(path=tmp_path)).source
    assert load_dataset(DataConfig(path=tmp_path)).source.fingerprint == base.fingerprint
    bigger = load_dataset(DataConfig(path=tmp_path, image_size=64)).source
    assert bigger.content_hash == base.content_hash and bigger.fingerprint != base.fingerprint
    Image.new("L", (20, 24), 7).save(tmp_path / "head_ct" / "004.png")  # one image changes
    changed = load_dataset(DataConfig(path=tmp_path)).source
    assert changed.content_hash != base.content_hash and changed.fingerprint != base.fingerprint


def test_duplicate_files_are_reported(tmp_path):
    make_folder(tmp_path)
    (tmp_path / "head_ct" / "003.png").write_bytes((tmp_path / "head_ct" / "001.png").read_bytes())
    data = load_dataset(DataConfig(path=tmp_path))
    assert any("'001' and '003' are byte-identical" in w for w in data.source.warnings)


def test_builtin_phantoms_are_the_default_source():
    from ctqc.config import PhantomConfig

    cfg = DataConfig(phantom=PhantomConfig(n_per_class=6, size=48))
    data = load_dataset(cfg)
    assert data.source.kind == "phantom" and len(data) == 12
    assert data.class_counts() == {"normal": 6, "haemorrhage": 6}
    assert load_dataset(cfg).source.fingerprint == data.source.fingerprint
