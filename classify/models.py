"""ResNet classifiers for one-channel images (section 4.3 of the paper).

torchvision's ResNet-50 (or ResNet-18 for fast presets) with a one-channel
input, K outputs and Dropout before the final linear layer (the paper: 0.4).

Two stems:

- ``paper``: the standard ImageNet stem (7×7/2 conv + 3×3/2 max-pool), as the
  paper used it on 32×32 inputs (layer4 then works on 1×1 feature maps);
- ``cifar``: a 3×3 stride-1 first conv and no max-pool, the usual adaptation
  for 32×32 images (16× the compute of the paper stem at that size).

``pretrained=True`` loads torchvision's ImageNet weights from the local torch
hub cache only — nothing is ever downloaded — and raises
:class:`PretrainedWeightsMissing` naming the expected file when it is absent.
The first conv's RGB filters are summed into one channel (a gray image then
gives the activations the RGB model gives its gray-replicated version); the
final layer is new.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from ctqc.errors import UserError

ARCHS = ("resnet50", "resnet18")
STEMS = ("paper", "cifar")


class PretrainedWeightsMissing(UserError):
    """``pretrained=True`` but the ImageNet weights are not in the local torch hub cache."""


def _weights_enum(arch: str):
    from torchvision.models import ResNet18_Weights, ResNet50_Weights

    return {"resnet50": ResNet50_Weights.IMAGENET1K_V1, "resnet18": ResNet18_Weights.IMAGENET1K_V1}[arch]


def pretrained_weights_path(arch: str) -> Path:
    """Where torchvision keeps the ImageNet weights of ``arch`` once downloaded (``$TORCH_HOME/hub/checkpoints``)."""
    url = _weights_enum(arch).url
    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(url)


def build_classifier(
    arch: str = "resnet50",
    n_classes: int = 2,
    *,
    stem: str = "paper",
    dropout: float = 0.4,
    in_channels: int = 1,
    pretrained: bool = False,
) -> nn.Module:
    """A torchvision ResNet for ``in_channels``-channel images with ``n_classes`` logits.

    Input N×C×H×W (any H, W ≥ 32 for the paper stem); output N×K logits.
    """
    from torchvision import models

    if arch not in ARCHS:
        raise ValueError(f"unknown classifier arch {arch!r}; choose from {', '.join(ARCHS)}")
    if stem not in STEMS:
        raise ValueError(f"unknown stem {stem!r}; choose from {', '.join(STEMS)}")
    if n_classes < 2:
        raise ValueError("a classifier needs at least two classes")
    model = getattr(models, arch)(weights=None)  # never downloads
    if pretrained:
        _load_pretrained(model, arch)
    old = model.conv1
    if stem == "paper":
        conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
        if pretrained:  # sum the RGB filters into the new input channels
            with torch.no_grad():
                conv1.weight.copy_(old.weight.sum(dim=1, keepdim=True).repeat(1, in_channels, 1, 1) / in_channels)
    else:
        conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    model.conv1 = conv1
    features = model.fc.in_features
    model.fc = nn.Sequential(nn.Dropout(dropout), nn.Linear(features, n_classes))
    return model


def check_pretrained_available(arch: str) -> Path:
    """The cached ImageNet weights file of ``arch``; :class:`PretrainedWeightsMissing` when absent."""
    path = pretrained_weights_path(arch)
    if not path.is_file():
        raise PretrainedWeightsMissing(
            f"classifier.pretrained=true needs the ImageNet weights of {arch} at {path}, which is missing; "
            f"ctqc never downloads: copy {path.name} there (or set TORCH_HOME), or set classifier.pretrained=false"
        )
    return path


def _load_pretrained(model: nn.Module, arch: str) -> None:
    path = check_pretrained_available(arch)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        model.load_state_dict(state)
    except Exception as exc:  # corrupt file, wrong architecture
        raise PretrainedWeightsMissing(f"{path}: not loadable as {arch} ImageNet weights ({exc.__class__.__name__}); delete it or set classifier.pretrained=false") from None


class MatmulConv2d(nn.Conv2d):
    """An ``nn.Conv2d`` that runs as one matrix multiplication where that is cheaper on a CPU.

    Same parameters and state-dict keys as ``nn.Conv2d``, same math (up to
    floating-point summation order); only the kernel that computes it differs:

    - 1×1 kernels without padding (any stride): a linear map over channels
      (a view of a channels_last input, no copy);
    - 'same'-padded kernels on a 1×1 input: only the centre tap meets data, so
      a linear map with the centre weights (the rest get zero gradient, as in a conv);
    - other kernels on maps of at most ``max_pixels`` pixels: unfold + one matmul.

    The paper stem on 32×32 images shrinks maps to 8×8 … 1×1, where oneDNN's
    convolution kernels — the weight gradients above all — run far below the
    CPU's matmul speed (bench/classifier_throughput.py).
    """

    max_pixels = 16

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.groups != 1 or self.dilation != (1, 1) or self.padding_mode != "zeros" or isinstance(self.padding, str):
            return super().forward(x)
        (kh, kw), (sh, sw), (ph, pw) = self.kernel_size, self.stride, self.padding
        n, c, h, w = x.shape
        if (kh, kw) == (1, 1) and (ph, pw) == (0, 0):
            if (sh, sw) != (1, 1):
                x = x[:, :, ::sh, ::sw]
                h, w = x.shape[-2:]
            y = F.linear(x.permute(0, 2, 3, 1).reshape(-1, c), self.weight.view(self.out_channels, c), self.bias)
            return y.view(n, h, w, -1).permute(0, 3, 1, 2)
        if (h, w) == (1, 1) and (ph, pw) == (kh // 2, kw // 2):
            y = F.linear(x.reshape(n, c), self.weight[:, :, kh // 2, kw // 2], self.bias)
            return y.view(n, -1, 1, 1)
        if h * w <= self.max_pixels:
            oh, ow = (h + 2 * ph - kh) // sh + 1, (w + 2 * pw - kw) // sw + 1
            cols = F.unfold(x, (kh, kw), padding=(ph, pw), stride=(sh, sw))  # n × c·kh·kw × oh·ow
            y = F.linear(cols.transpose(1, 2), self.weight.flatten(1), self.bias)  # n × oh·ow × out
            return y.transpose(1, 2).reshape(n, -1, oh, ow)
        return super().forward(x)


def use_matmul_convs(model: nn.Module) -> nn.Module:
    """Swap every plain ``nn.Conv2d`` in ``model`` for a :class:`MatmulConv2d` sharing its parameters (in place)."""
    for name, child in model.named_children():
        if type(child) is nn.Conv2d:
            conv = MatmulConv2d(
                child.in_channels, child.out_channels, child.kernel_size, child.stride, child.padding,
                child.dilation, child.groups, child.bias is not None, child.padding_mode,
                device=child.weight.device, dtype=child.weight.dtype,
            )  # fmt: skip
            conv.weight = child.weight
            conv.bias = child.bias
            setattr(model, name, conv)
        else:
            use_matmul_convs(child)
    return model


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
