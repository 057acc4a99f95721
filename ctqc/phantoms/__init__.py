"""Procedural head-CT phantoms: the built-in demo data set and a test fixture.

The generator mimics the Kaggle "Head CT - hemorrhage" data set: axial slices at
the level of the lateral ventricles as they look in a brain window (8-bit
grayscale), half of them with an acute haemorrhage. Every slice shows scalp,
skull, cortex with sulci, white matter, ventricles and, in both classes, normal
findings that make the task non-trivial (calcifications, partial volume near
the skull, beam-hardening streaks, window and noise variation).

Intensities are modelled in "window units": 0 is the bottom and 1 the top of a
W80/L40 brain window (0 and 80 HU), so air and fat lie far below 0 and bone far
above 1, and both saturate when the image is clipped to [0, 1] at the end.

Contracts
---------
* Deterministic: the same :class:`PhantomSpec` gives bit-identical images on a
  given platform (numpy's SIMD exp/sin/arctan2 may differ in the last bit
  between CPU types, which can move a pixel by one grey level).
* Image ``i`` is drawn from its own generator ``np.random.default_rng([seed, i])``
  and its class is ``i % 2``, so an image does not depend on how many are made.
* Both classes consume the random stream identically; the haemorrhage flag only
  decides whether the drawn bleed is painted. With equal generator states the
  haemorrhage render is therefore >= the normal render everywhere.
* ``difficulty`` maps the same random draws to smaller and fainter bleeds, so for
  a fixed generator state the bleed shrinks monotonically as difficulty grows.
  Rendered at 256 px and downsized to 32x32, 200 slices train a small CNN
  (bench/phantom_difficulty.py) to about 99 % test accuracy at difficulty 0,
  82 % at 0.5 and chance at 1.

Only numpy and scipy are imported so that importing this module stays cheap.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ctqc.phantoms.anatomy import Head, acquire, anatomy, bleed, distractors

__all__ = ["PhantomSet", "PhantomSpec", "generate_phantoms", "render_phantom"]


@dataclass(frozen=True)
class PhantomSpec:
    """What to generate: ``2 * n_per_class`` square slices of ``size`` pixels.

    ``difficulty`` in [0, 1]: 0 gives large, bright bleeds; 1 tiny, faint ones.
    ``seed`` must be >= 0 (it seeds numpy's ``SeedSequence``).
    """

    n_per_class: int = 100
    size: int = 256
    seed: int = 0
    difficulty: float = 0.5

    def __post_init__(self) -> None:
        if self.n_per_class < 1:
            raise ValueError(f"n_per_class must be >= 1, got {self.n_per_class}")
        if self.size < 16:
            raise ValueError(f"size must be >= 16, got {self.size}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if not 0.0 <= self.difficulty <= 1.0:
            raise ValueError(f"difficulty must be in [0, 1], got {self.difficulty}")


@dataclass(frozen=True)
class PhantomSet:
    """Generated slices.

    ``images``: uint8, shape (N, size, size), N = 2 * n_per_class, 0 = black.
    ``labels``: int64, shape (N,), 0 = normal, 1 = haemorrhage; ``labels[i] == i % 2``.
    ``ids``: zero-padded indices "000", "001", ... of width max(3, len(str(N - 1))).
    """

    images: np.ndarray
    labels: np.ndarray
    ids: list[str]


def generate_phantoms(spec: PhantomSpec = PhantomSpec()) -> PhantomSet:
    """Render the phantom set described by ``spec`` (see :class:`PhantomSet`)."""
    n = 2 * spec.n_per_class
    labels = np.arange(n, dtype=np.int64) % 2  # interleaved: even = normal, odd = haemorrhage
    images = np.empty((n, spec.size, spec.size), dtype=np.uint8)
    for i in range(n):
        rng = np.random.default_rng([spec.seed, i])
        image = render_phantom(rng, spec.size, bool(labels[i]), spec.difficulty)
        images[i] = np.rint(image * 255.0).astype(np.uint8)
    width = max(3, len(str(n - 1)))
    return PhantomSet(images=images, labels=labels, ids=[str(i).zfill(width) for i in range(n)])


def render_phantom(rng: np.random.Generator, size: int, haemorrhage: bool, difficulty: float) -> np.ndarray:
    """Render one slice as float32 (size, size) in [0, 1] (0 = air, 1 = bone).

    ``size`` >= 16 px; ``difficulty`` in [0, 1] (see :class:`PhantomSpec`). What
    is drawn from ``rng`` does not depend on ``haemorrhage``: two generators in
    the same state render the same slice, once with and once without its
    bleed, and end in the same state.
    """
    head = Head.draw(rng, size)
    image = anatomy(rng, head) + distractors(rng, head)
    bleed_mask, bleed_level = bleed(rng, head, difficulty)
    if haemorrhage:
        # Blood replaces whatever is darker than itself (brain, CSF) and leaves
        # brighter tissue alone, so the bleed can only raise intensities.
        image += bleed_mask * np.maximum(bleed_level - image, 0.0)
    frame = np.zeros((size, size), dtype=np.float32)  # air outside the head's box
    frame[head.box] = acquire(rng, image, size)
    return frame
