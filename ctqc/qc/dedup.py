"""Duplicates within a synthetic pool: exact or near copies of *each other* (a GAN that repeats itself).

Two pool images are duplicates when their pixel correlation, searched over one image's flips and
shifts of up to ``max_shift`` px exactly as the copy check does
(:func:`ctqc.qc.memorisation.correlation_matrix`), is at least ``threshold`` (``qc.dedup_threshold``,
default 0.99; symmetrised by taking the larger of the two directions). Groups are the connected
components of that "is a duplicate of" graph (single linkage: a chain of near copies is one group).
The first image of a group, in pool order, is its original; every other member is flagged, with
``dup_of`` pointing at the original, and the filter rejects it with the reason ``duplicate``
(:func:`ctqc.qc.scoring.decide`).

Why 0.99: on the built-in phantoms the self-test's genuine held-out images stay below it while
exact, lightly noised (σ = 0.02) and 1-px shifted duplicates lie above it (``ctqc selftest``, part
(d); ``tests/test_dedup.py``). Cost: n² × 2(2·max_shift + 1)² correlations of n pool images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ctqc.qc.memorisation import correlation_matrix


@dataclass(frozen=True)
class Duplicates:
    """Per pool image: its duplicate group and, for all but the group's first image, that first image."""

    group: np.ndarray  # (n,) int: connected-component label (a singleton is its own group)
    dup_of: np.ndarray  # (n,) int: index of the group's first image, or −1 for that image and for singletons
    flagged: np.ndarray  # (n,) bool: dup_of ≥ 0
    max_correlation: np.ndarray  # (n,) the highest correlation with any *other* pool image (−1 for a pool of one)
    threshold: float


def find_duplicates(images: torch.Tensor, threshold: float = 0.99, max_shift: int = 1) -> Duplicates:
    """Duplicate groups among ``images`` (N×1×S×S in [-1, 1]); ``threshold`` in (0, 1] on the correlation.

    Raises ValueError for a threshold outside (0, 1].
    """
    from scipy.sparse import csr_matrix
    from scipy.sparse.csgraph import connected_components

    if not 0 < threshold <= 1:
        raise ValueError(f"the duplicate threshold is a correlation in (0, 1], got {threshold}")
    n = len(images)
    if n < 2:
        return Duplicates(np.arange(n), np.full(n, -1), np.zeros(n, bool), np.full(n, -1.0), threshold)
    corr = correlation_matrix(images, images, max_shift)
    corr = np.maximum(corr, corr.T)
    np.fill_diagonal(corr, -1.0)
    _, group = connected_components(csr_matrix(corr >= threshold - 1e-9), directed=False)
    first = {g: i for i, g in reversed(list(enumerate(group)))}  # the lowest index of each group
    dup_of = np.array([first[g] if first[g] != i else -1 for i, g in enumerate(group)])
    return Duplicates(group=group, dup_of=dup_of, flagged=dup_of >= 0, max_correlation=corr.max(axis=1), threshold=threshold)


def duplicate_reasons(table) -> np.ndarray:
    """(n,) bool: the rows of ``table`` (synthetic rows with ``reasons`` so far) rejected as duplicates.

    A duplicate group (per fold and class: a first image and the rows whose ``dup_of`` names it) keeps
    one image — its first member that no other reason rejects, or the first member when every one is
    rejected anyway — and rejects the rest. A table without the dedup columns (older scores, or
    ``qc.dedup`` off) has no duplicates.
    """
    if "dup_of" not in table.columns:
        return np.zeros(len(table), bool)
    dup_of = table["dup_of"].astype(object).where(table["dup_of"].notna(), None).tolist()
    ids = table["id"].astype(str).tolist()
    groups = [(f, lab, d if d is not None else i) for f, lab, d, i in zip(table["fold"], table["label"], dup_of, ids)]
    members: dict = {}
    for row, group in enumerate(groups):
        members.setdefault(group, []).append(row)
    hit = np.zeros(len(table), bool)
    for rows in members.values():
        if len(rows) > 1:
            clean = [r for r in rows if not table["reasons"].iloc[r]]
            hit[rows] = True
            hit[clean[0] if clean else rows[0]] = False
    return hit
