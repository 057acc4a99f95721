"""QC features, feature cache and memorisation checks on phantom images."""

import numpy as np
import pytest
import torch

from ctqc.config import DataConfig, PhantomConfig
from ctqc.data import load_dataset
from ctqc.qc import features
from ctqc.qc.memorisation import check_copies, data_copying_statistic, orbit
from ctqc.qc.pixels import quantise


@pytest.fixture(scope="module")
def phantoms():
    data = load_dataset(DataConfig(phantom=PhantomConfig(n_per_class=80, size=96, seed=11)))
    return data.images  # 160 × 1 × 32 × 32


def test_uint8_rgb_boundary():
    x = torch.tensor([-1.0, 0.0, 1.0]).view(1, 1, 1, 3)
    out = features.to_uint8_rgb(x)
    assert out.dtype == torch.uint8 and out.shape == (1, 3, 1, 3)
    assert out[0, :, 0].tolist() == [[0, 128, 255]] * 3


def test_handcrafted_features_shapes_and_sensitivity(phantoms):
    x = phantoms[:20]
    assert features.extract("pixels", x).shape == (20, 1024)
    hist = features.extract("histogram", x)
    assert hist.shape == (20, 32 + 7) and np.allclose(hist[:, :32].sum(1), 1)
    # a foreground shift smaller than a histogram bin moves mean and quantiles by exactly that much
    shifted = features.extract("histogram", torch.where(x > -0.9, x + 0.02, x))
    assert np.allclose(shifted[:, 32] - hist[:, 32], 0.02, atol=2e-3) and np.allclose(shifted[:, 36] - hist[:, 36], 0.02, atol=5e-3)
    fft = features.extract("fft", x)
    assert fft.shape == (20, 16)
    # a checkerboard adds power at the highest frequency ring only
    checker = x.clone() + 0.2 * torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).repeat(16, 16)
    fft2 = features.extract("fft", checker)
    assert (fft2[:, -1] - fft[:, -1]).min() > 1.0 and np.abs(fft2[:, :8] - fft[:, :8]).max() < 0.5
    with pytest.raises(ValueError, match="unknown feature extractor"):
        features.extract("sift", x)


def test_feature_cache_hits_by_content(tmp_path, phantoms, monkeypatch):
    calls = []
    real = features.EXTRACTORS["fft"]
    monkeypatch.setitem(features.EXTRACTORS, "fft", lambda imgs: calls.append(len(imgs)) or real(imgs))
    a = features.extract("fft", phantoms[:10], tmp_path)
    b = features.extract("fft", phantoms[:10].clone(), tmp_path)
    assert len(calls) == 1 and np.array_equal(a, b)
    c = features.extract("fft", phantoms[5:15], tmp_path)  # half seen before: only 5 new images computed
    assert calls == [10, 5] and np.array_equal(c[:5], a[5:]) and np.allclose(c, real(quantise(phantoms[5:15])))
    assert len(np.load(tmp_path / f"fft.v{features.CACHE_VERSION}.npz")["keys"]) == 15
    (tmp_path / f"fft.v{features.CACHE_VERSION}.npz").write_bytes(b"damaged")  # a broken cache is recomputed, not trusted
    assert np.allclose(features.extract("fft", phantoms[:3], tmp_path), a[:3]) and calls == [10, 5, 3]


def test_every_extractor_sees_images_at_the_pools_precision(phantoms):
    """Float images (the phantoms, DICOM, resized files) and the same images stored as 8-bit PNG give identical features.

    Without the 8-bit grid the histogram tells the two apart (real vs real, one half stored as 8 bits: C2ST
    AUC +0.02 to +0.04, bench/RESULTS.md), so a float real set would look less like an 8-bit pool than it is.
    """
    x = phantoms[:40]
    stored = features.to_uint8_rgb(x)[:, :1].float() / 127.5 - 1  # a PNG round trip, as the pool is read back
    assert not np.array_equal(features.EXTRACTORS["histogram"](x), features.EXTRACTORS["histogram"](stored))  # what the grid removes
    for name in ("pixels", "fft", "histogram", "structure", "inception-bf16"):
        assert np.array_equal(features.extract(name, x), features.extract(name, stored)), name
    assert np.array_equal(quantise(stored), stored) and quantise(x).dtype == torch.float32  # idempotent on the grid
    assert features.image_hashes(quantise(x)) == features.image_hashes(stored)  # one cache row for both


def test_orbit_contains_flips_and_shifts(phantoms):
    members, sources = orbit(phantoms[:3], max_shift=1)
    assert len(members) == 3 * 2 * 9 and sources.tolist().count(0) == 18
    assert any(torch.equal(m, phantoms[0].flip(-1)) for m in members)


def test_copies_of_training_images_are_flagged_and_genuine_images_are_not(phantoms):
    train, reference, genuine = phantoms[:80], phantoms[80:120], phantoms[120:]
    gen = torch.Generator().manual_seed(0)
    src = train[:40]
    shifted = torch.nn.functional.pad(src, [1, 0, 0, 1], value=-1.0)[..., 1:, :-1]  # 1 px right, 1 px up
    copies = torch.cat([src, (src + 0.05 * torch.randn(src.shape, generator=gen)).clamp(-1, 1), shifted, src.flip(-1)])
    result = check_copies(copies, train, reference, percentile=1.0)
    assert result.flagged.mean() >= 0.95
    assert (result.nearest_train[:40] == np.arange(40)).all()  # the exact copies point at their source
    assert result.ratio.max() < 0.5
    genuine_check = check_copies(genuine, train, reference, percentile=1.0)
    assert genuine_check.flagged.mean() <= 0.05
    # the threshold comes from the training images alone; the held-out images only grade it
    assert check_copies(genuine, train, percentile=1.0).threshold == genuine_check.threshold
    assert len(genuine_check.reference_distance) == len(train) and len(genuine_check.heldout_distance) == len(reference)
    assert genuine_check.heldout_flagged.mean() <= 0.05


def test_data_copying_statistic_separates_copies_from_fresh_samples():
    rng = np.random.default_rng(0)
    train, held, fresh = rng.normal(size=(300, 5)), rng.normal(size=(300, 5)), rng.normal(size=(300, 5))
    copies = train[rng.integers(0, 300, 300)] + rng.normal(scale=0.01, size=(300, 5))
    assert data_copying_statistic(train, held, copies) < -5
    assert abs(data_copying_statistic(train, held, fresh)) < 2.5


def test_lower_percentile_is_stable_for_small_reference_sets():
    from ctqc.qc.memorisation import lower_percentile

    rng = np.random.default_rng(0)
    big = np.exp(rng.normal(-3, 0.3, 5000))
    assert lower_percentile(big, 1.0) == pytest.approx(np.percentile(big, 1.0))
    estimates = [lower_percentile(np.exp(rng.normal(-3, 0.3, 17)), 1.0) for _ in range(200)]
    true = np.exp(-3 + 0.3 * -2.326)
    assert abs(np.median(estimates) / true - 1) < 0.1  # an unbiased-ish tail estimate from 17 values


@pytest.mark.parametrize("method", ["tsne", "umap"])
def test_embeddings_are_deterministic_and_separate_shifted_sets(method):
    from sklearn.metrics import silhouette_score

    from ctqc.qc.embeddings import embed

    rng = np.random.default_rng(0)
    same = np.vstack([rng.normal(size=(40, 10)), rng.normal(size=(40, 10))])
    shifted = np.vstack([rng.normal(size=(40, 10)), rng.normal(size=(40, 10)) + 3])
    labels = np.r_[np.zeros(40), np.ones(40)]
    a, b = embed(shifted, method, seed=1), embed(shifted, method, seed=1)
    assert a.shape == (80, 2) and np.allclose(a, b)
    assert silhouette_score(a, labels) > 0.5
    assert silhouette_score(embed(same, method, seed=1), labels) < 0.15
    with pytest.raises(ValueError, match="unknown embedding"):
        embed(same, "pca")
