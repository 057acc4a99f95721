"""``ctqc data inspect``: what is in a dataset, what is wrong with it, how it splits."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np

from ctqc.config import Config
from ctqc.data.dataset import LabelledImages
from ctqc.data.sources import load_dataset
from ctqc.splits import Splits

#: Upper edges (px) of the bins for the longer image side.
SIZE_BINS = (64, 128, 256, 512, 1024, 2048)

#: What each EXIF Orientation value means (the stored image → as viewers show it).
EXIF_ORIENTATIONS = {
    2: "mirrored left-right",
    3: "rotated 180°",
    4: "mirrored top-bottom",
    5: "transposed",
    6: "rotated 90° clockwise",
    7: "transversed",
    8: "rotated 90° counter-clockwise",
}


def inspect_dataset(data: LabelledImages, splits: Splits, intensity: str = "absolute") -> dict[str, Any]:
    """A JSON-able summary: counts per class, size/mode histograms, EXIF orientations applied,
    intensity handling with the stored value ranges, problems, split sizes.

    ``intensity`` is the configured ``data.intensity``, reported beside what each image got.
    """
    infos = data.source.image_info
    widths = np.array([i.width for i in infos])
    heights = np.array([i.height for i in infos])
    longer = np.maximum(widths, heights)
    size_hist: dict[str, int] = {}
    lower = 0
    for edge in SIZE_BINS:
        size_hist[f"{lower + 1}-{edge}"] = int(((longer > lower) & (longer <= edge)).sum())
        lower = edge
    size_hist[f">{SIZE_BINS[-1]}"] = int((longer > SIZE_BINS[-1]).sum())
    problems = list(data.source.warnings)
    non_square = int((widths != heights).sum())
    if non_square:
        problems.append(f"{non_square} image(s) are not square: padded with black to keep the aspect ratio")
    flat = [i for i, img in zip(data.ids, data.images) if float(img.max() - img.min()) < 1e-6]
    if flat:
        problems.append(f"{len(flat)} image(s) are a single flat colour (e.g. {flat[0]!r})")
    orientations = Counter(i.orientation for i in infos if i.orientation != 1)
    handling: dict[str, dict[str, Any]] = {}
    for info in infos:
        entry = handling.setdefault(info.handling or "?", {"images": 0, "min": None, "max": None})
        entry["images"] += 1
        if info.value_min is not None:
            entry["min"] = info.value_min if entry["min"] is None else min(entry["min"], info.value_min)
            entry["max"] = info.value_max if entry["max"] is None else max(entry["max"], info.value_max)
    return {
        "source": {"kind": data.source.kind, "location": data.source.location, "images_dir": data.source.images_dir},
        "fingerprint": data.source.fingerprint,
        "n_images": len(data),
        "image_size": int(data.images.shape[-1]),
        "class_counts": data.class_counts(),
        "modes": dict(Counter(i.mode for i in infos).most_common()),
        "formats": dict(Counter(i.format for i in infos).most_common()),
        "orientation": {
            "applied": {f"{tag} ({EXIF_ORIENTATIONS.get(tag, '?')})": n for tag, n in sorted(orientations.items())},
            "upright": len(infos) - sum(orientations.values()),
        },
        "intensity": {"setting": intensity, "handling": handling},
        "longer_side_px": size_hist,
        "width_px": _range(widths),
        "height_px": _range(heights),
        "groups": None if data.groups is None else len(set(data.groups)),
        "problems": problems,
        "split": {"folds": len(splits.folds), "fold_0": splits.sizes(0)},
    }


def _range(values: np.ndarray) -> dict[str, int]:
    if values.size == 0:
        return {}
    return {"min": int(values.min()), "median": int(np.median(values)), "max": int(values.max())}


def inspect_data(config: Config) -> dict[str, Any]:
    data = load_dataset(config.data)
    return inspect_dataset(data, Splits.make(data, config.split, config.split_seed), config.data.intensity)
