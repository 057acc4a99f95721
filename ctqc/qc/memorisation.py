"""Memorisation checks: is a synthetic image a copy of a training patient?

Per image: the nearest training image by pixel correlation, searched over each
training image's *orbit* (horizontal flip × shifts of up to ``max_shift`` px,
with black fill), so exact, noisy, shifted and mirrored copies all land near
distance 0. Distance is 1 - Pearson correlation. The reference distribution of
genuine (non-copy) distances comes from the training images alone: each training
image's distance to the *other* training images (leave one out). A synthetic image
closer than its ``percentile``-th percentile is flagged, and its ratio to that
distribution's median is reported. The held-out (evaluation) real images take no
part in setting the threshold, so the share of them it would flag is an honest
estimate of its false-flag rate (issue 15, item 3: no image both sets a threshold
and grades it). A class holds ~70 training images in a small run, and the empirical
1st percentile of 70 values is just their minimum; when fewer than 5 values would
lie below the percentile it is estimated from a log-normal fit to the distances
instead — a stable estimate of the tail.

Globally: the data-copying statistic C_T of Meehan, Chaudhuri & Dasgupta
(AISTATS 2020) on feature vectors. Training features are partitioned into cells
by k-means; within each cell the nearest-training-neighbour distances of
generated samples are compared with those of held-out real samples by a
Mann-Whitney U test, and the cells' z-scores are averaged with the cells'
training mass. C_T ≪ 0: generated samples sit closer to the training data than
fresh real data do — copying. C_T ≈ 0: no evidence of copying.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class CopyCheck:
    """Per synthetic image: nearest training image, distance, ratio and flag; and the threshold's false-flag check."""

    nearest_train: np.ndarray  # index into the training images
    distance: np.ndarray  # 1 - max pixel correlation over the training orbit
    ratio: np.ndarray  # distance / median leave-one-out training distance
    flagged: np.ndarray  # bool: closer than the training images' leave-one-out percentile
    threshold: float
    reference_distance: np.ndarray  # what set the threshold: each training image to the other training images
    heldout_distance: np.ndarray  # held-out (evaluation) images to the training set; empty without them
    heldout_flagged: np.ndarray  # bool per held-out image: what the threshold would wrongly flag


def orbit(images: torch.Tensor, max_shift: int = 1, flip: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """All flips × shifts of N×1×S×S images: (M×1×S×S, source index per member)."""
    variants, sources = [], []
    index = torch.arange(len(images))
    for flipped in [images, images.flip(-1)] if flip else [images]:
        padded = torch.nn.functional.pad(flipped, [max_shift] * 4, value=-1.0)  # black air fills the gap
        size = images.shape[-1]
        for dy in range(2 * max_shift + 1):
            for dx in range(2 * max_shift + 1):
                variants.append(padded[..., dy : dy + size, dx : dx + size])
                sources.append(index)
    return torch.cat(variants), torch.cat(sources)


def _standardise(images: torch.Tensor) -> torch.Tensor:
    x = images.reshape(len(images), -1).double()
    x = x - x.mean(dim=1, keepdim=True)
    return x / x.norm(dim=1, keepdim=True).clamp_min(1e-12)


def nearest_by_correlation(query: torch.Tensor, train: torch.Tensor, max_shift: int = 1, flip: bool = True, chunk: int = 512, leave_one_out: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """For each query image, the training image (index) of highest correlation over its orbit, and 1 - that correlation.

    With ``leave_one_out`` the query *is* the training set and each image's own orbit is excluded.
    """
    members, sources = orbit(train, max_shift, flip)
    ref = _standardise(members)
    best_idx, best_dist = [], []
    for start in range(0, len(query), chunk):
        corr = _standardise(query[start : start + chunk]) @ ref.T
        if leave_one_out:
            own = torch.arange(start, start + len(corr)).unsqueeze(1) == sources.unsqueeze(0)
            corr = corr.masked_fill(own, -2.0)
        value, member = corr.max(dim=1)
        best_idx.append(sources[member])
        best_dist.append(1.0 - value)
    return torch.cat(best_idx).numpy(), torch.cat(best_dist).clamp_min(0).numpy()


def correlation_matrix(query: torch.Tensor, train: torch.Tensor, max_shift: int = 1, flip: bool = True, chunk: int = 512) -> np.ndarray:
    """(n_query × n_train) highest Pearson correlation of each query image with each training image's orbit.

    The same distance as :func:`nearest_by_correlation` (1 − this), for every pair rather than the
    nearest only: each training image's flips × shifts of up to ``max_shift`` px (black fill).
    """
    members, _ = orbit(train, max_shift, flip)  # variant-major: member v·n_train + j is a variant of image j
    ref = _standardise(members)
    rows = [(_standardise(query[start : start + chunk]) @ ref.T).reshape(-1, len(members) // len(train), len(train)).amax(dim=1) for start in range(0, len(query), chunk)]
    return torch.cat(rows).numpy() if rows else np.zeros((0, len(train)))


def check_copies(synthetic: torch.Tensor, train: torch.Tensor, heldout: torch.Tensor | None = None, percentile: float = 1.0, max_shift: int = 1) -> CopyCheck:
    """Flag synthetic images closer to a training image than ``percentile`` % of training images are to each other.

    ``synthetic``, ``train``, ``heldout``: N×1×S×S images. The threshold comes from the training
    images' leave-one-out nearest distances only; ``heldout`` (evaluation) images, when given,
    are only graded: ``heldout_flagged`` is what the threshold would wrongly flag among images
    that are certainly not copies. Raises ValueError with fewer than three training images.
    """
    if len(train) < 3:
        raise ValueError("the copy check needs at least three training images (their leave-one-out distances set the threshold)")
    _, loo = nearest_by_correlation(train, train, max_shift, leave_one_out=True)
    idx, dist = nearest_by_correlation(synthetic, train, max_shift)
    held = nearest_by_correlation(heldout, train, max_shift)[1] if heldout is not None and len(heldout) else np.zeros(0)
    threshold = lower_percentile(loo, percentile)
    return CopyCheck(
        nearest_train=idx,
        distance=dist,
        ratio=dist / max(float(np.median(loo)), 1e-12),
        flagged=dist < threshold,
        threshold=threshold,
        reference_distance=loo,
        heldout_distance=held,
        heldout_flagged=held < threshold,
    )


def lower_percentile(values: np.ndarray, percentile: float) -> float:
    """The ``percentile``-th percentile of positive ``values``; log-normal fit when the tail holds < 5 points."""
    from scipy.stats import norm

    values = np.asarray(values, dtype=np.float64)
    if len(values) * percentile / 100 >= 5:
        return float(np.percentile(values, percentile))
    logs = np.log(np.clip(values, 1e-12, None))
    return float(np.exp(logs.mean() + norm.ppf(percentile / 100) * logs.std(ddof=1)))


def data_copying_statistic(train: np.ndarray, heldout: np.ndarray, generated: np.ndarray, n_cells: int = 5, min_per_cell: int = 3, random_state: int = 0) -> float:
    """C_T (Meehan et al. 2020) on feature matrices; negative means generated samples copy the training set."""
    from scipy.stats import mannwhitneyu
    from sklearn.cluster import KMeans
    from sklearn.neighbors import NearestNeighbors

    n_cells = max(1, min(n_cells, len(train) // 2))
    kmeans = KMeans(n_clusters=n_cells, n_init=10, random_state=random_state).fit(train)
    nn = NearestNeighbors(n_neighbors=1).fit(train)
    d_held = nn.kneighbors(heldout)[0][:, 0]
    d_gen = nn.kneighbors(generated)[0][:, 0]
    cell_held, cell_gen = kmeans.predict(heldout), kmeans.predict(generated)
    mass = np.bincount(kmeans.labels_, minlength=n_cells) / len(train)
    z_sum, weight = 0.0, 0.0
    for cell in range(n_cells):
        g, h = d_gen[cell_gen == cell], d_held[cell_held == cell]
        if len(g) < min_per_cell or len(h) < min_per_cell:
            continue  # too few points for a meaningful rank test in this cell
        u = mannwhitneyu(g, h, alternative="two-sided").statistic  # pairs with generated farther than held-out
        m, n = len(g), len(h)
        z = (u - m * n / 2) / np.sqrt(m * n * (m + n + 1) / 12)
        z_sum += mass[cell] * z
        weight += mass[cell]
    return float(z_sum / weight) if weight > 0 else float("nan")
