"""Train / val / test splits, and a data API that keeps test images out of reach.

A :class:`Splits` is a table with one row per (fold, image): ``fold, role, id,
label, class, group``; ``role`` is ``train``, ``val`` or ``test``. The holdout
scheme has one fold (0); repeated K-fold has ``repeats × folds`` folds, each
with its own val part taken from its non-test images.

Stages that fit anything to real images — GAN training, QC fitting, filtering —
receive a :class:`DevelopmentData` from :meth:`Splits.development`: train and
val copies only, with no reference to the test rows. Test images are reached
solely through :meth:`Splits.held_out_test`, which only the final evaluation
calls.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ctqc import atomic
from ctqc.config import SplitConfig
from ctqc.data.dataset import LabelledImages
from ctqc.errors import UserError

ROLES = ("train", "val", "test")
COLUMNS = ["fold", "role", "id", "label", "class", "group"]


@dataclass(frozen=True)
class DevelopmentData:
    """The images a fold may learn from: ``train`` to fit, ``val`` to select and monitor."""

    fold: int
    train: LabelledImages
    val: LabelledImages


class Splits:
    """Deterministic, stratified (and grouped, when groups exist) splits of one dataset."""

    def __init__(self, table) -> None:
        self.table = table.reset_index(drop=True)

    # ---------------------------------------------------------------- construction

    @classmethod
    def make(cls, data: LabelledImages, cfg: SplitConfig, seed: int) -> Splits:
        """Split ``data`` according to ``cfg``; the same seed gives the same split."""
        import pandas as pd

        labels, groups = data.labels, data.groups
        _check_class_sizes(data, cfg)
        rows = []
        if cfg.scheme == "holdout":
            n_test = max(1, round(len(data) * cfg.test_fraction))
            n_val = max(1, round(len(data) * cfg.val_fraction))
            rng = np.random.default_rng([seed, 0])
            idx = np.arange(len(data))
            test, rest = _stratified_take(idx, labels, groups, n_test, rng)
            val, train = _stratified_take(rest, labels, groups, n_val, rng)
            rows += _rows(data, 0, train, val, test)
        else:
            from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

            n_val = max(1, round(len(data) * cfg.val_fraction))
            for repeat in range(cfg.repeats):
                state = (seed * 1009 + repeat) % (2**32)
                if groups is None:
                    folds = StratifiedKFold(cfg.folds, shuffle=True, random_state=state).split(labels, labels)
                else:
                    folds = StratifiedGroupKFold(cfg.folds, shuffle=True, random_state=state).split(labels, labels, groups)
                for k, (rest, test) in enumerate(folds):
                    rng = np.random.default_rng([seed, repeat, k])
                    val, train = _stratified_take(np.asarray(rest), labels, groups, n_val, rng)
                    rows += _rows(data, repeat * cfg.folds + k, train, val, np.asarray(test))
        splits = cls(pd.DataFrame(rows, columns=COLUMNS))
        splits._check_every_role_has_every_class(data)
        return splits

    @classmethod
    def load(cls, path: str | Path) -> Splits:
        import pandas as pd

        path = Path(path)
        try:
            table = pd.read_csv(path, dtype={"id": str, "group": str, "class": str}, keep_default_na=False)
        except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
            raise UserError(f"{path}: cannot read splits ({exc.__class__.__name__})") from None
        missing = [c for c in COLUMNS if c not in table.columns]
        bad_roles = set(table.get("role", [])) - set(ROLES)
        if missing or bad_roles:
            raise UserError(f"{path}: not a ctqc splits file (missing columns {missing or '-'}, unknown roles {sorted(bad_roles) or '-'})")
        table["group"] = table["group"].replace("", None)
        return cls(table[COLUMNS])

    def save(self, path: str | Path) -> None:
        atomic.write_text(path, self.table.to_csv(index=False))

    # ---------------------------------------------------------------- views

    @property
    def folds(self) -> list[int]:
        return sorted(int(f) for f in self.table["fold"].unique())

    def ids(self, role: str, fold: int = 0) -> list[str]:
        t = self.table
        return t.loc[(t["fold"] == fold) & (t["role"] == role), "id"].tolist()

    def development(self, data: LabelledImages, fold: int = 0) -> DevelopmentData:
        """Train and val images of ``fold`` — everything a stage may learn from."""
        return DevelopmentData(
            fold=fold,
            train=data.subset(self._index(data, "train", fold)),
            val=data.subset(self._index(data, "val", fold)),
        )

    def held_out_test(self, data: LabelledImages, fold: int = 0) -> LabelledImages:
        """The test images of ``fold``. Only for the final evaluation of a trained classifier."""
        return data.subset(self._index(data, "test", fold))

    def sizes(self, fold: int = 0) -> dict[str, dict[str, int]]:
        """role → class name → count, for one fold."""
        t = self.table[self.table["fold"] == fold]
        return {role: t.loc[t["role"] == role, "class"].value_counts().sort_index().to_dict() for role in ROLES}

    def _index(self, data: LabelledImages, role: str, fold: int) -> np.ndarray:
        if fold not in self.folds:
            raise UserError(f"fold {fold} does not exist (folds: {self.folds[0]}..{self.folds[-1]})")
        position = {i: n for n, i in enumerate(data.ids)}
        wanted = self.ids(role, fold)
        unknown = [i for i in wanted if i not in position]
        if unknown:
            raise UserError(f"splits.csv names id {unknown[0]!r}, which is not in the data: was the data folder changed since the split?")
        return np.array([position[i] for i in wanted], dtype=np.int64)

    def _check_every_role_has_every_class(self, data: LabelledImages) -> None:
        for fold in self.folds:
            for role, counts in self.sizes(fold).items():
                empty = [name for name in data.class_names.values() if counts.get(name, 0) == 0]
                if empty:
                    raise UserError(
                        f"split fold {fold}: the {role} part has no '{empty[0]}' images; "
                        "too few images (or groups) per class for this split — add data or change split fractions/folds"
                    )


def _check_class_sizes(data: LabelledImages, cfg: SplitConfig) -> None:
    need = 3 if cfg.scheme == "holdout" else cfg.folds + 2
    for name, count in data.class_counts().items():
        if count < need:
            raise UserError(
                f"class '{name}' has {count} image(s); the {cfg.scheme} split needs at least {need} per class "
                "(one or more for each of train/val/test)"
            )


def _stratified_take(idx: np.ndarray, labels: np.ndarray, groups, n_take: int, rng: np.random.Generator):
    """Take ``n_take`` of ``idx`` keeping class proportions; return (taken, rest), both sorted.

    Without groups the per-class counts are exact (largest-remainder rounding,
    at least one per class). With groups, whole groups are assigned greedily to
    match the per-class targets as closely as possible.
    """
    classes, counts = np.unique(labels[idx], return_counts=True)
    targets = _largest_remainder(counts, n_take)
    taken: list[int] = []
    if groups is None:
        for c, t in zip(classes, targets):
            members = idx[labels[idx] == c]
            taken += rng.permutation(members)[:t].tolist()
    else:
        taken = _take_groups(idx, labels, groups, dict(zip(classes.tolist(), targets.tolist())), rng)
    taken_set = set(taken)
    rest = np.array([i for i in idx if i not in taken_set], dtype=np.int64)
    return np.sort(np.array(taken, dtype=np.int64)), rest


def _largest_remainder(counts: np.ndarray, total: int) -> np.ndarray:
    """Integer shares of ``total`` proportional to ``counts``, each ≥ 1 and < its count."""
    exact = counts * total / counts.sum()
    shares = np.floor(exact).astype(int)
    order = np.argsort(-(exact - shares), kind="stable")
    for k in order[: total - shares.sum()]:
        shares[k] += 1
    return np.clip(shares, 1, np.maximum(counts - 1, 1))


def _take_groups(idx, labels, groups, targets: dict[int, int], rng) -> list[int]:
    by_group: dict[str, list[int]] = {}
    for i in idx:
        by_group.setdefault(groups[i], []).append(int(i))
    names = list(by_group)
    rng.shuffle(names)
    taken: list[int] = []
    have = {c: 0 for c in targets}
    for name in names:
        members = by_group[name]
        need = {c: targets[c] - have[c] for c in targets}
        gain = sum(min(need[labels[i]], 1) for i in members if need[labels[i]] > 0)
        overshoot = sum(1 for i in members if need[labels[i]] <= 0)
        if gain > overshoot:
            taken += members
            for i in members:
                have[labels[i]] += 1
        if all(have[c] >= targets[c] for c in targets):
            break
    return taken


def _rows(data: LabelledImages, fold: int, train, val, test) -> list[list]:
    rows = []
    for role, index in (("train", train), ("val", val), ("test", test)):
        for i in np.sort(np.asarray(index)):
            group = None if data.groups is None else data.groups[i]
            key = int(data.labels[i])
            rows.append([fold, role, data.ids[i], key, data.class_names[key], group])
    return rows
