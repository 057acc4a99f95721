"""GAN losses on raw discriminator logits, and gradient penalties.

- ``bce``: the paper's binary cross-entropy; G uses the non-saturating form.
  One-sided label smoothing (real target 1 - s) and label inversion (each D
  target flipped with probability p) are the paper's "label inversion" tricks.
- ``hinge``: Lim & Ye 2017 / Miyato et al. 2018.
- ``wgan-gp``: Gulrajani et al. 2017 (the paper's reference [7]), with its
  gradient penalty on real/fake interpolates.
- R1 (Mescheder et al. 2018): γ/2·E‖∇D(x_real)‖², optional for ``bce``/``hinge``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

LOSSES = ("bce", "hinge", "wgan-gp")


def d_loss(kind: str, real: torch.Tensor, fake: torch.Tensor, *, smoothing: float = 0.0, flip: float = 0.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Discriminator loss from logits on real and fake batches (both shape (N,))."""
    if kind == "bce":
        t_real = torch.full_like(real, 1.0 - smoothing)
        t_fake = torch.zeros_like(fake)
        if flip > 0:  # label inversion: swap a random fraction of D's targets
            t_real = torch.where(_bernoulli(real, flip, generator), 1.0 - t_real, t_real)
            t_fake = torch.where(_bernoulli(fake, flip, generator), 1.0 - t_fake, t_fake)
        return F.binary_cross_entropy_with_logits(real, t_real) + F.binary_cross_entropy_with_logits(fake, t_fake)
    if kind == "hinge":
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    if kind == "wgan-gp":
        return fake.mean() - real.mean()
    raise ValueError(f"unknown GAN loss {kind!r}; choose one of {LOSSES}")


def g_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    """Generator loss from D's logits on fakes."""
    if kind == "bce":
        return F.softplus(-fake).mean()  # non-saturating: -log sigmoid(D(G(z)))
    if kind in ("hinge", "wgan-gp"):
        return -fake.mean()
    raise ValueError(f"unknown GAN loss {kind!r}; choose one of {LOSSES}")


def r1_penalty(d_out: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """E‖∇ₓD(x)‖² for real ``x`` (which must require grad). Multiply by γ/2."""
    (grad,) = torch.autograd.grad(d_out.sum(), x, create_graph=True)
    return grad.float().pow(2).flatten(1).sum(1).mean()


def wgan_gradient_penalty(discriminator, real: torch.Tensor, fake: torch.Tensor, y, generator: torch.Generator | None = None) -> torch.Tensor:
    """E(‖∇D(x̂)‖ - 1)² on random interpolates x̂ of real and fake."""
    alpha = torch.rand(real.shape[0], 1, 1, 1, device=real.device, generator=generator)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    out = discriminator(mixed, y)
    (grad,) = torch.autograd.grad(out.sum(), mixed, create_graph=True)
    return (grad.float().flatten(1).norm(dim=1) - 1.0).pow(2).mean()


def _bernoulli(like: torch.Tensor, p: float, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(like.shape, device=like.device, generator=generator) < p
