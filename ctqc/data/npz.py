"""MedMNIST-style ``.npz`` datasets: arrays to grey images with absolute intensities."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ctqc.config import DataConfig
from ctqc.data.assemble import assemble, file_sha256
from ctqc.data.dataset import LabelledImages
from ctqc.data.images import (
    ImageInfo,
    scale_values,
)
from ctqc.errors import UserError

_NPZ_SPLITS = ("train", "val", "test")


def load_npz(cfg: DataConfig) -> LabelledImages:
    assert cfg.path is not None
    path = cfg.path
    try:
        # allow_pickle=False: an .npz must never execute code when loaded.
        with np.load(path, allow_pickle=False) as npz:
            content = {k: npz[k] for k in npz.files}
    except (ValueError, OSError, EOFError) as exc:
        raise UserError(f"{path}: not a readable .npz file ({str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__})") from None
    present = [s for s in _NPZ_SPLITS if f"{s}_images" in content]
    if not present:
        raise UserError(f"{path}: no 'train_images'/'val_images'/'test_images' arrays (found: {', '.join(content) or 'none'})")
    ids, labels, arrays, infos = [], [], [], []
    for split in present:
        images, key = content[f"{split}_images"], f"{split}_labels"
        if key not in content:
            raise UserError(f"{path}: has '{split}_images' but no '{key}'")
        lab = content[key]
        if lab.ndim == 2 and lab.shape[1] == 1:
            lab = lab[:, 0]
        if lab.ndim != 1 or len(lab) != len(images):
            raise UserError(f"{path}: '{key}' has shape {lab.shape}; expected one class label per image ({len(images)})")
        dtype = str(images.dtype)
        if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3, 4)):
            raise UserError(f"{path}: '{split}_images' has shape {images.shape}; expected N×H×W or N×H×W×C (C = 1, 3 or 4)")
        _check_pixel_count_npz(path, images, cfg.max_image_pixels)
        if not (np.issubdtype(images.dtype, np.integer) or np.issubdtype(images.dtype, np.floating) or images.dtype == bool):
            raise UserError(f"{path}: '{split}_images' has dtype {dtype}; expected integer or float pixels")
        gray_all, handling = _npz_gray(images, cfg, f"{path} '{split}_images'")
        channels = {3: " RGB", 4: " RGBA"}.get(images.shape[-1] if images.ndim == 4 else 1, "")
        for n, (img, y) in enumerate(zip(gray_all, lab)):
            if not float(y).is_integer() or int(y) not in cfg.classes:
                allowed = ", ".join(f"{k} ({v})" for k, v in cfg.classes.items())
                raise UserError(f"{path}: {key}[{n}] = {y} is not a configured class ({allowed}); set data.classes")
            raw = images[n]
            ids.append(f"{split}_{n:05d}")
            labels.append(int(y))
            arrays.append(_minmax(img) if cfg.intensity == "per_image" else img)
            infos.append(
                ImageInfo(
                    width=img.shape[1],
                    height=img.shape[0],
                    mode=dtype + channels,
                    format="npz",
                    value_min=float(raw.min()),
                    value_max=float(raw.max()),
                    handling="per-image stretch (data.intensity=per_image)" if cfg.intensity == "per_image" else handling,
                )
            )
    digest = file_sha256(path)
    return assemble(
        cfg,
        ids=tuple(ids),
        labels=np.array(labels, dtype=np.int64),
        groups=None,
        arrays=arrays,
        infos=infos,
        digests=[digest] * len(ids),
        kind="npz",
        location=str(path),
        images_dir=None,
        warnings=[],
    )


def _npz_gray(images: np.ndarray, cfg: DataConfig, where: str) -> tuple[np.ndarray, str]:
    """N×H×W or N×H×W×C array → (float32 N×H×W in [0, 1], what was done), decided once per array.

    RGB(A) becomes luma (0.299 R + 0.587 G + 0.114 B, times alpha), as for RGB files; uint8 is
    divided by 255, uint16 by 65535; other integers and floats follow
    :func:`ctqc.data.images.scale_values` (floats in [0, 1] kept, [0, 255] divided by 255, HU windowed).
    """
    arr = images.astype(np.float64)
    luma = ""
    if arr.ndim == 4:
        if arr.shape[-1] == 1:
            arr = arr[..., 0]
        else:
            gray = arr[..., 0] * 0.299 + arr[..., 1] * 0.587 + arr[..., 2] * 0.114
            if arr.shape[-1] == 4:
                top = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(images.dtype, 1.0)
                gray = gray * (arr[..., 3] / top)
            arr, luma = gray, "luma "
    if cfg.intensity == "per_image":
        return arr.astype(np.float32), luma + "per-image stretch"
    full = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0, np.dtype(bool): 1.0}.get(images.dtype)
    if full is not None and cfg.intensity != "hu":
        return (arr / full).astype(np.float32), f"{luma}/{full:g}"
    gray, handling = scale_values(arr, integer=not np.issubdtype(images.dtype, np.floating), intensity=cfg.intensity, dicom=cfg.dicom, path=where)
    return gray, luma + handling


def _check_pixel_count_npz(path: Path, images: np.ndarray, max_pixels: int) -> None:
    h, w = images.shape[1:3]
    if h * w > max_pixels:
        raise UserError(f"{path}: images are {w}×{h} pixels, over data.max_image_pixels={max_pixels:,}")


def _minmax(arr: np.ndarray) -> np.ndarray:
    lo, hi = float(arr.min()), float(arr.max())
    return np.zeros_like(arr, dtype=np.float32) if hi <= lo else ((arr - lo) / (hi - lo)).astype(np.float32)
