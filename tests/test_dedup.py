"""Duplicates within the pool (ctqc.qc.dedup): planted exact and near duplicates flagged, distinct images not."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ctqc.config import DataConfig, PhantomConfig
from ctqc.data import load_dataset
from ctqc.qc.dedup import find_duplicates
from ctqc.qc.memorisation import correlation_matrix, nearest_by_correlation


@pytest.fixture(scope="module")
def phantoms():
    return load_dataset(DataConfig(phantom=PhantomConfig(n_per_class=30, size=64))).images  # 60 × 1 × 32 × 32


def test_correlation_matrix_agrees_with_the_nearest_neighbour_search(phantoms):
    query, train = phantoms[:10], phantoms[10:30]
    corr = correlation_matrix(query, train, max_shift=1)
    idx, dist = nearest_by_correlation(query, train, max_shift=1)
    assert corr.shape == (10, 20)
    assert np.array_equal(corr.argmax(axis=1), idx) and np.allclose(1 - corr.max(axis=1), dist, atol=1e-12)


def test_planted_exact_and_near_duplicates_are_flagged_distinct_images_are_not(phantoms):
    gen = torch.Generator().manual_seed(0)
    distinct = phantoms[:40]
    originals = distinct[:4]
    shifted = F.pad(originals, [1, 0, 0, 1], value=-1.0)[..., 1:, :-1]
    noisy = (originals + 0.02 * torch.randn(originals.shape, generator=gen)).clamp(-1, 1)
    pool = torch.cat([distinct, originals, noisy, shifted, originals.flip(-1)])  # 40 distinct, then 16 duplicates
    found = find_duplicates(pool, threshold=0.99, max_shift=1)
    assert found.flagged[40:].all()
    assert not found.flagged[:40].any(), np.flatnonzero(found.flagged[:40])  # each original is its group's first image
    assert list(found.dup_of[40:]) == [0, 1, 2, 3] * 4  # every duplicate points at its original
    assert (found.dup_of[:40] == -1).all() and len(set(found.group[:40])) == 40
    assert found.max_correlation[:4].min() >= 0.99 and found.max_correlation[4:40].max() < 0.99


def test_the_first_image_of_a_group_is_kept_and_chains_form_one_group():
    base = torch.linspace(-1, 1, 64).view(1, 1, 8, 8)
    pool = torch.cat([base, base, base])
    found = find_duplicates(pool, threshold=0.99, max_shift=0)
    assert list(found.flagged) == [False, True, True] and list(found.dup_of) == [-1, 0, 0]
    assert find_duplicates(pool[:1]).flagged.tolist() == [False]
    with pytest.raises(ValueError):
        find_duplicates(pool, threshold=1.5)


def test_decide_rejects_all_but_one_of_each_duplicate_group():
    import pandas as pd

    from ctqc.qc.scoring import decide

    table = pd.DataFrame(
        {
            "fold": [0] * 6 + [1, 1],
            "label": [0] * 6 + [0, 0],
            "id": ["a", "b", "c", "d", "e", "f", "a", "g"],  # ids repeat across folds: groups are per fold and class
            "c2st_score": [0.9, 0.2, 0.3, 0.1, 0.2, 0.95, 0.1, 0.1],
            "copy_flagged": [False, False, False, False, True, False, False, False],
            "dup_of": [None, "a", "a", None, None, "e", None, "a"],
            "duplicate_flagged": [False, True, True, False, False, True, False, True],
        }
    )
    reasons = decide(table, 0.6, memorisation=True, dedup=True)["reasons"].tolist()
    # group a (a, b, c): a is rejected as c2st, so b — the first clean member — is kept and c is the duplicate
    # group e (e, f): both rejected anyway; the first member, e, carries no duplicate reason
    # fold 1: group a (a, g): a kept, g a duplicate
    assert reasons == ["c2st+duplicate", "", "duplicate", "", "copy", "c2st+duplicate", "", "duplicate"]
    assert decide(table, 0.6, memorisation=True, dedup=False)["reasons"].tolist() == ["c2st", "", "", "", "copy", "c2st", "", ""]
    assert "duplicate" not in "".join(decide(table.drop(columns=["dup_of", "duplicate_flagged"]), 0.6, memorisation=False)["reasons"])
