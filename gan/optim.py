"""The GAN trainers' optimiser and generator average: one place for the per-GAN and the batched trainer.

- :func:`adam`: Adam (Kingma & Ba 2015) with the config's lr and betas, foreach on the CPU, fused on CUDA;
- :func:`ema_decay` / :func:`ema_update`: the exponential moving average of G's weights sampled
  from (Karras et al. 2018, "Progressive growing of GANs", section A.1; Yazıcı et al. 2019).
"""

from __future__ import annotations

import torch

from gan.config import GanConfig


def adam(params, cfg: GanConfig) -> torch.optim.Adam:
    """The GAN optimiser (one place for both trainers): Adam(lr, β1, β2).

    On the CPU the multi-tensor (foreach) step, bit-identical to the default per-parameter loop
    (``tests/test_gan_fingerprint.py``) and faster; on CUDA the fused kernel (one launch per step for all
    parameters; PyTorch's ``fused=True``), which rounds differently, so a GPU run matches a CPU run only
    statistically, as any GPU kernel does.
    """
    params = list(params)
    fused = bool(params) and params[0].is_cuda
    return torch.optim.Adam(params, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), foreach=None if fused else True, fused=fused or None)


def ema_decay(cfg: GanConfig, step: int) -> float:
    """The EMA generator's decay at iteration ``step`` (0-based; the D-step counter, one G step per ``n_critic``), one place for both trainers: ``cfg.ema_decay``
    after a warm-up ``(1 + step) / (10 + step)`` — reached at step 8,990 for 0.999, so the default preset's 2,250 steps end at
    0.9960 (a ~250-step window). Longer averages were screened and are worse (bench/RESULTS.md, "GAN quality")."""
    return min(cfg.ema_decay, (1 + step) / (10 + step))


def ema_update(ema: torch.nn.Module, model: torch.nn.Module, decay: float) -> None:
    """Move ``ema``'s parameters towards ``model``'s by ``1 - decay`` (in place) and copy its buffers (BatchNorm statistics)."""
    with torch.no_grad():
        ema_p = list(ema.parameters())
        torch._foreach_lerp_(ema_p, [p.detach() for p in model.parameters()], 1.0 - decay)
        for b_ema, b in zip(ema.buffers(), model.buffers()):
            b_ema.copy_(b)
