"""Turning decoded images and their metadata into one :class:`LabelledImages` (fingerprint, duplicates)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ctqc.config import DataConfig
from ctqc.data.dataset import DataSource, LabelledImages
from ctqc.data.images import (
    PREPROCESSING_VERSION,
    preprocess,
)
from ctqc.errors import UserError


def assemble(cfg: DataConfig, *, ids, labels, groups, arrays, infos, digests, kind, location, images_dir, warnings, files=()) -> LabelledImages:
    import torch

    if len(ids) == 0:
        raise UserError(f"{location}: no images")
    images = torch.stack([preprocess(a, cfg.image_size) for a in arrays]) if arrays else torch.empty(0, 1, cfg.image_size, cfg.image_size)
    content = hashlib.sha256()
    for i, y, d, g in zip(ids, labels.tolist(), digests, groups or [None] * len(ids)):
        content.update(f"{i}\t{y}\t{g}\t{d}\n".encode())
    if kind == "phantom":
        content.update(json.dumps(cfg.phantom.model_dump(), sort_keys=True).encode())
    content_hash = content.hexdigest()
    settings = {
        "image_size": cfg.image_size,
        "intensity": cfg.intensity,
        "dicom_window": cfg.dicom.level_width(),
        "classes": cfg.classes,
        "preprocessing": "gray,pad-square-black,resize-bilinear-antialias,[-1,1]",
        "preprocessing_version": PREPROCESSING_VERSION,  # decoding rules: same bytes, other pixels
    }
    fingerprint = hashlib.sha256((content_hash + json.dumps(settings, sort_keys=True)).encode()).hexdigest()
    source = DataSource(
        kind=kind,
        location=location,
        images_dir=images_dir,
        content_hash=content_hash[:16],
        fingerprint=fingerprint[:16],
        image_info=tuple(infos),
        warnings=tuple(warnings),
        files=files,
    )
    return LabelledImages(
        ids=tuple(ids),
        labels=labels,
        images=images,
        class_names=dict(cfg.classes),
        groups=groups,
        source=source,
    )


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def duplicate_warnings(ids, digests: list[str]) -> list[str]:
    warnings = []
    seen: dict[str, str] = {}
    for i, digest in zip(ids, digests):
        if digest in seen:
            warnings.append(f"ids {seen[digest]!r} and {i!r} are byte-identical files (possible leak between splits)")
        seen.setdefault(digest, i)
    return warnings
