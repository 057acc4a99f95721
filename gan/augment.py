"""DiffAugment (Zhao et al. 2020) for one-channel CT images on a black background.

Differentiable augmentations applied to real *and* fake images in both the D
and the G step, so D cannot overfit ~70 training images while G still learns
the un-augmented distribution. Adapted to CT in [-1, 1] with black (-1) air:

- ``translation``: shift by up to 1/8 of the size, filling with black;
- ``cutout``: a square of half the size set to black (air), not grey;
- ``color``: brightness is multiplicative and contrast is applied around the
  mean of the foreground only, so the black background stays black.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

POLICIES = ("translation", "cutout", "color")


def parse_policy(policy: str) -> tuple[str, ...]:
    parts = tuple(p.strip() for p in policy.split(",") if p.strip())
    unknown = [p for p in parts if p not in POLICIES]
    if unknown:
        raise ValueError(f"unknown DiffAugment policy {unknown[0]!r}; choose from {', '.join(POLICIES)}")
    return parts


def diff_augment(x: torch.Tensor, policy: tuple[str, ...], generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply the augmentations in ``policy`` (each with fresh random parameters per image)."""
    for name in policy:
        x = _AUGMENTS[name](x, generator)
    return x


def _rand(n: int, x: torch.Tensor, generator) -> torch.Tensor:
    return torch.rand(n, 1, 1, 1, device=x.device, dtype=torch.float32, generator=generator)


def _color(x: torch.Tensor, generator) -> torch.Tensor:
    n = x.shape[0]
    x01 = (x + 1.0) * 0.5
    foreground = (x01 > 0.05).to(x01.dtype).detach()
    mean = (x01 * foreground).sum(dim=(1, 2, 3), keepdim=True) / foreground.sum(dim=(1, 2, 3), keepdim=True).clamp_min(1.0)
    contrast = 0.75 + 0.5 * _rand(n, x, generator)  # 0.75 … 1.25
    x01 = foreground * ((x01 - mean) * contrast + mean) + (1.0 - foreground) * x01
    brightness = 0.8 + 0.4 * _rand(n, x, generator)  # ×0.8 … ×1.2
    return (x01 * brightness).clamp(0.0, 1.0) * 2.0 - 1.0


def _translation(x: torch.Tensor, generator, ratio: float = 0.125) -> torch.Tensor:
    n, _, h, w = x.shape
    sh, sw = max(1, int(h * ratio + 0.5)), max(1, int(w * ratio + 0.5))
    dy = torch.randint(-sh, sh + 1, (n, 1, 1), device=x.device, generator=generator)
    dx = torch.randint(-sw, sw + 1, (n, 1, 1), device=x.device, generator=generator)
    b, gy, gx = torch.meshgrid(torch.arange(n, device=x.device), torch.arange(h, device=x.device), torch.arange(w, device=x.device), indexing="ij")
    gy = (gy + dy + 1).clamp(0, h + 1)
    gx = (gx + dx + 1).clamp(0, w + 1)
    padded = F.pad(x, [1, 1, 1, 1], value=-1.0)  # the 1-px border is black: out-of-frame = air
    return padded.permute(0, 2, 3, 1)[b, gy, gx].permute(0, 3, 1, 2).contiguous(memory_format=torch.contiguous_format)


def _cutout(x: torch.Tensor, generator, ratio: float = 0.5) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    # top-left corner of the square; it may hang off the edge, as in DiffAugment
    top = torch.randint(0, h + 1, (n, 1, 1), device=x.device, generator=generator) - ch // 2
    left = torch.randint(0, w + 1, (n, 1, 1), device=x.device, generator=generator) - cw // 2
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    inside = (ys >= top) & (ys < top + ch) & (xs >= left) & (xs < left + cw)
    return torch.where(inside.unsqueeze(1), torch.full_like(x, -1.0), x)


_AUGMENTS = {"translation": _translation, "cutout": _cutout, "color": _color}
