"""Decode one image file into a 2-D float array in [0, 1], and preprocess it.

Real CT exports are messy: 8-bit L, RGB and RGBA PNG/JPEG (some with burned-in
letters), 16-bit PNG/TIFF, DICOM in Hounsfield units. Everything becomes one
grayscale channel here; ``preprocess`` then pads to a square with black, resizes
with antialiasing and scales to [-1, 1].
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ctqc.config import DicomConfig
from ctqc.errors import UserError

#: File extensions the folder loader looks for, lower case.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm")

_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N"}


@dataclass(frozen=True)
class ImageInfo:
    """What a file looked like before preprocessing (for ``ctqc data inspect``)."""

    width: int
    height: int
    mode: str  # PIL mode, or "DICOM/<photometric interpretation>"
    format: str  # "PNG", "JPEG", "TIFF", "BMP", "DICOM", "array"


def read_image(
    path: Path,
    *,
    max_pixels: int,
    intensity: str = "absolute",
    dicom: DicomConfig | None = None,
) -> tuple[np.ndarray, ImageInfo]:
    """Read ``path`` as a float32 H×W array in [0, 1] (0 = black).

    Raises :class:`UserError` naming the file for unreadable, corrupt,
    oversized (decompression-bomb guard) or unsupported images.
    """
    if path.suffix.lower() == ".dcm":
        return _read_dicom(path, max_pixels=max_pixels, dicom=dicom or DicomConfig())
    return _read_raster(path, max_pixels=max_pixels, intensity=intensity)


def _read_raster(path: Path, *, max_pixels: int, intensity: str) -> tuple[np.ndarray, ImageInfo]:
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                # The header is parsed but no pixels are decoded yet: check the size first.
                check_pixel_count(path, *im.size, max_pixels)
                im.load()
                info = ImageInfo(width=im.size[0], height=im.size[1], mode=im.mode, format=im.format or "?")
                gray = _to_gray(im, intensity)
    except UserError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UserError(
            f"{path}: image is too large to decode safely (decompression-bomb guard); "
            "remove it or raise data.max_image_pixels if it is genuine"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise UserError(f"{path}: not a readable image ({reason}); remove or replace the file") from None
    return gray, info


def _to_gray(im, intensity: str) -> np.ndarray:
    """PIL image → float32 H×W in [0, 1]. Transparent pixels become black."""
    if im.mode in _SIXTEEN_BIT_MODES:
        arr = np.asarray(im, dtype=np.float32)
        return _scale(arr, 65535.0, intensity)
    if im.mode == "I":  # 32-bit int; Pillow decodes some 16-bit files this way
        arr = np.asarray(im, dtype=np.float64)
        full = 65535.0 if arr.min() >= 0 and arr.max() <= 65535 else float(max(arr.max(), 1))
        return _scale(arr.astype(np.float32), full, intensity)
    if im.mode == "F":
        arr = np.asarray(im, dtype=np.float32)
        within_unit = arr.min() >= 0 and arr.max() <= 1
        return arr if within_unit and intensity == "absolute" else _stretch(arr)
    has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
    if has_alpha:
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float32) / 255.0
        luma = rgba[..., 0] * 0.299 + rgba[..., 1] * 0.587 + rgba[..., 2] * 0.114
        return (luma * rgba[..., 3]).astype(np.float32)
    return np.asarray(im.convert("L"), dtype=np.float32) / 255.0


def _scale(arr: np.ndarray, full_range: float, intensity: str) -> np.ndarray:
    if intensity == "per_image":
        return _stretch(arr)
    return np.clip(arr / full_range, 0.0, 1.0).astype(np.float32)


def _stretch(arr: np.ndarray) -> np.ndarray:
    lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        return np.zeros_like(arr, dtype=np.float32)
    return ((arr - lo) / (hi - lo)).astype(np.float32)


def _read_dicom(path: Path, *, max_pixels: int, dicom: DicomConfig) -> tuple[np.ndarray, ImageInfo]:
    """DICOM → Hounsfield units (RescaleSlope/Intercept) → display window → [0, 1].

    Only pixel-related attributes are read; patient-identifying tags are never
    printed, copied or stored.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, EOFError, ValueError, KeyError) as exc:
        raise UserError(f"{path}: not a readable DICOM file ({exc.__class__.__name__})") from None
    rows, cols = int(getattr(ds, "Rows", 0) or 0), int(getattr(ds, "Columns", 0) or 0)
    check_pixel_count(path, cols, rows, max_pixels)
    if "PixelData" not in ds:
        raise UserError(f"{path}: DICOM file has no pixel data")
    try:
        pixels = ds.pixel_array.astype(np.float64)
    except Exception as exc:  # pydicom raises several types for missing decoders / bad data
        raise UserError(
            f"{path}: cannot decode DICOM pixel data ({exc.__class__.__name__}); "
            "compressed transfer syntaxes need e.g. `pip install pylibjpeg pylibjpeg-libjpeg`"
        ) from None
    if pixels.ndim != 2:
        raise UserError(f"{path}: DICOM has pixel array shape {pixels.shape}; only single-frame grayscale slices are supported")
    slope = float(getattr(ds, "RescaleSlope", 1.0) or 1.0)
    intercept = float(getattr(ds, "RescaleIntercept", 0.0) or 0.0)
    hu = pixels * slope + intercept
    level, width = dicom.level_width()
    display = np.clip((hu - (level - width / 2.0)) / width, 0.0, 1.0)
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2"))
    if photometric == "MONOCHROME1":  # low values are meant to be shown bright
        display = 1.0 - display
    info = ImageInfo(width=cols, height=rows, mode=f"DICOM/{photometric}", format="DICOM")
    return display.astype(np.float32), info


def check_pixel_count(path: Path, width: int, height: int, max_pixels: int) -> None:
    """The decompression-bomb guard: refuse an image over ``max_pixels`` before decoding it."""
    if width * height > max_pixels:
        raise UserError(
            f"{path}: image is {width}×{height} = {width * height:,} pixels, over data.max_image_pixels="
            f"{max_pixels:,} (decompression-bomb guard); remove it or raise the limit if it is genuine"
        )


def preprocess(gray: np.ndarray, size: int):
    """Float H×W in [0, 1] → float32 tensor 1×size×size in [-1, 1].

    Pads the shorter side with black (centred, keeping the aspect ratio), then
    resizes with antialiasing (bilinear with an antialiasing filter when shrinking).
    """
    import torch
    import torch.nn.functional as F

    h, w = gray.shape
    side = max(h, w)
    square = np.zeros((side, side), dtype=np.float32)
    top, left = (side - h) // 2, (side - w) // 2
    square[top : top + h, left : left + w] = gray
    t = torch.from_numpy(square)[None, None]
    if side != size:
        t = F.interpolate(t, size=(size, size), mode="bilinear", antialias=side > size, align_corners=False)
    return (t[0].clamp_(0.0, 1.0) * 2.0 - 1.0).contiguous()
