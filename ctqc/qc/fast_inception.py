"""The FID Inception's bf16 fast path for oneDNN CPUs (``qc.metric_features=inception-bf16``).

The same function as torch-fidelity's ``FeatureExtractorInceptionV3`` up to its 2048-d pool
features in real arithmetic; bf16 rounding puts the features ~2-3 % (relative L2) from the
fp32 ones, no further than torch-fidelity's own forward under bf16 autocast (tested). Each
change below was measured on the 2-core AMX CPU, 32×32 inputs (``bench/RESULTS.md``):

1. The 32 → 299 resize is two matrix products (:func:`inception.resize_matrix`).
2. Batch norm is folded into the convolutions (:func:`inception._folded_extractor`).
3. Every conv + ReLU is one oneDNN primitive on bf16 channels-last tensors
   (``mkldnn._convolution_pointwise``, the op torch.compile's inductor emits for CPU
   convolutions): no separate ReLU pass over each activation, no per-call fp32 → bf16
   weight cast as under autocast.
4. Grey inputs (ctqc's CT images always are) run the first convolution on one channel with
   the three channels' filters summed (exact). The channel is padded to two with a zero
   filter: oneDNN returns a one-channel input's output in NCHW, and converting that to
   channels-last cost 4× the convolution itself.
5. The average pool before each ``branch_pool`` 1×1 convolution moves after it:
   ``relu(W·avgpool(x) + b) = relu(avgpool(W·x) + b)`` as both maps are linear and a
   count_include_pad=False average of a constant is that constant (so the bias stays in the
   convolution). The pool then runs on 32-192 channels instead of 192-1,280.
6. Max pools — all of ReLU outputs: the stem's follow a fused conv + ReLU, the Mixed blocks'
   take the block input, a concatenation of ReLU outputs — compare the bf16 values' int16 bit patterns, which
   order non-negative bf16 numbers exactly, separably with strided ``torch.maximum``: ~4×
   faster than torch's bf16 ``max_pool2d`` here, and bit-identical.

Together (``bench/inception_throughput.py``): 35.7 img/s against 26.7 for torch-fidelity's
forward under bf16 autocast (1.34×) and 6.9 in fp32 (5.2×). Blocks are rewritten with
torch.fx, so the architecture (branch order, concatenations) stays torch-fidelity's own
code. torch.compile reached ~34 img/s but compiles for 30-46 s per process, more than it
saves on a QC run.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import torch
import torch.fx
import torch.nn.functional as F
from torch import nn

from ctqc.qc import inception_net as inception

BATCH_SIZE = 16  # measured: 31.9 img/s vs 29.5 at 32 and 28.8 at 64 (smaller batches stay in cache)


def available() -> bool:
    """Whether this torch and CPU run oneDNN bf16 convolutions (AVX-512 / AMX); else use the autocast fallback."""
    return torch.backends.mkldnn.is_available() and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


@functools.lru_cache(maxsize=1)
def extractor(weights: Path) -> FusedInception:
    """The fast network for the weights file ``weights``, built once per process (check :func:`available` first)."""
    return FusedInception(inception._folded_extractor(weights)).eval()


def max_pool_nonneg(x: torch.Tensor, kernel_size: int, stride: int | None = None, padding: int = 0,
                    dilation: int = 1, ceil_mode: bool = False, return_indices: bool = False) -> torch.Tensor:  # fmt: skip
    """``F.max_pool2d`` of a bf16 tensor whose values are all ≥ +0 (or positive NaN), bit-identical and faster.

    Non-negative bf16 numbers order as their int16 bit patterns, so the maxima are taken on
    an int16 view, rows then columns; zero padding stands in for -inf, as no window is all
    padding and every value is ≥ 0. Takes ``F.max_pool2d``'s arguments so that it can replace
    a traced call; only the defaults of the last three are supported.
    """
    if dilation != 1 or ceil_mode or return_indices:
        raise ValueError("max_pool_nonneg supports dilation=1, ceil_mode=False, return_indices=False")
    if x.dtype != torch.bfloat16:
        raise ValueError(f"max_pool_nonneg takes bfloat16, got {x.dtype}")
    k, s = kernel_size, stride or kernel_size
    v = x.view(torch.int16)
    if padding:
        v = F.pad(v, (padding,) * 4)
    h_out, w_out = (v.shape[-2] - k) // s + 1, (v.shape[-1] - k) // s + 1
    rows = functools.reduce(torch.maximum, (v[:, :, i : i + s * (h_out - 1) + 1 : s] for i in range(k)))
    out = functools.reduce(torch.maximum, (rows[..., j : j + s * (w_out - 1) + 1 : s] for j in range(k)))
    return out.view(torch.bfloat16)


class ConvReLU(nn.Module):
    """``relu(conv(x) + b)`` of a BN-folded ``BasicConv2d`` as one bf16 oneDNN primitive.

    ``pooled=True`` takes the *un-pooled* input of a ``branch_pool`` and computes
    ``relu(avgpool3x3(conv(x)) + b)`` (change 5 of the module docstring).
    """

    def __init__(self, conv: nn.Conv2d, pooled: bool = False) -> None:
        super().__init__()
        if pooled and (conv.kernel_size, conv.stride, conv.padding, conv.groups) != ((1, 1), (1, 1), (0, 0), 1):
            raise ValueError("only a 1×1, stride-1, unpadded, ungrouped convolution commutes with the average pool")
        self.geometry = (list(conv.padding), list(conv.stride), list(conv.dilation), conv.groups)
        self.pooled = pooled
        self.register_buffer("weight", conv.weight.detach().to(torch.bfloat16).contiguous(memory_format=torch.channels_last))
        self.register_buffer("bias", conv.bias.detach().to(torch.bfloat16))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pointwise = torch.ops.mkldnn._convolution_pointwise
        if not self.pooled:
            return pointwise(x, self.weight, self.bias, *self.geometry, "relu", [], "")
        y = pointwise(x, self.weight, self.bias, *self.geometry, "none", [], "")
        return torch.relu_(F.avg_pool2d(y, kernel_size=3, stride=1, padding=1, count_include_pad=False))


class _MaxPool(nn.Module):
    def __init__(self, pool: nn.MaxPool2d) -> None:
        super().__init__()
        if pool.dilation != 1 or pool.ceil_mode:
            raise ValueError(f"unsupported max pool {pool}")
        self.kernel_size, self.stride, self.padding = pool.kernel_size, pool.stride, pool.padding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return max_pool_nonneg(x, self.kernel_size, self.stride, self.padding)


_TF_AVG_POOL = {"kernel_size": 3, "stride": 1, "padding": 1, "count_include_pad": False}


def rewrite_block(block: nn.Module) -> torch.fx.GraphModule:
    """A Mixed block of torch-fidelity's Inception with changes 3, 5 and 6 applied, via torch.fx."""
    from torch_fidelity.feature_extractor_inceptionv3 import BasicConv2d

    class Tracer(torch.fx.Tracer):  # keep each conv unit one node (call_module)
        def is_leaf_module(self, m: nn.Module, qualname: str) -> bool:
            return isinstance(m, BasicConv2d) or super().is_leaf_module(m, qualname)

    graph = Tracer().trace(block)
    pooled = set()
    for node in list(graph.nodes):
        if node.op != "call_function":
            continue
        if node.target is F.max_pool2d:
            if node.args[0].op != "placeholder":  # the block input: a concatenation of ReLU outputs, ≥ 0
                raise RuntimeError(f"max pool of a non-input in {type(block).__name__}: {node.format_node()}")
            node.target = max_pool_nonneg
        elif node.target is F.avg_pool2d:
            user = next(iter(node.users), None)
            if node.kwargs != _TF_AVG_POOL or len(node.users) != 1 or user.op != "call_module":
                raise RuntimeError(f"unexpected average pool in {type(block).__name__}: {node.format_node()}")
            pooled.add(user.target)
            user.replace_input_with(node, node.args[0])
            graph.erase_node(node)
    module = torch.fx.GraphModule(block, graph)
    for name, unit in list(module.named_children()):
        if isinstance(unit, BasicConv2d):
            setattr(module, name, ConvReLU(unit.conv, pooled=name in pooled))
    return module


class FusedInception(nn.Module):
    """N×3×H×W uint8 → N×2048 float32 Inception pool features, the fast way (module docstring)."""

    def __init__(self, folded: nn.Module) -> None:
        super().__init__()
        from torch_fidelity.feature_extractor_inceptionv3 import BasicConv2d

        self.size = folded.INPUT_IMAGE_SIZE
        stem = folded.Conv2d_1a_3x3.conv
        self.stem_rgb = ConvReLU(stem)
        grey = copy.deepcopy(stem)
        summed = stem.weight.detach().sum(dim=1, keepdim=True)
        grey.weight = nn.Parameter(torch.cat([summed, torch.zeros_like(summed)], dim=1), requires_grad=False)
        self.stem_grey = ConvReLU(grey)
        layers = []
        for name in inception.INCEPTION_LAYERS:
            layer = getattr(folded, name)
            if isinstance(layer, BasicConv2d):
                layers.append(ConvReLU(layer.conv))
            elif isinstance(layer, nn.MaxPool2d):
                layers.append(_MaxPool(layer))
            elif isinstance(layer, nn.AdaptiveAvgPool2d):
                layers.append(layer)
            else:
                layers.append(rewrite_block(layer))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        grey = bool((x[:, 1:] == x[:, :1]).all())
        x = (x[:, :1] if grey else x).float()
        a_h, a_w = inception.resize_matrix(x.shape[-2], self.size), inception.resize_matrix(x.shape[-1], self.size)
        x = torch.matmul(torch.matmul(a_h, x), a_w.T)  # fp32, as the reference resize
        x = ((x - 128) / 128).to(torch.bfloat16)
        if grey:  # N×H×W×2 with a zero second channel: a channels-last N×2×H×W tensor
            padded = x.new_zeros(x.shape[0], x.shape[2], x.shape[3], 2)
            padded[..., 0] = x[:, 0]
            x = self.stem_grey(padded.permute(0, 3, 1, 2))
        else:
            x = self.stem_rgb(x.contiguous(memory_format=torch.channels_last))
        return torch.flatten(self.layers(x), 1).float()
