"""The ``structure`` C2ST features (ctqc.qc.structure): known answers, invariances, and what each column sees."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from sklearn.metrics import roc_auc_score

from ctqc.qc.features import extract, feature_matrix
from ctqc.qc.pixels import quantise
from ctqc.qc.structure import EPS, N_FEATURES, structure_features


def _head(size: int = 48, value: float = 0.0, margin: int = 8) -> torch.Tensor:
    """1×1×S×S: air (−1) with a square 'head' of constant ``value``."""
    img = torch.full((1, 1, size, size), -1.0)
    img[..., margin : size - margin, margin : size - margin] = value
    return img


def test_shape_and_finite_for_any_input():
    blank = torch.full((1, 1, 32, 32), -1.0)
    full = torch.zeros(1, 1, 32, 32)
    speck = blank.clone()
    speck[..., 10:12, 10:12] = 0.5  # too little foreground for the scales
    rand = torch.rand(3, 1, 32, 32) * 2 - 1
    f = structure_features(torch.cat([blank, full, speck, rand]))
    assert f.shape == (6, N_FEATURES) and f.dtype == np.float64 and np.isfinite(f).all()
    assert np.allclose(f[0, :7], math.log(EPS)) and np.allclose(f[0, 7:], 0)  # empty: the documented values
    assert structure_features(torch.zeros(0, 1, 32, 32)).shape == (0, N_FEATURES)


@pytest.mark.parametrize("sigma", [0.02, 0.05, 0.1])
def test_noise_scale_recovers_a_known_sigma(sigma):
    """White noise of SD σ on flat tissue: 1.4826·median|∇²x| = σ·√20 (5-point stencil), within 5 %."""
    gen = torch.Generator().manual_seed(0)
    img = _head(160, margin=2) + sigma * torch.randn(1, 1, 160, 160, generator=gen) * (_head(160, margin=2) > -0.9)
    estimate = math.exp(structure_features(img)[0, 0]) / math.sqrt(20)
    assert estimate == pytest.approx(sigma, rel=0.05)


def test_holes_symmetry_and_seams_on_constructed_images():
    head = _head(48, margin=8)  # a 32×32 head
    holed = head.clone()
    holed[..., 20:24, 20:24] = -1.0  # 16 air pixels inside a filled area of 1,024
    assert structure_features(head)[0, 7] == 0 and structure_features(holed)[0, 7] == pytest.approx(16 / 1024)
    ramp = head.clone()
    ramp[..., 8:40, 8:40] = torch.linspace(-0.5, 0.5, 32).view(1, 32)  # left–right: x ↦ −x, not symmetric
    mirror = head.clone()
    mirror[..., 8:40, 8:40] = torch.linspace(-0.5, 0.5, 32).view(32, 1)  # top–bottom ramp: mirror-symmetric
    assert structure_features(mirror)[0, 8] == pytest.approx(0, abs=1e-12) and structure_features(ramp)[0, 8] > 0.4
    gen = torch.Generator().manual_seed(1)
    textured = head + 0.05 * torch.randn(head.shape, generator=gen) * (head > -0.9)
    seamed = textured.clone()
    seamed[..., 8:40, 24:40] += 0.3  # a straight vertical step inside the head
    smooth, step = structure_features(textured)[0], structure_features(seamed)[0]
    assert step[9] > smooth[9] + 1.0  # the column profile's max / median
    assert abs(step[12] - smooth[12]) < 0.3  # rows: the step is vertical, the row profile barely moves


def _disc(size: int, radius: float, value: float = 0.2) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.arange(size) - size / 2 + 0.5, torch.arange(size) - size / 2 + 0.5, indexing="ij")
    return torch.where(yy**2 + xx**2 <= radius**2, value, -1.0).view(1, 1, size, size)


@pytest.mark.parametrize("size", [32, 64, 128])
def test_a_flat_head_has_no_structure_whatever_its_outline_and_size(size):
    """The filters' windows see no air: a flat disc gives log(1e-6) in columns 0–6, no holes, no asymmetry, no seams."""
    f = structure_features(_disc(size, size * 0.35))[0]
    assert np.allclose(f[:7], math.log(EPS)) and f[7] == 0 and f[8] == 0
    assert np.allclose(f[9:], 0, atol=1e-9)


def test_asymmetry_follows_the_head_not_stray_pixels():
    """The mirror axis is the largest region's midline: a bright pixel in the air does not move it."""
    head = _disc(48, 14)
    stray = head.clone()
    stray[..., 2, 45] = 0.5  # noise in the air, far right
    assert structure_features(head)[0, 8] == 0 and structure_features(stray)[0, 8] == 0


def test_translation_invariant():
    gen = torch.Generator().manual_seed(2)
    img = _head(48, margin=12) + 0.1 * torch.randn(1, 1, 48, 48, generator=gen) * (_head(48, margin=12) > -0.9)
    shifted = torch.roll(img, shifts=(5, -7), dims=(-2, -1))  # the head stays inside the air border
    assert np.allclose(structure_features(img), structure_features(shifted))


def test_each_defect_family_moves_its_columns_on_the_phantoms():
    """On the built-in phantoms: noise ↔ noise scale, cut-out ↔ holes, patch shuffle ↔ seams (univariate AUROC)."""
    from ctqc.config import DataConfig, PhantomConfig
    from ctqc.data import load_dataset
    from ctqc.qc.selftest import artifacts, brightness_spread

    images = load_dataset(DataConfig(image_size=32, phantom=PhantomConfig(n_per_class=60))).images
    defects = artifacts(torch.Generator().manual_seed(0), 32, brightness_spread(images))
    clean = structure_features(images)

    def auroc(name: str, column: int) -> float:
        f = structure_features(defects[name]["medium"](images))
        y = np.r_[np.zeros(len(clean)), np.ones(len(f))]
        a = roc_auc_score(y, np.r_[clean[:, column], f[:, column]])
        return max(a, 1 - a)

    assert auroc("noise", 0) > 0.97
    assert auroc("cutout", 7) > 0.9
    assert max(auroc("patch_shuffle", c) for c in range(9, 15)) > 0.75
    assert auroc("blur", 1) > 0.95


def test_registered_as_a_cached_extractor(tmp_path):
    images = torch.rand(4, 1, 32, 32) * 2 - 1
    direct = structure_features(quantise(images))  # every extractor sees the 8-bit grid (ctqc.qc.features.extract)
    assert np.array_equal(extract("structure", images, tmp_path), direct)
    assert np.array_equal(extract("structure", images, tmp_path), direct)  # from the cache
    matrix, pixel_columns = feature_matrix(images, ["structure", "pixels"], tmp_path)
    assert pixel_columns == 32 * 32 and matrix.shape == (4, 32 * 32 + N_FEATURES)
