"""Screen network variants of the default GAN that ctqc does not build: bench/gan_screen.py with other G / D / lrs.

Each variant swaps what ``gan.trainer`` builds (its ``build_generator`` /
``build_discriminator`` / ``adam``) for the screen's process only, then runs
:func:`gan_screen.main` unchanged (one class of fold 0, ctqc's trainer, the frozen C2ST
at late epochs). The variants of the fourth round in bench/RESULTS.md ("Issue 17 item 4,
fourth round"); all on the default preset's resize-convolution G (width 32):

- ``skip-g``: StyleGAN2's output skips (Karras et al. 2020, "Analyzing and improving the
  image quality of StyleGAN", fig. 7b): a to-image convolution at every scale, the image
  summed up through bilinear 2× up-sampling, tanh at the end;
- ``extra-conv-32``: one more conv + BN + LReLU at 32 × 32 (capacity at full resolution);
- ``pixelnorm-g``: ProGAN's pixel-wise feature normalisation instead of G's BatchNorm
  (Karras et al. 2018, section 4.2);
- ``noise-all`` / ``noise-out``: StyleGAN's per-pixel noise inputs (Karras et al. 2019,
  section 3.2; per-channel weights initialised to 0) after every G convolution, or on the
  output before tanh;
- ``stem-d``: a stride-1 3 × 3 conv at full resolution before the strided D;
- ``d-lr-x2`` / ``d-lr-x4``: D's Adam learning rate ×2 / ×4, G's unchanged (TTUR,
  Heusel et al. 2017).

    python bench/gan_variants.py --variant skip-g --seed 1 --cls 1     # then gan_screen.py's options

With ``--variant none`` the script is gan_screen.py itself (the control). The variants apply to
the default preset's networks only (``gan.architecture=upsample``, per-class GANs): another
architecture, a conditional GAN, or ``--lr-decay`` with an lr variant is refused in one line.
A G variant builds a to-image convolution at every scale even where it does not use one, so
that its weights draw the same random numbers as the screens recorded in bench/RESULTS.md;
its G and D therefore start from other draws than the control's (a start-point effect in
every comparison besides the change itself).
"""

from __future__ import annotations

import argparse
import sys

import torch
import torch.nn.functional as F
from torch import nn

from gan import networks, trainer
from gan.networks import Dropout, _act, _strided_channels


class PixelNorm(nn.Module):
    """x / sqrt(mean over channels of x² + 1e-8), per pixel (ProGAN)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class NoiseInput(nn.Module):
    """x + w_c · n with n ~ N(0, 1) per pixel, shared by the channels; w per channel, initialised to 0 (StyleGAN)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = torch.randn(x.shape[0], 1, x.shape[2], x.shape[3], device=x.device, dtype=x.dtype)
        return x + self.weight * n


class VariantGenerator(nn.Module):
    """The default resize-convolution G (``StridedGenerator(resize=True)``) with the variant's changes; N×z_dim → N×1×S×S in [-1, 1]."""

    def __init__(self, variant: str, z_dim: int, image_size: int, width: int) -> None:
        super().__init__()
        if variant not in ("none", *G_VARIANTS):
            raise ValueError(f"unknown generator variant {variant!r}; choose one of none, {', '.join(G_VARIANTS)}")
        self.z_dim, self.n_classes, self.image_size = z_dim, 0, image_size
        chans = _strided_channels(image_size, width)
        pixel = variant == "pixelnorm-g"
        c0 = chans[0]
        if pixel:
            self.fc = nn.Sequential(nn.Linear(z_dim, c0 * 16), nn.Unflatten(1, (c0, 4, 4)), PixelNorm(), _act(0.2))
        else:
            self.fc = nn.Sequential(nn.Linear(z_dim, c0 * 16), nn.BatchNorm1d(c0 * 16), _act(0.2), nn.Unflatten(1, (c0, 4, 4)))
        self.blocks, self.to_image = nn.ModuleList(), nn.ModuleList()
        last = len(chans) - 1
        for i, (c_in, c_out) in enumerate(zip(chans, chans[1:] + [chans[-1]])):
            noise = [NoiseInput(c_out)] if variant == "noise-all" else []
            norm = PixelNorm() if pixel else nn.BatchNorm2d(c_out)
            layers = [nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, padding=1, bias=pixel), *noise, norm, _act(0.2)]
            if i == last and variant == "extra-conv-32":
                layers += [nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), _act(0.2)]
            self.blocks.append(nn.Sequential(*layers))
            # a to-image conv at every scale for every variant (unused below 32 px without skips), so that each
            # variant's weights draw the same random numbers as the screens recorded in bench/RESULTS.md (which
            # also means they start from other draws than the control: see the module docstring)
            self.to_image.append(nn.Conv2d(c_out, 1, 3, padding=1) if i == last else nn.Conv2d(c_out, 1, 1))
        self.skip = variant == "skip-g"
        self.out_noise = NoiseInput(1) if variant == "noise-out" else nn.Identity()

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.fc(z)
        image = None
        for i, block in enumerate(self.blocks):
            h = block(h)
            if self.skip or i == len(self.blocks) - 1:  # without skips only the 32-px to-image conv
                out = self.to_image[i](h)
                image = out if image is None else F.interpolate(image, scale_factor=2, mode="bilinear", align_corners=False) + out
        return torch.tanh(self.out_noise(image))


class StemDiscriminator(nn.Module):
    """The strided D (``StridedDiscriminator``, unconditional) behind a stride-1 3 × 3 conv (1 → width/2 channels) + LReLU at full resolution."""

    def __init__(self, image_size: int, width: int, dropout: float) -> None:
        super().__init__()
        chans = list(reversed(_strided_channels(image_size, width)))
        layers: list[nn.Module] = [nn.Conv2d(1, chans[0] // 2, 3, padding=1), _act(0.2), nn.Conv2d(chans[0] // 2, chans[0], 4, stride=2, padding=1), _act(0.2)]
        for c_in, c_out in zip(chans, chans[1:]):
            layers += [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1), _act(0.2)]
        self.features = nn.Sequential(*layers)
        side = image_size // 2 ** len(chans)
        self.fc = nn.Sequential(nn.Flatten(), Dropout(dropout), nn.Linear(chans[-1] * side * side, 1))

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.fc(self.features(x)).squeeze(1)


G_VARIANTS = ("skip-g", "extra-conv-32", "pixelnorm-g", "noise-all", "noise-out")
D_VARIANTS = ("stem-d",)
LR_VARIANTS = {"d-lr-x2": 2.0, "d-lr-x4": 4.0}
VARIANTS = ("none", *G_VARIANTS, *D_VARIANTS, *LR_VARIANTS)


def _refuse(message: str) -> None:
    """Bad input: one line on stderr, exit status 2."""
    print(f"gan_variants.py: {message}", file=sys.stderr)
    raise SystemExit(2)


def _default_networks_only(architecture: str, n_classes: int) -> None:
    if architecture != "upsample" or n_classes:
        kind = f"{architecture}, conditional" if n_classes else architecture
        _refuse(f"the variants change the default preset's per-class networks (gan.architecture=upsample, gan.mode=per_class), not {kind}")


def install(variant: str) -> None:
    """Make ``gan.trainer`` (and ``gan.networks``, which gan_screen loads checkpoints with) build ``variant``; this process only.

    Raises ValueError for an unknown variant; the installed builders exit (one line) for another architecture or a conditional GAN.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; choose one of {', '.join(VARIANTS)}")
    if variant in G_VARIANTS:

        def build_generator(architecture, *, z_dim, n_classes, image_size, width):
            _default_networks_only(architecture, n_classes)
            return VariantGenerator(variant, z_dim, image_size, width)

        networks.build_generator = trainer.build_generator = build_generator
    if variant in D_VARIANTS:

        def build_discriminator(architecture, *, n_classes, image_size, width, dropout):
            _default_networks_only(architecture, n_classes)
            return StemDiscriminator(image_size, width, dropout)

        trainer.build_discriminator = build_discriminator
    if variant in LR_VARIANTS:
        plain, built = trainer.adam, [0]

        def adam(params, cfg):  # train_gan builds G's Adam, then D's, on every (resumed) call
            built[0] += 1
            scale = LR_VARIANTS[variant] if built[0] % 2 == 0 else 1.0
            return plain(params, cfg.model_copy(update={"lr": cfg.lr * scale}))

        trainer.adam = adam


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], add_help=False, epilog="Every other option is gan_screen.py's (python bench/gan_screen.py --help).")
    parser.add_argument("--variant", choices=VARIANTS, required="-h" not in sys.argv and "--help" not in sys.argv)
    parser.add_argument("-h", "--help", action="help", help="show this help and exit")
    args, rest = parser.parse_known_args()
    if args.variant in LR_VARIANTS and any(a.startswith("--lr-decay") for a in rest):
        _refuse("--lr-decay sets every Adam's learning rate itself, so it would undo an lr variant; use one or the other")
    install(args.variant)
    print(f"variant: {args.variant}", flush=True)
    import gan_screen

    sys.argv = [sys.argv[0], *rest]
    gan_screen.main(label=args.variant)


if __name__ == "__main__":
    main()
