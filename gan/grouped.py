"""K generators (or discriminators) of one architecture as one network: grouped layers.

Each parameter and buffer of a grouped network is the stack of the K per-model
tensors, shape (K, *per-model shape), under the per-model state-dict key, so
:meth:`Grouped.load_stacked` / :meth:`Grouped.unstacked` convert exactly (no
arithmetic) between one grouped network and K ordinary ``gan.networks`` models.

Layouts, model k owning its own slice and no layer mixing two slices:

- images: (B, K·C, H, W), model k's channels at [k·C, (k+1)·C);
- flat features: (B, K, F).

Layers: ``Conv2d`` / ``ConvTranspose2d`` run as one convolution with ``groups=K``;
``Linear`` as one batched matrix product (``baddbmm``); ``Embedding`` as one
gather; ``BatchNorm1d/2d`` as one batch norm over K·C channels — per-channel
batch statistics and running statistics are per-model ones; ``Dropout`` draws
each model's mask from that model's own generator (:meth:`GroupedDiscriminator.set_dropout_generators`).

Supported: ``PaperGenerator`` / ``PaperDiscriminator`` and ``StridedGenerator`` /
``StridedDiscriminator``, unconditional or conditional. Anything else raises
:class:`ctqc.errors.UserError` naming the layer.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from ctqc.errors import UserError
from gan.config import ARCHITECTURES
from gan.networks import Dropout, PaperDiscriminator, PaperGenerator, StridedDiscriminator, StridedGenerator

GROUPED_ARCHITECTURES = ARCHITECTURES  # each has a grouped form (tests/test_gan_batched.py runs every one); drop a new one here until it has
_ELEMENTWISE = (nn.LeakyReLU, nn.ReLU, nn.Tanh, nn.Identity)  # per element: the same on K·C channels as on C


class _Stacked(nn.Module):
    """A layer whose tensors are registered as (K, *per-model shape) stacks."""

    def __init__(self, k: int, template: nn.Module) -> None:
        super().__init__()
        self.k = k
        for name, p in template._parameters.items():  # None entries too (e.g. bias=False)
            self.register_parameter(name, None if p is None else nn.Parameter(p.detach().new_empty((k, *p.shape))))
        for name, b in template._buffers.items():
            self.register_buffer(name, None if b is None else b.new_zeros((k, *b.shape)))


class GroupedLinear(_Stacked):
    """(B, K, in) → (B, K, out): one ``baddbmm`` over the K weight matrices."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xt = x.transpose(0, 1)  # (K, B, in)
        w = self.weight.transpose(1, 2)  # (K, in, out)
        y = torch.bmm(xt, w) if self.bias is None else torch.baddbmm(self.bias.unsqueeze(1), xt, w)
        return y.transpose(0, 1)


class GroupedConv2d(_Stacked):
    """(B, K·Cin, H, W) → (B, K·Cout, H', W'): one convolution with ``groups=K``."""

    def __init__(self, k: int, template: nn.Conv2d) -> None:
        super().__init__(k, template)
        self.stride, self.padding, self.dilation = template.stride, template.padding, template.dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.flatten()
        return F.conv2d(x, self.weight.flatten(0, 1), bias, self.stride, self.padding, self.dilation, groups=self.k)


class GroupedConvTranspose2d(_Stacked):
    """(B, K·Cin, H, W) → (B, K·Cout, H', W'): one transposed convolution with ``groups=K``."""

    def __init__(self, k: int, template: nn.ConvTranspose2d) -> None:
        super().__init__(k, template)
        self.stride, self.padding, self.output_padding, self.dilation = template.stride, template.padding, template.output_padding, template.dilation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        bias = None if self.bias is None else self.bias.flatten()
        return F.conv_transpose2d(x, self.weight.flatten(0, 1), bias, self.stride, self.padding, self.output_padding, self.k, self.dilation)


class GroupedBatchNorm(_Stacked):
    """Batch norm over K·C channels of (B, K, C) or (B, K·C, H, W): statistics stay per model."""

    def __init__(self, k: int, template: nn.modules.batchnorm._BatchNorm) -> None:
        super().__init__(k, template)
        self.eps, self.momentum = template.eps, template.momentum

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            self.num_batches_tracked.add_(1)
        flat = x.dim() == 3
        x2 = x.reshape(x.shape[0], -1) if flat else x
        out = F.batch_norm(x2, self.running_mean.view(-1), self.running_var.view(-1), self.weight.view(-1), self.bias.view(-1), self.training, self.momentum, self.eps)
        return out.view(x.shape) if flat else out


class GroupedEmbedding(_Stacked):
    """Class indices (B, K) → (B, K, dim): model k looks up its own table."""

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        return self.weight[torch.arange(self.k, device=y.device).unsqueeze(0), y]


class GroupedDropout(nn.Module):
    """``gan.networks.Dropout`` on (B, K, F), model k's mask drawn from ``generators[k]`` as (B, F)."""

    def __init__(self, template: Dropout) -> None:
        super().__init__()
        self.p = template.p
        self.generators: list[torch.Generator] | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.generators is None or len(self.generators) != x.shape[1]:
            raise RuntimeError("GroupedDropout needs one generator per model (set_dropout_generators)")
        shape = (x.shape[0], x.shape[2])
        keep = torch.stack([torch.rand(shape, device=x.device, generator=g) for g in self.generators], dim=1) >= self.p
        return x * keep.to(x.dtype) * (1.0 / (1.0 - self.p))


class GroupedUnflatten(nn.Module):
    """(B, K, C·H·W) → (B, K·C, H, W) in ``memory_format``."""

    def __init__(self, template: nn.Unflatten, memory_format: torch.memory_format) -> None:
        super().__init__()
        if template.dim != 1 or len(template.unflattened_size) != 3:
            raise UserError(f"gan.train_together cannot group {template!r}")
        self.shape, self.memory_format = tuple(template.unflattened_size), memory_format

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c, h, w = self.shape
        return x.reshape(x.shape[0], x.shape[1] * c, h, w).contiguous(memory_format=self.memory_format)


class GroupedFlatten(nn.Module):
    """(B, K·C, H, W) → (B, K, C·H·W)."""

    def __init__(self, k: int) -> None:
        super().__init__()
        self.k = k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], self.k, -1)


def group_layer(k: int, layer: nn.Module, memory_format: torch.memory_format = torch.contiguous_format) -> nn.Module:
    """The grouped counterpart of one per-model layer (uninitialised: load weights with ``load_stacked``)."""
    if isinstance(layer, nn.Sequential):
        return nn.Sequential(*(group_layer(k, child, memory_format) for child in layer))
    if isinstance(layer, nn.Linear):
        return GroupedLinear(k, layer)
    if isinstance(layer, nn.Conv2d) and layer.groups == 1 and layer.padding_mode == "zeros" and not isinstance(layer.padding, str):
        return GroupedConv2d(k, layer)
    if isinstance(layer, nn.ConvTranspose2d) and layer.groups == 1 and layer.padding_mode == "zeros":
        return GroupedConvTranspose2d(k, layer)
    if isinstance(layer, (nn.BatchNorm1d, nn.BatchNorm2d)) and layer.affine and layer.track_running_stats and layer.momentum is not None:
        return GroupedBatchNorm(k, layer)
    if isinstance(layer, nn.Embedding) and layer.max_norm is None:
        return GroupedEmbedding(k, layer)
    if isinstance(layer, Dropout):
        return GroupedDropout(layer)
    if isinstance(layer, nn.Unflatten):
        return GroupedUnflatten(layer, memory_format)
    if isinstance(layer, nn.Flatten) and layer.start_dim == 1 and layer.end_dim == -1:
        return GroupedFlatten(k)
    if isinstance(layer, _ELEMENTWISE) or (isinstance(layer, nn.Upsample) and layer.mode == "nearest"):
        return copy.deepcopy(layer)  # a nearest-neighbour resize works channel by channel: K·C channels as well as C
    raise UserError(f"gan.train_together cannot group the layer {layer!r}; unset gan.train_together")


class Grouped(nn.Module):
    """Conversion between a grouped network and K per-model state dicts (exact copies)."""

    k: int

    def load_stacked(self, states: list[dict[str, torch.Tensor]]) -> None:
        """Load K per-model state dicts (the same keys as this network's), model k into slice k."""
        if len(states) != self.k:
            raise ValueError(f"expected {self.k} state dicts, got {len(states)}")
        own = self.state_dict()
        self.load_state_dict({key: torch.stack([s[key] for s in states]).to(own[key].device) for key in own})

    def unstacked(self, k: int) -> dict[str, torch.Tensor]:
        """Model k's state dict, on the CPU (loads into the per-model network)."""
        return {key: value[k].detach().cpu().clone() for key, value in self.state_dict().items()}

    def set_dropout_generators(self, generators: list[torch.Generator]) -> None:
        for module in self.modules():
            if isinstance(module, GroupedDropout):
                module.generators = list(generators)


def unsupported(what: str) -> UserError:
    """The one-line refusal of an architecture (or network) that cannot be trained together."""
    return UserError(f"gan.train_together supports gan.architecture {', '.join(GROUPED_ARCHITECTURES)}, not {what}; unset gan.train_together")


def _check_supported(template: nn.Module, kinds: tuple[type, ...]) -> None:
    if not isinstance(template, kinds):
        raise unsupported(type(template).__name__)


class GroupedGenerator(Grouped):
    """K generators: z (B, K, z_dim) and labels (B, K) or None → images (B, K, S, S)."""

    def __init__(self, k: int, template: nn.Module, memory_format: torch.memory_format = torch.contiguous_format) -> None:
        super().__init__()
        _check_supported(template, (PaperGenerator, StridedGenerator))
        self.k, self.z_dim, self.n_classes, self.image_size = k, template.z_dim, template.n_classes, template.image_size
        self.cond = nn.Module()
        self.cond.embed = None if template.cond.embed is None else GroupedEmbedding(k, template.cond.embed)
        self.fc = group_layer(k, template.fc, memory_format)
        self.body = group_layer(k, template.body, memory_format)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        if self.cond.embed is not None:
            if y is None:
                raise ValueError("a conditional generator needs class labels y")
            z = torch.cat([z, self.cond.embed(y)], dim=2)
        return self.body(self.fc(z))


class GroupedDiscriminator(Grouped):
    """K discriminators: images (B, K, S, S) and labels (B, K) or None → logits (B, K)."""

    def __init__(self, k: int, template: nn.Module, memory_format: torch.memory_format = torch.contiguous_format) -> None:
        super().__init__()
        _check_supported(template, (PaperDiscriminator, StridedDiscriminator))
        self.k = k
        self.features = group_layer(k, template.features, memory_format)
        self.paper = isinstance(template, PaperDiscriminator)
        if self.paper:
            self.head = group_layer(k, template.head, memory_format)
        else:
            self.fc = group_layer(k, template.fc, memory_format)
        self.project = None if template.project is None else GroupedEmbedding(k, template.project)

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x)
        if self.paper:  # h: (B, K, F) after the features' Flatten
            out, pooled = self.head(h).squeeze(-1), h
        else:  # h: (B, K·C, s, s)
            out, pooled = self.fc(h).squeeze(-1), h.sum(dim=(2, 3)).view(h.shape[0], self.k, -1)
        if self.project is not None:
            out = out + (self.project(y) * pooled).sum(dim=-1)
        return out
