"""Decode one image file into a 2-D float array in [0, 1], and preprocess it.

Real CT exports are messy: 8-bit L, RGB and RGBA PNG/JPEG (some with burned-in
letters, some stored rotated with an EXIF Orientation tag), 16-bit PNG/TIFF,
signed 16-bit or float TIFF in Hounsfield units, DICOM (with or without its
preamble and file-meta header). Everything becomes one grayscale channel here,
by fixed rules stated in ``docs/data.md``; ``preprocess`` then pads to a square
with black, resizes with antialiasing and scales to [-1, 1].
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ctqc.config import DicomConfig
from ctqc.errors import UserError

#: File extensions the folder loader looks for, lower case. Files with no extension
#: (or a purely numeric one, ``IM0001``, ``slice.001``) are read when their content is DICOM.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm", ".dicom", ".ima")
DICOM_EXTENSIONS = (".dcm", ".dicom", ".ima")

#: Bumped whenever the same file bytes decode to different pixels (part of the data fingerprint).
#: 2: EXIF orientation applied; HU windowing of signed/float rasters; RGB .npz as luma; headerless DICOM.
PREPROCESSING_VERSION = 2

_SIXTEEN_BIT_MODES = {"I;16", "I;16B", "I;16L", "I;16N"}
#: Signed values in this range (stored minimum below 0) are taken for Hounsfield units:
#: air is −1000 HU, scanners pad outside the field of view with −1024, −2000 or −3024.
HU_LOWEST = -3072.0
EXIF_ORIENTATION = 0x0112


@dataclass(frozen=True)
class ImageInfo:
    """What a file looked like before preprocessing, and what was done with it (for ``ctqc data inspect``)."""

    width: int  # px, as displayed (after any EXIF rotation)
    height: int
    mode: str  # PIL mode, "DICOM/<photometric interpretation>", or the array dtype (npz)
    format: str  # "PNG", "JPEG", "TIFF", "BMP", "DICOM", "npz", "array"
    orientation: int = 1  # EXIF Orientation tag applied (1 = stored upright / no tag)
    value_min: float | None = None  # stored values (HU for DICOM) before any scaling
    value_max: float | None = None
    handling: str = ""  # how values became [0, 1], e.g. "/255", "HU window brain (L40/W80)"


def read_image(
    path: Path,
    *,
    max_pixels: int,
    intensity: str = "absolute",
    dicom: DicomConfig | None = None,
) -> tuple[np.ndarray, ImageInfo]:
    """Read ``path`` as a float32 H×W array in [0, 1] (0 = black), as a viewer shows it.

    DICOM is recognised by its extension (.dcm/.dicom/.ima) or its content (see
    :func:`is_dicom`). Raises :class:`UserError` naming the file for unreadable,
    corrupt, oversized (decompression-bomb guard) or unsupported images, and for
    values that fit no intensity rule (``docs/data.md``).
    """
    dicom = dicom or DicomConfig()
    if path.suffix.lower() in DICOM_EXTENSIONS or (path.suffix.lower() not in IMAGE_EXTENSIONS and is_dicom(path)):
        return _read_dicom(path, max_pixels=max_pixels, dicom=dicom)
    return _read_raster(path, max_pixels=max_pixels, intensity=intensity, dicom=dicom)


def _read_raster(path: Path, *, max_pixels: int, intensity: str, dicom: DicomConfig) -> tuple[np.ndarray, ImageInfo]:
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                # The header is parsed but no pixels are decoded yet: check the size first.
                check_pixel_count(path, *im.size, max_pixels)
                im.load()
                orientation = int(im.getexif().get(EXIF_ORIENTATION, 1) or 1)
                upright = ImageOps.exif_transpose(im) if orientation != 1 else im
                gray, value_range, handling = _to_gray(upright, intensity, dicom, path)
                info = ImageInfo(
                    width=upright.size[0],
                    height=upright.size[1],
                    mode=im.mode,
                    format=im.format or "?",
                    orientation=orientation if orientation in range(1, 9) else 1,
                    value_min=value_range[0],
                    value_max=value_range[1],
                    handling=handling,
                )
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


def _to_gray(im, intensity: str, dicom: DicomConfig, path: Path) -> tuple[np.ndarray, tuple[float, float], str]:
    """PIL image → (float32 H×W in [0, 1], (stored min, max), what was done). Transparent pixels become black."""
    if im.mode in _SIXTEEN_BIT_MODES or im.mode in ("I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        gray, handling = scale_values(arr, integer=im.mode != "F", intensity=intensity, dicom=dicom, path=path)
        return gray, _value_range(arr), handling
    has_alpha = im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info)
    if has_alpha:
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float32) / 255.0
        luma = rgba[..., 0] * 0.299 + rgba[..., 1] * 0.587 + rgba[..., 2] * 0.114
        return (luma * rgba[..., 3]).astype(np.float32), (0.0, 255.0) if rgba.size else (0.0, 0.0), "luma × alpha /255"
    gray8 = np.asarray(im.convert("L"), dtype=np.float32)
    handling = "/255" if im.mode in ("L", "1") else ("luma /255" if im.mode in ("RGB", "YCbCr", "CMYK", "P") else f"{im.mode}→L /255")
    return gray8 / 255.0, _value_range(gray8), handling


def scale_values(arr: np.ndarray, *, integer: bool, intensity: str, dicom: DicomConfig, path: Path | str) -> tuple[np.ndarray, str]:
    """One channel of 16/32-bit integer or float values → (float32 in [0, 1], what was done).

    The rules (``docs/data.md``), in order:

    - ``intensity=per_image``: each image's min..max stretched to 0..1;
    - ``intensity=hu``, or values that look like Hounsfield units (a stored minimum
      below 0 and not below −3072): the display window ``data.dicom.window``, as for DICOM;
    - integers 0..65535: divided by 65535;
    - floats in [0, 1]: kept; floats in [0, 255]: divided by 255;
    - anything else raises :class:`UserError` naming the file and the settings that fix it.
    """
    lo, hi = _value_range(arr)
    if intensity == "per_image":
        return _stretch(arr), "per-image stretch (data.intensity=per_image)"
    if intensity == "hu" or (lo < 0 and lo >= HU_LOWEST):
        why = "data.intensity=hu" if intensity == "hu" else "values look like HU"
        return window_hu(arr, dicom), f"HU window {_window_name(dicom)} ({why})"
    if integer and lo >= 0 and hi <= 65535:
        return (arr / 65535.0).astype(np.float32), "/65535"
    if not integer and lo >= 0 and hi <= 1:
        return arr.astype(np.float32), "float [0, 1] kept"
    if not integer and lo >= 0 and hi <= 255:
        return (arr / 255.0).astype(np.float32), "float /255"
    kind = "integer" if integer else "float"
    raise UserError(
        f"{path}: {kind} values {lo:g}..{hi:g} fit no intensity rule (HU, 0..65535, [0, 1], [0, 255]); "
        "set data.intensity=hu (Hounsfield units) or data.intensity=per_image (stretch each image)"
    )


def window_hu(hu: np.ndarray, dicom: DicomConfig) -> np.ndarray:
    """Hounsfield units → [0, 1] through the display window ``dicom`` (level ± width/2, clipped)."""
    level, width = dicom.level_width()
    return np.clip((np.asarray(hu, np.float64) - (level - width / 2.0)) / width, 0.0, 1.0).astype(np.float32)


def _window_name(dicom: DicomConfig) -> str:
    level, width = dicom.level_width()
    return f"{dicom.window} (L{level:g}/W{width:g})"


def _value_range(arr: np.ndarray) -> tuple[float, float]:
    return (float(arr.min()), float(arr.max())) if arr.size else (0.0, 0.0)


def _stretch(arr: np.ndarray) -> np.ndarray:
    lo, hi = float(arr.min()), float(arr.max())
    if hi <= lo:
        return np.zeros_like(arr, dtype=np.float32)
    return ((arr - lo) / (hi - lo)).astype(np.float32)


def is_dicom(path: Path) -> bool:
    """Whether ``path`` holds DICOM: the ``DICM`` magic at byte 128, or (for a bare dataset
    without preamble and file-meta header) a forced read that finds image rows and columns."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(132)
    except OSError:
        return False
    if head[128:132] == b"DICM":
        return True
    return why_not_dicom(path) is None


def why_not_dicom(path: Path) -> str | None:
    """None when a forced read of ``path`` parses a dataset with Rows and Columns; else the reason."""
    import pydicom

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
            rows, cols = ds.get("Rows"), ds.get("Columns")
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on non-DICOM bytes
        return f"not DICOM: no 'DICM' header and the content does not parse ({exc.__class__.__name__})"
    if not rows or not cols:
        return "not DICOM: no 'DICM' header and no image rows/columns in the content"
    return None


def _read_dicom(path: Path, *, max_pixels: int, dicom: DicomConfig) -> tuple[np.ndarray, ImageInfo]:
    """DICOM → Hounsfield units (RescaleSlope/Intercept) → display window → [0, 1].

    Files without the 128-byte preamble and ``DICM`` file-meta header (bare datasets, as
    some scanner exports write them) are read with pydicom's ``force=True``; with no
    transfer syntax recorded, implicit VR little endian (the DICOM default) is assumed.
    Only pixel-related attributes are read; patient-identifying tags are never
    printed, copied or stored.
    """
    import pydicom
    from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom warns about the missing header it copes with
            ds = pydicom.dcmread(path, force=True)
            rows, cols = int(ds.get("Rows", 0) or 0), int(ds.get("Columns", 0) or 0)
    except Exception as exc:  # noqa: BLE001 - pydicom raises many types on corrupt files
        raise UserError(f"{path}: not a readable DICOM file ({exc.__class__.__name__}); remove or replace the file") from None
    headerless = "TransferSyntaxUID" not in ds.file_meta
    if not rows or not cols:
        missing = " (no preamble or 'DICM' file-meta header, and no image rows/columns in the content)" if headerless else " (no image rows/columns)"
        raise UserError(f"{path}: not a readable DICOM file{missing}; remove or replace the file")
    check_pixel_count(path, cols, rows, max_pixels)
    if "PixelData" not in ds:
        raise UserError(f"{path}: DICOM file has no pixel data")
    vr = ""
    if headerless:  # the encoding pydicom detected while parsing, or the DICOM default
        implicit = getattr(ds, "original_encoding", (True, True))[0] in (True, None)
        ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian
        vr = "implicit" if implicit else "explicit"
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
    display = window_hu(hu, dicom)
    photometric = str(getattr(ds, "PhotometricInterpretation", "MONOCHROME2"))
    if photometric == "MONOCHROME1":  # low values are meant to be shown bright
        display = 1.0 - display
    handling = f"HU window {_window_name(dicom)}" + (f" (no DICOM header: read as {vr} VR)" if headerless else "")
    info = ImageInfo(width=cols, height=rows, mode=f"DICOM/{photometric}", format="DICOM", value_min=float(hu.min()), value_max=float(hu.max()), handling=handling)
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
