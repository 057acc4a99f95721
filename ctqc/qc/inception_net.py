"""torch-fidelity's Inception-v3 as ctqc runs it: the network, its BN-folded copy, the resize.

Shared by the exact fp32 path (:mod:`ctqc.qc.inception`) and the bf16 fast path
(:mod:`ctqc.qc.fast_inception`). torch-fidelity is imported inside functions:
importing it costs seconds (torchvision).
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import torch

FEATURE_EXTRACTOR = "inception-v3-compat"
FEATURE_DIM = 2048


@functools.lru_cache(maxsize=8)
def resize_matrix(n_in: int, n_out: int = 299) -> torch.Tensor:
    """The n_out × n_in matrix of torch-fidelity's TF-1.x bilinear resize along one axis.

    The resize is linear and separable, so resizing an image X is ``A @ X @ Aᵀ``: two small
    matrix products instead of the four gathers and blends per pixel of the reference
    implementation (a fifth of the bf16 extractor's time at 32 px). Obtained by resizing
    the identity with the reference function itself (width 1 → 1 is the identity).
    """
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    basis = torch.eye(n_in).reshape(n_in, 1, n_in, 1)
    out = interpolate_bilinear_2d_like_tensorflow1x(basis, size=(n_out, 1), align_corners=False)
    return out[:, 0, :, 0].T.contiguous()


# The layers after the first convolution, in forward order, up to the 2048-d pool.
INCEPTION_LAYERS = (
    "Conv2d_2a_3x3", "Conv2d_2b_3x3", "MaxPool_1", "Conv2d_3b_1x1", "Conv2d_4a_3x3", "MaxPool_2",
    "Mixed_5b", "Mixed_5c", "Mixed_5d", "Mixed_6a", "Mixed_6b", "Mixed_6c", "Mixed_6d", "Mixed_6e",
    "Mixed_7a", "Mixed_7b", "Mixed_7c", "AvgPool",
)  # fmt: skip


@functools.lru_cache(maxsize=1)
def _extractor(weights: Path) -> torch.nn.Module:
    """torch-fidelity's Inception with ``weights``, in eval mode, producing only the '2048' features."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    return FeatureExtractorInceptionV3(FEATURE_EXTRACTOR, [str(FEATURE_DIM)], feature_extractor_weights_path=str(weights))


@functools.lru_cache(maxsize=1)
def _folded_extractor(weights: Path) -> torch.nn.Module:
    """A copy of :func:`_extractor` with BN folded into conv weights/biases, in channels-last layout.

    Inference BN is affine per channel: y = (conv(x) - mean) * g / sqrt(var + eps) + beta, so
    scaling each conv filter by g / sqrt(var + eps) and adding the shifted beta as a bias is exact
    in real arithmetic (1e-6 in float32); it removes 94 memory-bound passes over the activations.
    """
    from torch_fidelity.feature_extractor_inceptionv3 import BasicConv2d

    model = copy.deepcopy(_extractor(weights))
    for block in model.modules():
        if isinstance(block, BasicConv2d):
            bn, conv = block.bn, block.conv
            scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
            conv.weight = torch.nn.Parameter(conv.weight.detach() * scale[:, None, None, None], requires_grad=False)
            conv.bias = torch.nn.Parameter((bn.bias - bn.running_mean * scale).detach(), requires_grad=False)
            block.bn = torch.nn.Identity()
    return model.to(memory_format=torch.channels_last).eval()
