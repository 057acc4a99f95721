"""Generators and discriminators.

``PaperGenerator`` / ``PaperDiscriminator`` follow section 4.2.2 of the paper
(32×32×1) exactly. ``StridedGenerator`` / ``StridedDiscriminator`` are a faster
DCGAN (transposed-conv up-sampling, strided-conv down-sampling) for 32/64/128 px;
architecture ``upsample`` is the same pair with nearest-neighbour resize + conv
up-sampling in G instead of transposed convs.

Every network takes ``n_classes``: 0 builds the unconditional model used for
per-class GANs; K ≥ 2 builds a conditional one — G concatenates a learned class
embedding to z, D adds a projection term ⟨embed(y), φ(x)⟩ (Miyato & Koyama 2018).

Images are N×1×S×S in [-1, 1]; discriminators return raw logits of shape (N,)
(the sigmoid lives inside the loss).
"""

from __future__ import annotations

import math

import torch
from torch import nn

PAPER_LEAK = 0.01  # the paper's LeakyReLU alpha
PAPER_WIDTH = 128


def _act(slope: float) -> nn.LeakyReLU:
    return nn.LeakyReLU(slope, inplace=True)


class Dropout(nn.Module):
    """Inverted dropout, the same distribution as ``nn.Dropout``, with a faster mask on the CPU.

    ``nn.Dropout`` draws its mask with ``bernoulli_``, which on the CPU costs ~50 ms
    for the paper D's 16×131,072 features — a sixth of a training step. A uniform
    draw compared with p gives the same Bernoulli(1 - p) keep-mask ~20× faster.
    Uses the global RNG, like ``nn.Dropout``.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"dropout probability must be in [0, 1), got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = torch.rand(x.shape, device=x.device) >= self.p
        return x * keep.to(x.dtype) * (1.0 / (1.0 - self.p))

    def extra_repr(self) -> str:
        return f"p={self.p}"


class _ClassInput(nn.Module):
    """Concatenate a learned class embedding to z (identity for unconditional G)."""

    def __init__(self, z_dim: int, n_classes: int, embed_dim: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(n_classes, embed_dim) if n_classes else None
        self.out_dim = z_dim + (embed_dim if n_classes else 0)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        if self.embed is None:
            return z
        if y is None:
            raise ValueError("a conditional generator needs class labels y")
        return torch.cat([z, self.embed(y)], dim=1)


class PaperGenerator(nn.Module):
    """z (100) → FC 128·16·16 → BN → LReLU → reshape → Conv5 → ConvT4/2 → 2×Conv5 → Conv5→1 → tanh.

    Unconditional, it has exactly 4,870,785 trainable parameters — the paper's figure.
    Keras' ``'same'`` padding for the 4×4 stride-2 transposed conv doubles the size:
    PyTorch padding=1 does the same.
    """

    def __init__(self, z_dim: int = 100, n_classes: int = 0, image_size: int = 32) -> None:
        super().__init__()
        if image_size != 32:
            raise ValueError("the paper's DCGAN generates 32×32 images; use the strided architecture for other sizes")
        self.z_dim, self.n_classes, self.image_size = z_dim, n_classes, image_size
        self.cond = _ClassInput(z_dim, n_classes, embed_dim=z_dim)
        w, s = PAPER_WIDTH, image_size // 2
        self.fc = nn.Sequential(nn.Linear(self.cond.out_dim, w * s * s), nn.BatchNorm1d(w * s * s), _act(PAPER_LEAK))
        self.body = nn.Sequential(
            nn.Unflatten(1, (w, s, s)),
            nn.Conv2d(w, w, 5, padding=2), nn.BatchNorm2d(w), _act(PAPER_LEAK),
            nn.ConvTranspose2d(w, w, 4, stride=2, padding=1), nn.BatchNorm2d(w), _act(PAPER_LEAK),
            nn.Conv2d(w, w, 5, padding=2), nn.BatchNorm2d(w), _act(PAPER_LEAK),
            nn.Conv2d(w, w, 5, padding=2), nn.BatchNorm2d(w), _act(PAPER_LEAK),
            nn.Conv2d(w, 1, 5, padding=2), nn.Tanh(),
        )  # fmt: skip

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.body(self.fc(self.cond(z, y)))


class PaperDiscriminator(nn.Module):
    """4 × [Conv3×3 stride 1, 128 + BN + LReLU(0.01)] → flatten → Dropout 0.4 → FC 1.

    These layers have 576,129 trainable parameters on 32×32×1 input. The paper
    states 791,169, which no reading of its listed layers gives (the difference,
    215,040, matches none of them): we build the layers as listed and report
    the true count rather than fake the paper's number.
    """

    def __init__(self, n_classes: int = 0, image_size: int = 32, dropout: float = 0.4) -> None:
        super().__init__()
        if image_size != 32:
            raise ValueError("the paper's DCGAN discriminates 32×32 images; use the strided architecture for other sizes")
        w = PAPER_WIDTH
        layers: list[nn.Module] = []
        for c_in in (1, w, w, w):
            layers += [nn.Conv2d(c_in, w, 3, padding=1), nn.BatchNorm2d(w), _act(PAPER_LEAK)]
        self.features = nn.Sequential(*layers, nn.Flatten())
        n_feat = w * image_size * image_size
        self.head = nn.Sequential(Dropout(dropout), nn.Linear(n_feat, 1))
        self.project = nn.Embedding(n_classes, n_feat) if n_classes else None
        if self.project is not None:
            nn.init.zeros_(self.project.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x)
        out = self.head(h).squeeze(1)
        if self.project is not None:
            out = out + (self.project(y) * h).sum(dim=1)
        return out


def _strided_channels(image_size: int, width: int) -> list[int]:
    """Channel widths from 4×4 up to ``image_size``: e.g. 32 px, width 64 → [256, 128, 64]."""
    if image_size not in (32, 64, 128, 256):
        raise ValueError(f"strided DCGAN supports 32/64/128/256 px, not {image_size}")
    n_up = int(math.log2(image_size // 4))
    return [min(width * 2 ** (n_up - 1 - k), 8 * width) for k in range(n_up)]


class StridedGenerator(nn.Module):
    """DCGAN generator: FC → 4×4 → [ConvT 4/2 + BN + LReLU] × log2(S/4) → Conv3 → tanh.

    With ``resize=True`` (architecture ``upsample``) each up-sampling block is instead a
    nearest-neighbour 2× resize followed by a 3×3 conv ("resize-convolution", Odena et al.
    2016): every output pixel gets the same number of kernel taps, so the transposed
    convolution's checkerboard pattern — excess power at the highest spatial frequencies,
    which a spectrum-based C2ST sees — cannot arise.
    """

    def __init__(self, z_dim: int = 100, n_classes: int = 0, image_size: int = 32, width: int = 64, resize: bool = False) -> None:
        super().__init__()
        self.z_dim, self.n_classes, self.image_size = z_dim, n_classes, image_size
        chans = _strided_channels(image_size, width)
        self.cond = _ClassInput(z_dim, n_classes, embed_dim=min(z_dim, 32))
        c0 = chans[0]
        self.fc = nn.Sequential(nn.Linear(self.cond.out_dim, c0 * 16), nn.BatchNorm1d(c0 * 16), _act(0.2))
        blocks: list[nn.Module] = [nn.Unflatten(1, (c0, 4, 4))]
        for c_in, c_out in zip(chans, chans[1:] + [chans[-1]]):
            if resize:
                up: list[nn.Module] = [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)]
            else:
                up = [nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False)]
            blocks += [*up, nn.BatchNorm2d(c_out), _act(0.2)]
        blocks += [nn.Conv2d(chans[-1], 1, 3, padding=1), nn.Tanh()]
        self.body = nn.Sequential(*blocks)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.body(self.fc(self.cond(z, y)))


class StridedDiscriminator(nn.Module):
    """DCGAN discriminator: [Conv 4/2 + LReLU(0.2)] down to 4×4 → FC 1 (+ projection).

    No batch norm, so gradient penalties (R1, WGAN-GP) are per-sample as they assume.
    """

    def __init__(self, n_classes: int = 0, image_size: int = 32, width: int = 64, dropout: float = 0.0) -> None:
        super().__init__()
        chans = list(reversed(_strided_channels(image_size, width)))
        layers: list[nn.Module] = [nn.Conv2d(1, chans[0], 4, stride=2, padding=1), _act(0.2)]
        for c_in, c_out in zip(chans, chans[1:]):
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), _act(0.2)]
        self.features = nn.Sequential(*layers)  # → chans[-1] × 4 × 4
        side = image_size // 2 ** len(chans)
        self.fc = nn.Sequential(nn.Flatten(), Dropout(dropout), nn.Linear(chans[-1] * side * side, 1))
        self.project = nn.Embedding(n_classes, chans[-1]) if n_classes else None
        if self.project is not None:
            nn.init.zeros_(self.project.weight)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x)
        out = self.fc(h).squeeze(1)
        if self.project is not None:
            out = out + (self.project(y) * h.sum(dim=(2, 3))).sum(dim=1)
        return out


def build_generator(architecture: str, *, z_dim: int, n_classes: int, image_size: int, width: int) -> nn.Module:
    """The generator of ``architecture`` (:data:`gan.config.ARCHITECTURES`)."""
    if architecture == "paper":
        return PaperGenerator(z_dim, n_classes, image_size)
    return StridedGenerator(z_dim, n_classes, image_size, width, resize=architecture == "upsample")


def build_discriminator(architecture: str, *, n_classes: int, image_size: int, width: int, dropout: float) -> nn.Module:
    """The discriminator of ``architecture`` (:data:`gan.config.ARCHITECTURES`; ``upsample`` uses the strided one)."""
    if architecture == "paper":
        return PaperDiscriminator(n_classes, image_size, dropout)
    return StridedDiscriminator(n_classes, image_size, width, dropout)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
