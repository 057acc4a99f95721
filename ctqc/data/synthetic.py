"""Reading a synthetic pool's PNGs (``samples/``) back into ctqc's image convention."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ctqc.data.images import check_pixel_count
from ctqc.errors import UserError


def load_synthetic(folder: Path, files, max_pixels: int) -> torch.Tensor:
    """The pool's 8-bit grayscale PNGs (``files`` relative to ``folder``) → float32 N×1×S×S in [-1, 1].

    ``files`` come from ``samples/index.csv``, which anyone can edit: a name that
    leaves ``folder``, an unreadable file, an image over ``max_pixels`` (the
    decompression-bomb guard) or images of different sizes raise :class:`UserError`.
    """
    inside = Path(folder).resolve()
    arrays = []
    for name in files:
        path = Path(folder) / str(name)
        if not path.resolve().is_relative_to(inside):
            raise UserError(f"{folder / 'index.csv'}: file {str(name)!r} leaves {folder}; run `ctqc generate` again")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(path) as im:
                    check_pixel_count(path, *im.size, max_pixels)
                    arrays.append(np.asarray(im.convert("L"), dtype=np.float32))
        except UserError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise UserError(f"{path}: image is too large to decode safely (decompression-bomb guard); run `ctqc generate` again") from None
        except (OSError, ValueError, SyntaxError, EOFError) as exc:
            raise UserError(f"{path}: cannot read synthetic image ({exc.__class__.__name__}); run `ctqc generate` again") from None
    if len({a.shape for a in arrays}) > 1:
        raise UserError(f"{folder}: synthetic images of different sizes ({', '.join(sorted({f'{a.shape[1]}×{a.shape[0]}' for a in arrays}))}); run `ctqc generate` again")
    return torch.from_numpy(np.stack(arrays) / 127.5 - 1.0).unsqueeze(1).float()
