"""Splits: exact stratification, disjoint roles, determinism, and no path to test images."""

import dataclasses

import numpy as np
import pytest
import torch

from ctqc.config import SplitConfig
from ctqc.data.dataset import LabelledImages
from ctqc.splits import DevelopmentData, Splits


def dataset(counts=(100, 100), groups_per_class=None, size=8):
    labels = np.concatenate([np.full(n, k) for k, n in enumerate(counts)]).astype(np.int64)
    n = len(labels)
    ids = tuple(f"{i:03d}" for i in range(n))
    images = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, size, size).contiguous()
    groups = None
    if groups_per_class:
        groups = tuple(f"p{labels[i]}_{i % groups_per_class}" for i in range(n))
    names = {k: f"class{k}" for k in range(len(counts))}
    return LabelledImages(ids=ids, labels=labels, images=images, class_names=names, groups=groups)


def test_holdout_reproduces_the_papers_144_34_22_exactly_stratified():
    splits = Splits.make(dataset(), SplitConfig(), seed=0)
    sizes = splits.sizes(0)
    assert sizes == {"train": {"class0": 72, "class1": 72}, "val": {"class0": 17, "class1": 17}, "test": {"class0": 11, "class1": 11}}


@pytest.mark.parametrize("counts", [(100, 100), (130, 70), (50, 30, 20), (7, 40)])
def test_stratification_is_exact_up_to_rounding(counts):
    data = dataset(counts)
    splits = Splits.make(data, SplitConfig(), seed=1)
    n = sum(counts)
    for role in ("test", "val"):
        part = splits.sizes(0)[role]
        total = sum(part.values())
        for k, count in enumerate(counts):
            expected = count * total / n
            assert abs(part[f"class{k}"] - expected) < 1 + 1e-9, (role, k, part)


def test_no_id_in_two_roles_and_every_id_placed():
    data = dataset((60, 40))
    splits = Splits.make(data, SplitConfig(), seed=2)
    roles = {r: set(splits.ids(r)) for r in ("train", "val", "test")}
    assert roles["train"].isdisjoint(roles["val"]) and roles["train"].isdisjoint(roles["test"]) and roles["val"].isdisjoint(roles["test"])
    assert set.union(*roles.values()) == set(data.ids)


def test_same_seed_same_split_different_seed_different():
    data = dataset()
    a = Splits.make(data, SplitConfig(), seed=5).table
    b = Splits.make(data, SplitConfig(), seed=5).table
    c = Splits.make(data, SplitConfig(), seed=6).table
    assert a.equals(b)
    assert not a.equals(c)


def test_kfold_tests_every_id_once_per_repeat_with_own_val_part():
    data = dataset((50, 30))
    cfg = SplitConfig(scheme="kfold", folds=5, repeats=2)
    splits = Splits.make(data, cfg, seed=0)
    assert splits.folds == list(range(10))
    for repeat in range(2):
        tested = [i for k in range(5) for i in splits.ids("test", repeat * 5 + k)]
        assert sorted(tested) == sorted(data.ids)  # each id tested exactly once per repeat
    for fold in splits.folds:
        train, val, test = (set(splits.ids(r, fold)) for r in ("train", "val", "test"))
        assert not (train & val) and not (train & test) and not (val & test)
        assert len(train | val | test) == len(data)
        assert len(val) == round(len(data) * cfg.val_fraction)
    assert splits.ids("test", 0) != splits.ids("test", 5)  # repeats reshuffle


@pytest.mark.parametrize("scheme", ["holdout", "kfold"])
def test_groups_never_straddle_roles(scheme):
    data = dataset((60, 60), groups_per_class=20)  # 3 images per patient
    splits = Splits.make(data, SplitConfig(scheme=scheme, folds=4), seed=0)
    t = splits.table
    for fold in splits.folds:
        roles_per_group = t[t["fold"] == fold].groupby("group")["role"].nunique()
        assert (roles_per_group == 1).all()


def test_test_images_are_unreachable_from_the_development_api():
    data = dataset()
    splits = Splits.make(data, SplitConfig(), seed=0)
    dev = splits.development(data)
    test_ids = set(splits.ids("test"))
    assert isinstance(dev, DevelopmentData)
    assert {f.name for f in dataclasses.fields(dev)} == {"fold", "train", "val"}
    assert not test_ids & set(dev.train.ids) and not test_ids & set(dev.val.ids)
    # the image tensors are copies holding only their own rows: no view onto the full set
    pixel_ids = {int(v) for part in (dev.train, dev.val) for v in part.images[:, 0, 0, 0]}
    assert pixel_ids.isdisjoint({int(i) for i in test_ids})
    for part in (dev.train, dev.val):
        assert part.images.untyped_storage().data_ptr() != data.images.untyped_storage().data_ptr()
        assert part.images.untyped_storage().nbytes() == part.images.numel() * 4
    held_out = splits.held_out_test(data)
    assert set(held_out.ids) == test_ids


def test_save_load_round_trip(tmp_path):
    data = dataset((30, 30), groups_per_class=10)
    splits = Splits.make(data, SplitConfig(scheme="kfold", folds=3), seed=0)
    splits.save(tmp_path / "splits.csv")
    again = Splits.load(tmp_path / "splits.csv")
    assert again.table[["fold", "role", "id", "label", "class", "group"]].astype(str).equals(splits.table.astype(str))
    assert again.development(data, 2).train.ids == splits.development(data, 2).train.ids
