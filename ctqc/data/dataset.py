"""The in-memory labelled image set every stage works on."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import numpy as np

from ctqc.data.images import ImageInfo

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class DataSource:
    """Where a :class:`LabelledImages` came from, and what was found on the way."""

    kind: str  # "folder", "npz" or "phantom"
    location: str  # folder or file path, or "built-in phantoms"
    images_dir: str | None = None
    content_hash: str = ""  # hash of ids, labels, groups and the files' bytes
    fingerprint: str = ""  # content_hash + preprocessing settings
    image_info: tuple[ImageInfo, ...] = ()  # per image, in dataset order
    files: tuple[str, ...] = ()  # per image, path relative to ``location`` (folder sources)
    warnings: tuple[str, ...] = ()  # problems found that did not stop loading


@dataclass(frozen=True)
class LabelledImages:
    """Images with ids, class labels and optional patient groups.

    ``images`` is float32 N×1×S×S in [-1, 1]; ``labels`` holds the configured
    class keys (e.g. 0 = normal, 1 = haemorrhage); ``targets`` maps them to
    0..K-1 for models.
    """

    ids: tuple[str, ...]
    labels: np.ndarray  # int64, (N,)
    images: torch.Tensor
    class_names: dict[int, str]
    groups: tuple[str, ...] | None = None
    source: DataSource = field(default_factory=lambda: DataSource(kind="?", location="?"))

    def __post_init__(self) -> None:
        n = len(self.ids)
        if self.labels.shape != (n,) or self.images.shape[0] != n:
            raise ValueError(f"inconsistent sizes: {n} ids, labels {self.labels.shape}, images {tuple(self.images.shape)}")
        if self.groups is not None and len(self.groups) != n:
            raise ValueError("groups must have one entry per image")

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def targets(self) -> np.ndarray:
        """Labels as contiguous class indices 0..K-1 (in sorted class-key order)."""
        return np.searchsorted(np.array(sorted(self.class_names)), self.labels).astype(np.int64)

    def class_counts(self) -> dict[str, int]:
        return {name: int((self.labels == key).sum()) for key, name in self.class_names.items()}

    def subset(self, index: np.ndarray | list[int]) -> LabelledImages:
        """A copy holding only the rows in ``index`` (the images are copied, not viewed)."""
        import torch

        index = np.asarray(index, dtype=np.int64)
        groups = None if self.groups is None else tuple(self.groups[i] for i in index)
        return LabelledImages(
            ids=tuple(self.ids[i] for i in index),
            labels=self.labels[index].copy(),
            images=self.images.index_select(0, torch.from_numpy(index)),
            class_names=dict(self.class_names),
            groups=groups,
            source=replace(self.source, image_info=()),  # per-image info no longer aligns
        )
