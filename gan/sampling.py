"""Load a trained generator from its self-describing checkpoint and sample from it."""

from __future__ import annotations

from pathlib import Path

import torch

from gan.networks import build_generator
from gan.trainer import load_checkpoint


def load_generator(path: str | Path) -> tuple[torch.nn.Module, dict]:
    """Rebuild G from ``generator.pt`` (or ``last.pt``, using its EMA weights); returns (G in eval mode, meta)."""
    state = load_checkpoint(path)
    meta = state["meta"]
    G = build_generator(meta["architecture"], z_dim=meta["z_dim"], n_classes=meta["n_classes"], image_size=meta["image_size"], width=meta["width"])
    weights = state.get("G_ema") or state["G"]
    G.load_state_dict(weights)
    return G.eval(), meta


@torch.no_grad()
def sample(G: torch.nn.Module, n: int, seed: int, y: int | None = None, batch_size: int = 256) -> torch.Tensor:
    """``n`` images (N×1×S×S float32 in [-1, 1], on the CPU), deterministic from ``seed``.

    z is drawn on the CPU from one generator, so the images do not depend on
    ``batch_size`` or the device. Sampling runs in fp32 for exact reproducibility.
    """
    gen = torch.Generator().manual_seed(seed)
    z_dim = G.z_dim
    z = torch.randn(n, z_dim, generator=gen)
    device = next(G.parameters()).device
    out = []
    for start in range(0, n, batch_size):
        zb = z[start : start + batch_size].to(device)
        yb = None if y is None else torch.full((len(zb),), y, dtype=torch.long, device=device)
        out.append(G(zb, yb).float().cpu())
    return torch.cat(out) if out else torch.empty(0, 1, G.image_size, G.image_size)


def sample_pixels(G: torch.nn.Module, n: int, seed: int, y: int | None = None) -> torch.Tensor:
    """:func:`sample` as 8-bit grayscale, the form the pool's PNG files store: uint8 N×S×S in [0, 255]."""
    return ((sample(G, n, seed, y=y)[:, 0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
