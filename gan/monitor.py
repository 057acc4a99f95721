"""A cheap quality signal during GAN training, on fixed features.

Not the QC layer's FID/KID (that uses Inception through torch-fidelity after
training): a frozen, seeded random conv net whose features stay identical across
epochs, runs, and resumes, so the numbers are comparable over training.

- ``kid_val``: unbiased KID (cubic polynomial kernel MMD², ×1000) between
  generated samples and held-out *validation* images — lower is better.
- ``nn_val``: mean distance from each validation image to its nearest sample
  (coverage: are the validation images' modes produced?) — lower is better.
- ``diversity``: mean pairwise feature distance among samples divided by the
  same among real training images; far below 1 warns of mode collapse.
"""

from __future__ import annotations

import torch
from torch import nn

COLLAPSE_RATIO = 0.3  # diversity below this fraction of the real images' is flagged


class QualityMonitor:
    def __init__(self, train_images: torch.Tensor, val_images: torch.Tensor | None, seed: int = 0, device: str | torch.device = "cpu") -> None:
        """Features of ``train_images`` and ``val_images`` (N×1×S×S in [-1, 1]) once; the net and every later
        evaluation run on ``device`` (the GAN's: on a GPU the samples need not come back to the host)."""
        self.device = torch.device(device)
        # fork_rng: building layers draws default inits from the global RNG, which the
        # trainer's dropout uses — the monitor must not shift it (resume would differ).
        with torch.random.fork_rng(devices=[]):
            gen = torch.Generator().manual_seed(seed)
            self.net = nn.Sequential(
                nn.Conv2d(1, 32, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
                nn.Conv2d(32, 64, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
                nn.Conv2d(64, 128, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
            )  # fmt: skip
            with torch.no_grad():  # He-initialised from our own seed: the same features everywhere
                for layer in self.net:
                    if isinstance(layer, nn.Conv2d):
                        fan_in = layer.weight[0].numel()
                        layer.weight.copy_(torch.randn(layer.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5)
                        layer.bias.zero_()
        self.net.to(self.device).eval().requires_grad_(False)
        self.real_diversity = _mean_pairwise(self.features(train_images))
        self.val_features = None if val_images is None or len(val_images) < 2 else self.features(val_images)

    @torch.no_grad()
    def features(self, images: torch.Tensor) -> torch.Tensor:
        """N×1×S×S in [-1, 1] → N×256 float64: per-channel mean and std of the last feature map."""
        h = self.net(images.detach().float().to(self.device).contiguous())
        return torch.cat([h.mean(dim=(2, 3)), h.std(dim=(2, 3))], dim=1).double()

    def evaluate(self, samples: torch.Tensor) -> dict[str, float]:
        feats = self.features(samples)
        out = {"diversity": float(_mean_pairwise(feats) / max(self.real_diversity, 1e-12))}
        if self.val_features is not None:
            out["kid_val"] = float(kid(feats, self.val_features) * 1000.0)
            out["nn_val"] = float(torch.cdist(self.val_features, feats).min(dim=1).values.mean())
        return out


def kid(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Unbiased MMD² with the kernel k(a, b) = (a·b / d + 1)³ (Bińkowski et al. 2018)."""
    d = x.shape[1]
    kxx, kyy, kxy = ((a @ b.T / d + 1) ** 3 for a, b in ((x, x), (y, y), (x, y)))
    m, n = len(x), len(y)
    return (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1)) + (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1)) - 2 * kxy.mean()


def _mean_pairwise(f: torch.Tensor) -> float:
    n = len(f)
    if n < 2:
        return 0.0
    return float(torch.cdist(f, f).sum() / (n * (n - 1)))
