"""Distribution metrics: known answers, agreement with torch-fidelity, honest intervals and floors."""

import numpy as np
import pytest
import torch

from ctqc.qc import metrics


@pytest.fixture(scope="module")
def gaussians():
    rng = np.random.default_rng(0)
    return rng.normal(size=(120, 48)), rng.normal(size=(100, 48)), rng.normal(size=(30, 48))


def test_fid_equals_torch_fidelity_and_vanishes_on_identical_sets(gaussians):
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    a, b, _ = gaussians
    shifted = b + 0.5
    stats = lambda x: fid_features_to_statistics(torch.from_numpy(x))  # noqa: E731
    reference = fid_statistics_to_metric(stats(a), stats(shifted), False)["frechet_inception_distance"]
    assert metrics.fid(a, shifted) == pytest.approx(reference, rel=1e-9)
    wide = np.random.default_rng(1).normal(size=(40, 300))  # n < d: the low-rank path's reason to exist
    narrow = np.random.default_rng(2).normal(size=(25, 300)) * 1.3
    assert metrics.fid(wide, narrow) == pytest.approx(fid_statistics_to_metric(stats(wide), stats(narrow), False)["frechet_inception_distance"], rel=1e-6)
    assert abs(metrics.fid(a, a)) < 1e-8
    assert metrics.fid(a, shifted) > 48 * 0.25 * 0.9  # |Δμ|² = 48 · 0.5²


def test_kid_is_zero_for_one_distribution_and_positive_after_a_shift(gaussians):
    a, b, _ = gaussians
    same_mean, same_std = metrics.kid(a, b)
    shift_mean, _ = metrics.kid(a, b + 0.5)
    assert abs(same_mean) < 3 * same_std + 1e-3
    assert shift_mean > 10 * max(same_std, 1e-4)
    assert same_std > 0  # subsets smaller than n, so the spread is real


def test_kid_subset_size_is_never_the_whole_set():
    for n1, n2 in [(8, 11), (17, 72), (200, 2000), (5000, 4000)]:
        assert 2 <= metrics.kid_subset_size(n1, n2) < min(n1, n2)


def test_precision_recall_match_torch_fidelity_definition(gaussians):
    a, b, _ = gaussians
    p, r = metrics.precision_recall(a, b)
    assert 0.5 < p <= 1 and 0.5 < r <= 1
    p_far, r_far = metrics.precision_recall(a + 10, b)
    assert p_far == 0 and r_far == 0
    prec_ind, rec_ind = metrics._pr_indicators(a, b, 3)
    assert prec_ind.mean() == pytest.approx(p) and rec_ind.mean() == pytest.approx(r)


def test_intervals_contain_the_estimates_and_floors_are_reported(gaussians):
    a, b, held = gaussians
    result = metrics.distribution_metrics(a + 0.6, b, held, n_bootstrap=100, seed=0)
    assert (result["n_synthetic"], result["n_real"], result["n_floor"]) == (120, 100, 30)
    for name in ("fid", "kid", "precision", "recall"):
        entry = result[name]
        assert entry["ci_low"] <= entry["value"] <= entry["ci_high"], name
        assert entry["floor_ci_low"] <= entry["floor"] <= entry["floor_ci_high"], name
    # The shifted set is farther from the reference than held-out real images at the same n.
    assert result["fid"]["matched"] > result["fid"]["floor_ci_high"]
    assert result["kid"]["value"] > result["kid"]["floor_ci_high"]
    assert result["warnings"] == []  # 100 images ≥ 48 dimensions


def test_small_samples_warn_and_identical_distributions_sit_at_the_floor():
    rng = np.random.default_rng(3)
    reference, held, synthetic = rng.normal(size=(60, 256)), rng.normal(size=(20, 256)), rng.normal(size=(200, 256))
    result = metrics.distribution_metrics(synthetic, reference, held, n_bootstrap=100, seed=0)
    assert any("FID from 60 images < 256" in w for w in result["warnings"])
    # Same distribution: the size-matched FID falls inside the floor's interval.
    assert result["fid"]["floor_ci_low"] <= result["fid"]["matched"] <= result["fid"]["floor_ci_high"]
    no_floor = metrics.distribution_metrics(synthetic, reference, held[:1], n_bootstrap=20, seed=0)
    assert no_floor["fid"]["floor"] is None and any("no real-vs-real floor" in w for w in no_floor["warnings"])


def test_bootstrap_replicate_fid_equals_fid_of_the_materialised_resample():
    """Replicates come from counts and Gram matrices, all at once: they must equal FID/KID on the repeated rows."""
    from ctqc.qc.metrics import _Resampled

    rng = np.random.default_rng(0)
    for n_gen, n_real in ((120, 40), (30, 90)):  # the small Gram matrix on either side
        gen, real = rng.normal(size=(n_gen, 64)) + 0.3, rng.normal(size=(n_real, 64))
        resampled = _Resampled(gen, real, np.ones(n_gen), np.ones(n_real))
        assert resampled.fid(np.ones(n_gen), np.ones(n_real))[0] == pytest.approx(metrics.fid(gen, real), rel=1e-6)
        c1 = np.stack([np.bincount(rng.integers(0, n_gen, n_gen), minlength=n_gen) for _ in range(4)]).astype(float)
        c2 = np.stack([np.bincount(rng.integers(0, n_real, n_real), minlength=n_real) for _ in range(4)]).astype(float)
        batch = resampled.replicates(c1, c2)
        for b in range(4):
            g, r = np.repeat(gen, c1[b].astype(int), axis=0), np.repeat(real, c2[b].astype(int), axis=0)
            assert batch["fid"][b] == pytest.approx(metrics.fid(g, r), rel=1e-6)
            assert resampled.fid(c1[b], c2[b])[0] == pytest.approx(batch["fid"][b], rel=1e-12)
            # KID leaves out pairs of an image with its own repeat: the polynomial-kernel MMD² over distinct draws
            k = lambda x, y: (x @ y.T / 64 + 1) ** 3  # noqa: E731
            kgg, krr = k(g, g), k(r, r)
            same_g = (np.repeat(np.arange(n_gen), c1[b].astype(int))[:, None] == np.repeat(np.arange(n_gen), c1[b].astype(int))[None, :])
            same_r = (np.repeat(np.arange(n_real), c2[b].astype(int))[:, None] == np.repeat(np.arange(n_real), c2[b].astype(int))[None, :])
            expected_kid = kgg[~same_g].sum() / (~same_g).sum() + krr[~same_r].sum() / (~same_r).sum() - 2 * k(g, r).mean()
            assert batch["kid"][b] == pytest.approx(expected_kid, rel=1e-9)


def test_bootstrap_kid_of_a_resample_without_pairs_is_nan_and_dropped():
    """A resample drawing one image n times has no pairs of distinct draws: KID NaN, not a number from k(x, x)."""
    from ctqc.qc.metrics import _Resampled

    rng = np.random.default_rng(1)
    gen, real = rng.normal(size=(6, 8)), rng.normal(size=(5, 8))
    resampled = _Resampled(gen, real, np.ones(6), np.ones(5))
    one_image = np.array([[6.0, 0, 0, 0, 0, 0], [1.0, 1, 1, 1, 1, 1]])
    kid = resampled.kid(one_image, np.ones((2, 5)))
    assert np.isnan(kid[0]) and np.isfinite(kid[1])
    assert metrics._interval([float("nan")] * 5 + list(range(20)), 10.0, centred=False)[0] is not None


def test_mode_collapse_gives_high_precision_low_recall_not_swapped():
    """A generator stuck on one mode: every sample is realistic (precision ≈ 1) but it covers little
    of the real set (recall ≈ 0). torch-fidelity before 0.4 returned the two swapped; this would catch it."""
    rng = np.random.default_rng(0)
    real = rng.normal(size=(300, 16))
    collapsed = real[:5].repeat(60, axis=0) + rng.normal(scale=0.01, size=(300, 16))  # 5 real points, jittered
    precision, recall = metrics.precision_recall(collapsed, real)
    assert precision > 0.95 and recall < 0.1
    prec_ind, rec_ind = metrics._pr_indicators(collapsed, real, 3)  # what the bootstrap resamples
    assert prec_ind.mean() == pytest.approx(precision) and rec_ind.mean() == pytest.approx(recall)
