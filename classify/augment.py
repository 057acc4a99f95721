"""Classical augmentation of a whole batch at once, on the device (no per-image Python).

For one-channel CT slices in [-1, 1] with black (-1) air around the head:

- horizontal flip with probability 0.5 (left/right mirror images are anatomically
  plausible; up/down ones are not, so there is no vertical flip);
- a small random rotation (± ``max_rotation`` degrees) and translation
  (± ``max_translation`` of the image size), one affine ``grid_sample`` for the
  batch; pixels entering from outside are air (-1), not mid-grey;
- intensity jitter: a multiplicative gain on (x + 1), so air stays black, and
  a small additive offset on the tissue only.

Every random draw comes from ``generator``, so a seeded generator gives the
same augmented batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def classical_augment(
    x: torch.Tensor,
    generator: torch.Generator,
    *,
    flip: bool = True,
    max_rotation: float = 10.0,
    max_translation: float = 0.0625,
    gain: float = 0.1,
    offset: float = 0.05,
) -> torch.Tensor:
    """Augment ``x`` (N×C×H×W in [-1, 1]); returns a new contiguous tensor of the same shape and dtype."""
    n, dev = x.shape[0], x.device

    def uniform(*shape: int) -> torch.Tensor:
        return torch.rand(*shape, generator=generator, device=dev) * 2 - 1

    angle = uniform(n) * math.radians(max_rotation)
    shift = uniform(n, 2) * (2 * max_translation)  # grid units: the image spans [-1, 1]
    mirror = torch.where(torch.rand(n, generator=generator, device=dev) < 0.5, -1.0, 1.0) if flip else torch.ones(n, device=dev)
    cos, sin = torch.cos(angle), torch.sin(angle)
    theta = torch.stack(
        [torch.stack([cos * mirror, -sin, shift[:, 0]], dim=1), torch.stack([sin * mirror, cos, shift[:, 1]], dim=1)], dim=1
    )  # N×2×3: rotate ∘ mirror, then shift
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    # grid_sample pads with 0; shift so that air (-1) becomes 0 and padding is air
    out = F.grid_sample(x.float() + 1, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    g = 1 + uniform(n, 1, 1, 1) * gain
    b = uniform(n, 1, 1, 1) * offset
    tissue = (out > 0.02).to(out.dtype)
    out = (out * g + b * tissue - 1).clamp_(-1, 1)
    return out.to(dtype=x.dtype)
