"""Pretrained extractors from local weight files (ctqc.qc.extractors): self-made files of each format, nothing downloaded.

Each test writes its own weights: randomly initialised networks of the published architecture's
family and *file format* (DINOv2's key layout with ``mask_token`` and a 37×37 position grid, SwAV's
``module.`` prefixes with projection head and prototypes, CLIP's TorchScript), at reduced width and
depth. The extractors' builders are swapped for the same reduced architecture (``SPECS``), so
everything but the network size is what a real file goes through.
"""

from __future__ import annotations

import dataclasses
import warnings

import pytest
import torch

from ctqc.errors import UserError
from ctqc.qc import extractors, features
from ctqc.qc.pixels import IMAGENET_MEAN, IMAGENET_STD, to_normalised_rgb

WIDTH = 32  # embedding width of the tiny ViTs


def _tiny_vit(img_size: int = 224) -> torch.nn.Module:
    import timm

    return timm.create_model("vit_small_patch14_dinov2", pretrained=False, num_classes=0, img_size=img_size, embed_dim=WIDTH, depth=1, num_heads=2)


def _tiny_resnet() -> torch.nn.Module:
    from torchvision.models.resnet import Bottleneck, ResNet

    return ResNet(Bottleneck, [1, 1, 1, 1], width_per_group=8)


@pytest.fixture(autouse=True)
def tiny_architectures(monkeypatch):
    import torch_fidelity.feature_extractor_clip as fidelity_clip

    def no_download(*args, **kwargs):
        raise AssertionError("torch-fidelity tried to download CLIP weights")

    monkeypatch.setattr(fidelity_clip, "load_state_dict_from_url", no_download)
    specs = dict(extractors.SPECS)
    specs["dinov2-vits14"] = dataclasses.replace(specs["dinov2-vits14"], build=_tiny_vit)
    specs["dinov2-vitb14"] = dataclasses.replace(specs["dinov2-vitb14"], build=_tiny_vit)
    specs["swav-resnet50"] = dataclasses.replace(specs["swav-resnet50"], build=_tiny_resnet)
    monkeypatch.setattr(extractors, "SPECS", specs)


@pytest.fixture
def dinov2_file(tmp_path):
    """A DINOv2-format state dict: Meta's layout (518-px, 37×37 position grid, ``mask_token``), random weights."""
    torch.manual_seed(0)
    state = _tiny_vit(img_size=518).state_dict()
    state["mask_token"] = torch.zeros(1, WIDTH)
    path = tmp_path / "dinov2_vits14_pretrain.pth"
    torch.save(state, path)
    return path


@pytest.fixture
def swav_file(tmp_path):
    """A SwAV-format state dict: ``module.`` prefixes, no ``fc``, a projection head and prototypes."""
    torch.manual_seed(1)
    state = {f"module.{k}": v for k, v in _tiny_resnet().state_dict().items() if not k.startswith("fc.")}
    state["module.projection_head.0.weight"] = torch.randn(16, 2048)
    state["module.prototypes.weight"] = torch.randn(30, 16)
    path = tmp_path / "swav_800ep_pretrain.pth.tar"
    torch.save(state, path)
    return path


@pytest.fixture
def clip_file(tmp_path):
    """A CLIP-format TorchScript file: OpenAI's visual ViT (32 px, patch 8, width 64, one layer) plus a text projection."""
    from torch_fidelity.feature_extractor_clip import VisionTransformer

    class TinyClip(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.visual = VisionTransformer(input_resolution=32, patch_size=8, width=64, layers=1, heads=1, output_dim=16)
            self.text_projection = torch.nn.Parameter(torch.randn(64, 16))

        def forward(self, x):
            return self.visual(x)

    torch.manual_seed(2)
    path = tmp_path / "ViT-B-32.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the tracer's notes on Python values in the graph
        torch.jit.trace(TinyClip().eval(), torch.randn(1, 3, 32, 32)).save(str(path))
    return path


def _images(n: int = 5, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(n, 1, size, size, generator=torch.Generator().manual_seed(seed)) * 2 - 1


def test_grey_to_rgb_boundary_maps_minus_one_to_one_onto_imagenet_normalised_channels():
    grey = torch.tensor([-1.0, 0.0, 1.0]).view(3, 1, 1, 1).expand(3, 1, 4, 4)
    rgb = to_normalised_rgb(grey, 8, IMAGENET_MEAN, IMAGENET_STD)
    assert rgb.shape == (3, 3, 8, 8) and rgb.dtype == torch.float32
    for i, value in enumerate((0.0, 0.5, 1.0)):  # [-1, 1] → [0, 1], the same value in R, G and B before normalising
        expected = (torch.tensor([value] * 3) - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
        torch.testing.assert_close(rgb[i, :, 3, 3], expected)
    with pytest.raises(ValueError):
        to_normalised_rgb(torch.zeros(2, 3, 4, 4), 8, IMAGENET_MEAN, IMAGENET_STD)


@pytest.mark.parametrize("name", ["dinov2-vits14", "dinov2-vitb14"])
def test_dinov2_file_loads_through_timms_conversion_and_gives_the_cls_token(dinov2_file, name):
    images = _images()
    out = extractors.pretrained_features(images, name, dinov2_file)
    assert out.shape == (5, WIDTH) and out.dtype == "float64"
    model = extractors.load(name, dinov2_file)
    saved = torch.load(dinov2_file)
    torch.testing.assert_close(model.state_dict()["blocks.0.attn.qkv.weight"], saved["blocks.0.attn.qkv.weight"])
    assert model.pos_embed.shape == (1, 1 + 16 * 16, WIDTH)  # 37×37 grid resampled to 224 px
    with torch.inference_mode():  # the same as feeding the network the normalised RGB by hand
        expected = model(to_normalised_rgb(images, 224, IMAGENET_MEAN, IMAGENET_STD)).double().numpy()
    assert abs(out - expected).max() < 1e-5


def test_swav_file_drops_prefixes_head_and_prototypes_and_gives_2048_pooled_features(swav_file):
    out = extractors.pretrained_features(_images(3), "swav-resnet50", swav_file)
    assert out.shape == (3, 2048)
    assert (out >= 0).all()  # the pooled output of ReLUs
    model = extractors.load("swav-resnet50", swav_file)
    torch.testing.assert_close(model.state_dict()["conv1.weight"], torch.load(swav_file)["module.conv1.weight"])


@pytest.mark.parametrize("name", ["clip-vit-b-32", "clip-vit-l-14-336px"])
def test_clip_torchscript_loads_through_torch_fidelity(clip_file, name):
    out = extractors.pretrained_features(_images(4), name, clip_file)
    assert out.shape == (4, 16)
    model = extractors.load(name, clip_file)
    assert model.resolution == 32  # torch-fidelity reads the input size from the file (224 / 336 px for the real ones)
    with torch.inference_mode():  # the uint8 boundary: [-1, 1] → 0..255 grey in R, G and B, then CLIP's own normalisation
        expected = model(((_images(4) + 1) * 127.5).round().to(torch.uint8).expand(-1, 3, -1, -1))[0].double().numpy()
    assert abs(out - expected).max() < 1e-6


@pytest.mark.parametrize("name", ["dinov2-vits14", "swav-resnet50", "clip-vit-b-32"])
def test_a_wrong_file_is_refused_with_one_line_naming_the_key_and_format(name, tmp_path, swav_file, dinov2_file):
    garbage = tmp_path / "garbage.bin"
    garbage.write_bytes(b"not weights at all")
    wrong = dinov2_file if name == "swav-resnet50" else swav_file  # a real state dict of another network
    for path in (garbage, wrong, tmp_path / "missing.pth"):
        with pytest.raises(UserError) as info:
            extractors.pretrained_features(_images(2), name, path)
        message = str(info.value)
        assert "\n" not in message and message.startswith(f"qc.weights.{name}: ")
        assert extractors.PRETRAINED_WEIGHTS[name].split()[-1] in message or "TorchScript" in message


def test_features_are_cached_per_image_and_per_weights_file(dinov2_file, tmp_path, monkeypatch):
    calls = []
    real = extractors.pretrained_features
    monkeypatch.setattr(extractors, "pretrained_features", lambda images, **kw: calls.append(len(images)) or real(images, **kw))
    cache, weights = tmp_path / "cache", {"dinov2-vits14": dinov2_file}
    first = features.extract("dinov2-vits14", _images(4), cache, weights=weights)
    subset = features.extract("dinov2-vits14", _images(4)[:2], cache, weights=weights)
    assert calls == [4] and (subset == first[:2]).all()
    other = tmp_path / "other.pth"
    state = torch.load(dinov2_file)
    state["norm.bias"] = state["norm.bias"] + 1
    torch.save(state, other)
    moved = features.extract("dinov2-vits14", _images(4), cache, weights={"dinov2-vits14": other})
    assert calls == [4, 4] and not (moved == first).all()  # other weights: their own cache file
    assert len(list(cache.glob("dinov2-vits14-*.npz"))) == 2
    with pytest.raises(UserError, match="qc.weights.dinov2-vits14"):
        features.extract("dinov2-vits14", _images(2), cache, weights={})


def test_cli_refuses_a_missing_weights_file_in_one_line_with_exit_2(tmp_path, phantom_folder):
    from tests.test_cli import ctqc

    missing = tmp_path / "dinov2_vits14_pretrain.pth"
    result = ctqc("data", "inspect", "--data", phantom_folder, "--set", "qc.metric_features=[inception, dinov2-vits14]", "--set", f"qc.weights.dinov2-vits14={missing}", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == f"error: --set: qc.weights.dinov2-vits14: file not found: {missing}; expected {extractors.PRETRAINED_WEIGHTS['dinov2-vits14']}"
    unset = ctqc("data", "inspect", "--data", phantom_folder, "--set", "qc.metric_features=swav-resnet50", cwd=tmp_path)
    assert unset.returncode == 2 and len(unset.stderr.strip().splitlines()) == 1 and "qc.weights.swav-resnet50 is not set" in unset.stderr


def test_qc_on_two_extractors_writes_each_ones_metrics_and_per_image_authenticity(tmp_path, monkeypatch, dinov2_file, swav_file):
    """The QC stage end to end on two pretrained extractors (tiny self-made weights); the synthetic folder copies the real one."""
    import json

    import pandas as pd

    from ctqc.config import load_config
    from ctqc.qc.inception import CACHE_DIR_ENV
    from ctqc.stages.qc import qc_folders
    from tests.conftest import make_folder

    monkeypatch.setenv(CACHE_DIR_ENV, str(tmp_path / "cache"))
    real, synthetic = make_folder(tmp_path / "real", n_per_class=10), make_folder(tmp_path / "synthetic", n_per_class=10)  # same seed: copies
    settings = ["qc.metric_features=[dinov2-vits14, swav-resnet50]", f"qc.weights.dinov2-vits14={dinov2_file}", f"qc.weights.swav-resnet50={swav_file}"]
    cfg = load_config("smoke", [*settings, "qc.n_permutations=0", "qc.n_bootstrap=20", "qc.embeddings=[]", "qc.n_repeats=1", "qc.n_splits=2"])
    metrics = qc_folders(real, synthetic, tmp_path / "out", cfg)
    assert metrics["extractor"] == "dinov2-vits14" and metrics["extractors"] == ["dinov2-vits14", "swav-resnet50"]
    by = metrics["by_extractor"]
    assert by["dinov2-vits14"]["pool"] == metrics["scopes"] and by["swav-resnet50"]["kept"] is None  # no filter here: pool only
    swav = by["swav-resnet50"]["pool"]["normal"]
    for name in ("fid", "kid", "rbf_mmd", "alpha_precision", "beta_recall", "authenticity"):
        assert swav[name]["value"] is not None and swav[name]["floor"] is not None, name
    assert swav["authenticity"]["value"] <= 0.25  # every synthetic image copies a real one (most of them a training image)
    scores = pd.read_csv(tmp_path / "out" / "scores.csv")
    authentic = scores.loc[scores["source"] == "synthetic", "authentic"].astype(str)
    assert (authentic == "False").mean() >= 0.6  # 80 % of the synthetic images copy a reference image
    json.dumps(metrics)  # what metrics.json holds
