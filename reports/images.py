"""Images for the report: small PNG data URIs from run-directory files or arrays.

Thumbnails are re-encoded as 8-bit PNG and downscaled to a maximum side, so a
report with hundreds of images stays a few MB; small images are never
upscaled here (the page enlarges them with ``image-rendering: pixelated``).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from reports.style import png_uri

THUMB_PX = 64  # largest side of a gallery thumbnail
GRID_PX = 320  # largest side of an embedded training grid or saved figure of the run


@dataclass(frozen=True)
class Picture:
    """An embeddable image: data URI plus its pixel size and a caption."""

    uri: str
    width: int
    height: int
    caption: str = ""
    title: str = ""


def encode(image, max_side: int) -> tuple[str, int, int]:
    """A PIL image → (PNG data URI, width, height), downscaled to ``max_side`` if larger."""
    from PIL import Image

    if image.mode not in ("L", "RGB", "RGBA"):
        image = image.convert("RGBA" if "A" in image.getbands() else "RGB")
    if max(image.size) > max_side:
        scale = max_side / max(image.size)
        image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))), Image.Resampling.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    return png_uri(buffer.getvalue()), image.width, image.height


def picture_from_file(path: Path, max_side: int = THUMB_PX, caption: str = "", title: str = "") -> Picture | None:
    """Read an image file of the run; None when it is missing or unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            uri, w, h = encode(im, max_side)
    except (OSError, UnidentifiedImageError, ValueError):
        return None
    return Picture(uri, w, h, caption, title)


def picture_from_array(array: np.ndarray, max_side: int = THUMB_PX, caption: str = "", title: str = "") -> Picture:
    """uint8 H×W (grayscale) or H×W×3 array → Picture."""
    from PIL import Image

    uri, w, h = encode(Image.fromarray(np.ascontiguousarray(array)), max_side)
    return Picture(uri, w, h, caption, title)
