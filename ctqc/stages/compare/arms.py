"""The arms of the comparison and how each one's training set is built.

Arms — each trained on its own training set and evaluated on the **same real
validation and test images** of each fold:

1. ``original``               the fold's real training images;
2. ``original+classical``     the same with classical augmentation;
3. ``synthetic-only``         the fold's GAN pool only;
4. ``original+synthetic``     real + the whole pool (unfiltered);
5. ``original+filtered``      real + the images ``ctqc filter`` kept (skipped when the filter has not run);
6. ``original+random-subset`` real + a random subset of the pool with the filtered set's per-class sizes
                              (a control: does the filter beat chance selection?);
   ``original+filtered-<strategy>``, ``original+random-subset-<strategy>``: the same pair for each further
                              filter strategy that ran (``ctqc filter --strategy label``: ``filter/label/kept.csv``);
                              the plain names are the default strategy's (``qc.filter_strategies[0]``);
7. ``original+duplicated``    the real training images repeated to the per-class counts of
                              ``original+synthetic`` (a control: "more images" vs "new images");
8. ``original+synthetic-x<r>`` (``compare.synthetic_ratios``) real + round(r × n_real) synthetic images
                              of each class drawn at random from the pool, extended from the fold's
                              generator when the pool is too small (:mod:`.dose`).

Synthetic images of fold f come only from fold f's GAN (trained on fold f's
training part). Images are tensors N×1×S×S (S pixels a side, values in [-1, 1]);
targets are class indices 0..K-1 into the sorted configured class keys.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from ctqc.config import ARMS, FILTER_ARMS, FILTER_STRATEGIES, Config, arm_ratio, arm_strategy
from ctqc.errors import UserError

#: The arms that need ``ctqc filter``'s output (skipped when the filter has not run).
NEEDS_FILTER = FILTER_ARMS


@dataclass(frozen=True)
class FoldData:
    """What one fold offers the arms. ``test`` is used only for evaluation."""

    fold: int
    train: object  # LabelledImages: real training images
    val: object  # LabelledImages: real validation images
    test: object  # LabelledImages: real held-out test images
    pool: object  # pandas.DataFrame: this fold's rows of samples/index.csv
    pool_images: object  # torch.Tensor N×1×S×S, aligned with ``pool``
    kept: frozenset[str] | None  # sample_ids kept by ctqc filter (default strategy); None when the filter has not run
    # class key → (images N×1×S×S, ids): drawn from the fold's generator beyond the pool, for the dose-response arms
    extension: dict = field(default_factory=dict)
    # further filter strategy → the sample_ids it kept (filter/<strategy>/kept.csv), for the strategy arms
    strategy_kept: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ArmData:
    """The training set of one arm in one fold (and seed, for the random subset)."""

    images: object  # torch.Tensor N×1×S×S
    targets: np.ndarray  # class indices 0..K-1
    ids: tuple[str, ...]  # real image ids and synthetic sample_ids
    n_real: int
    n_synthetic: int
    augment: bool


def class_keys(cfg: Config) -> list[int]:
    """The configured class keys, sorted: position k is class index k of the targets."""
    return sorted(cfg.data.classes)


def arm_order(arm: str) -> tuple[int, float]:
    """The arm's position in the canonical order (:data:`ctqc.config.ARMS`; dose-response arms after
    ``original+synthetic``, by ratio) as a sort key."""
    ratio = arm_ratio(arm)
    if ratio is not None:
        return ARMS.index("original+synthetic"), ratio
    strategy = arm_strategy(arm)
    if strategy is not None:  # right after the default strategy's arm of the same kind
        return ARMS.index(strategy[0]), 1.0 + FILTER_STRATEGIES.index(strategy[1])
    return ARMS.index(arm), 0.0


def build_arm(arm: str, fold_data: FoldData, seed: int, keys: list[int], base_seed: int = 0, augment_all: bool = False) -> ArmData:
    """The training set of ``arm`` for ``fold_data`` and ``seed`` (see the module docstring)."""
    real, pool = fold_data.train, fold_data.pool
    real_targets = np.searchsorted(np.array(keys), real.labels).astype(np.int64)
    augment = augment_all or arm == "original+classical"
    if arm == "original+duplicated":
        return _duplicated(fold_data, seed, keys, base_seed, augment)
    ratio = arm_ratio(arm)
    if ratio is not None:
        return _dose(fold_data, ratio, seed, keys, base_seed, augment)
    use_real = arm != "synthetic-only"
    base, strategy = arm_strategy(arm) or (arm, None)
    if arm in ("original", "original+classical"):
        chosen = np.zeros(len(pool), dtype=bool)
    elif arm in ("synthetic-only", "original+synthetic"):
        chosen = np.ones(len(pool), dtype=bool)
    elif base in NEEDS_FILTER:
        kept_ids = fold_data.kept if strategy is None else fold_data.strategy_kept.get(strategy)
        if kept_ids is None:
            raise UserError(f"arm {arm} needs the filter's output: run `ctqc filter{'' if strategy is None else f' --strategy {strategy}'}` first")
        kept = pool["sample_id"].isin(kept_ids).to_numpy()
        if base == "original+filtered":
            chosen = kept
        else:  # same per-class sizes as the (strategy's) filtered set, drawn at random from the whole pool
            stream = [] if strategy is None else [1 + FILTER_STRATEGIES.index(strategy)]  # each strategy's control: its own draws
            rng = np.random.default_rng([base_seed, fold_data.fold, seed, 6, *stream])
            chosen = np.zeros(len(pool), dtype=bool)
            labels = pool["label"].to_numpy()
            for key in keys:
                members = np.flatnonzero(labels == key)
                n = int((kept & (labels == key)).sum())
                chosen[rng.choice(members, size=n, replace=False)] = True
    else:
        raise UserError(f"unknown arm {arm!r}; choose from {', '.join(ARMS)} or a dose-response arm of compare.synthetic_ratios")
    index = np.flatnonzero(chosen)
    syn_images = fold_data.pool_images[torch.from_numpy(index)]
    syn_targets = np.searchsorted(np.array(keys), pool["label"].to_numpy()[index]).astype(np.int64)
    syn_ids = tuple(str(s) for s in pool["sample_id"].to_numpy()[index])
    if use_real:
        images = torch.cat([real.images, syn_images]) if len(index) else real.images
        targets = np.concatenate([real_targets, syn_targets])
        ids = tuple(real.ids) + syn_ids
    else:
        images, targets, ids = syn_images, syn_targets, syn_ids
    return ArmData(
        images=images,
        targets=targets,
        ids=ids,
        n_real=len(real) if use_real else 0,
        n_synthetic=len(index),
        augment=augment,
    )


def _duplicated(fold_data: FoldData, seed: int, keys: list[int], base_seed: int, augment: bool) -> ArmData:
    """Each class's real images repeated to that class's count in ``original+synthetic`` (real + pool): whole
    copies first, the remainder a random draw without replacement."""
    real, labels = fold_data.train, fold_data.pool["label"].to_numpy()
    rng = np.random.default_rng([base_seed, fold_data.fold, seed, 7])
    rows = []
    for key in keys:
        members = np.flatnonzero(np.asarray(real.labels) == key)
        target = len(members) + int((labels == key).sum())
        if len(members):
            whole, rest = divmod(target, len(members))
            rows += [np.tile(members, whole), rng.choice(members, size=rest, replace=False)]
    index = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    index = index.astype(np.int64)
    targets = np.searchsorted(np.array(keys), np.asarray(real.labels)[index]).astype(np.int64)
    ids = tuple(str(real.ids[i]) for i in index)
    return ArmData(images=real.images[torch.from_numpy(index)], targets=targets, ids=ids, n_real=len(index), n_synthetic=0, augment=augment)


def _dose(fold_data: FoldData, ratio: float, seed: int, keys: list[int], base_seed: int, augment: bool) -> ArmData:
    """Real images + round(ratio × n_real_k) synthetic images of each class k: a random draw from the pool, or the
    whole pool of the class plus the first images of its extension (:mod:`.dose`) when the pool is too small."""
    real, pool = fold_data.train, fold_data.pool
    labels = pool["label"].to_numpy()
    rng = np.random.default_rng([base_seed, fold_data.fold, seed, 8, int(round(ratio * 1000))])
    parts, targets, ids = [], [], []
    for k, key in enumerate(keys):
        n = int(round(ratio * int((np.asarray(real.labels) == key).sum())))
        members = np.flatnonzero(labels == key)
        chosen = np.sort(rng.choice(members, size=min(n, len(members)), replace=False))
        parts.append(fold_data.pool_images[torch.from_numpy(chosen)])
        ids += [str(s) for s in pool["sample_id"].to_numpy()[chosen]]
        extra = n - len(chosen)
        if extra:
            images, ext_ids = fold_data.extension.get(key, (None, ()))
            if images is None or len(images) < extra:
                raise RuntimeError(f"fold {fold_data.fold}: ratio {ratio:g} needs {extra} images of class {key} beyond the pool, none prepared")
            parts.append(images[:extra])
            ids += list(ext_ids[:extra])
        targets += [k] * n
    real_targets = np.searchsorted(np.array(keys), real.labels).astype(np.int64)
    return ArmData(
        images=torch.cat([real.images, *parts]),
        targets=np.concatenate([real_targets, np.array(targets, dtype=np.int64)]),
        ids=tuple(real.ids) + tuple(ids),
        n_real=len(real),
        n_synthetic=len(ids),
        augment=augment,
    )
