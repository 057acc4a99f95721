"""The kernel two-sample test (ctqc.qc.mmd_two_sample): reference checks, null calibration, power on a loss of spread."""

import numpy as np
import pytest

from ctqc.qc.mmd_two_sample import configured_mmd, median_bandwidth, mmd2_unbiased, mmd_features, mmd_summary, mmd_test, rbf_kernel


def _double_loop_mmd2(x: np.ndarray, y: np.ndarray, k) -> float:
    """Gretton et al. (2012) eq. 3 written out term by term (the O(n²) reference)."""
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_unbiased_mmd2_matches_the_double_loop_formula():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(7, 3)), rng.normal(0.5, 1.5, size=(5, 3))
    sigma = 1.3
    gauss = lambda a, b: float(np.exp(-np.sum((a - b) ** 2) / (2 * sigma**2)))  # noqa: E731
    kernel = rbf_kernel(np.vstack([x, y]), sigma)
    is_x = np.r_[np.ones(7, bool), np.zeros(5, bool)]
    assert mmd2_unbiased(kernel, is_x) == pytest.approx(_double_loop_mmd2(x, y, gauss), rel=1e-12, abs=1e-14)
    # many labellings at once give each labelling's own statistic
    rng2 = np.random.default_rng(1)
    labellings = np.stack([rng2.permutation(is_x) for _ in range(4)], axis=1)
    pooled = np.vstack([x, y])
    expected = [_double_loop_mmd2(pooled[lab], pooled[~lab], gauss) for lab in labellings.T]
    assert np.allclose(mmd2_unbiased(kernel, labellings), expected, rtol=1e-12, atol=1e-14)
    assert mmd_test(x, y, n_permutations=0, bandwidth=sigma).mmd2 == pytest.approx(_double_loop_mmd2(x, y, gauss), rel=1e-12)


def test_rbf_kernel_matches_scikit_learn_and_the_median_heuristic_is_the_median_distance():
    from scipy.spatial.distance import pdist
    from sklearn.metrics.pairwise import rbf_kernel as sk_rbf

    z = np.random.default_rng(2).normal(size=(30, 6))
    sigma = median_bandwidth(z)
    assert sigma == pytest.approx(float(np.median(pdist(z))), rel=1e-10)
    assert np.allclose(rbf_kernel(z, sigma), sk_rbf(z, gamma=1 / (2 * sigma**2)), atol=1e-12)
    assert median_bandwidth(np.zeros((5, 2))) == 1.0  # all points equal: a usable fallback
    with pytest.raises(ValueError):
        rbf_kernel(z, 0.0)


def test_unbiased_mmd2_with_a_polynomial_kernel_matches_torch_fidelity_kid():
    """torch-fidelity's KID is the unbiased MMD² with the kernel (xᵀy / d + 1)³ (Bińkowski et al. 2018)."""
    tf_kid = pytest.importorskip("torch_fidelity.metric_kid")
    rng = np.random.default_rng(3)
    x, y = rng.normal(size=(40, 8)), rng.normal(0.3, 1.2, size=(40, 8))
    pooled = np.vstack([x, y])
    kernel = (pooled @ pooled.T / pooled.shape[1] + 1) ** 3
    ours = mmd2_unbiased(kernel, np.r_[np.ones(40, bool), np.zeros(40, bool)])
    reference = tf_kid.mmd2(tf_kid.kernel_poly(x, x), tf_kid.kernel_poly(x, y), tf_kid.kernel_poly(y, y))
    assert ours == pytest.approx(float(reference), rel=1e-9)


def test_null_p_values_are_calibrated():
    """Both sets from one distribution: rejection at 0.05 over 100 simulations within [0.01, 0.12]."""
    rng = np.random.default_rng(4)
    p = [mmd_test(rng.normal(size=(30, 5)), rng.normal(size=(40, 5)), n_permutations=100, seed=s).p_value for s in range(100)]
    rate = float(np.mean(np.array(p) <= 0.05))
    assert 0.01 <= rate <= 0.12, rate
    assert 0.35 <= float(np.mean(p)) <= 0.65  # roughly uniform
    assert all(1 / 101 <= v <= 1 for v in p)


def test_reduced_spread_is_detected():
    """Synthetic SD half the real SD, same mean: the MMD rejects; a mean-difference test has nothing to see."""
    rng = np.random.default_rng(5)
    p = [mmd_test(rng.normal(size=(60, 10)), 0.5 * rng.normal(size=(60, 10)), n_permutations=100, seed=s).p_value for s in range(20)]
    assert np.mean(np.array(p) <= 0.05) >= 0.95, p


def test_features_use_the_c2st_transform_fitted_on_the_pooled_rows():
    rng = np.random.default_rng(6)
    real, synthetic = rng.normal(size=(20, 40)), rng.normal(size=(25, 40))
    x, y = mmd_features(real, synthetic, pca_components=8, pixel_columns=32, seed=0)
    assert x.shape == (20, 8 + 8) and y.shape == (25, 16)
    pooled = np.vstack([x, y])
    assert np.allclose(pooled.mean(axis=0), 0, atol=1e-9) and np.allclose(pooled.std(axis=0), 1, atol=1e-6)
    # label-free: swapping which rows are called real changes nothing but the order
    y2, x2 = mmd_features(synthetic, real, pca_components=8, pixel_columns=32, seed=0)
    assert np.allclose(np.abs(np.vstack([x, y])[:, :8]), np.abs(np.vstack([x2, y2])[:, :8]), atol=1e-6)


def test_configured_mmd_and_summary():
    from ctqc.config import QCConfig

    qc = QCConfig(n_permutations=50, pca_components=4)
    rng = np.random.default_rng(7)
    test = configured_mmd(rng.normal(size=(30, 12)), rng.normal(size=(30, 12)), qc, seed=0, pixel_columns=8)
    summary = mmd_summary(test)
    assert summary["n_permutations"] == 50 and 0 < summary["p_value"] <= 1 and summary["bandwidth"] > 0
    assert configured_mmd(np.zeros((1, 3)), np.zeros((5, 3)), qc, 0, None) is None
    assert mmd_summary(None)["note"]
    with pytest.raises(ValueError):
        mmd_test(np.zeros((1, 3)), np.zeros((4, 3)))


def test_feature_transform_is_the_c2sts_transform_with_the_dimension_capped():
    from ctqc.qc.classifiers import feature_transform, make_classifier

    x = np.random.default_rng(3).normal(size=(40, 48))
    pca = feature_transform(0, len(x), pca_components=8, pixel_columns=32).fit_transform(x)
    assert pca.shape == (40, 8 + 16)  # the 32-column pixel block → 8 PCA dimensions, the other 16 columns standardised
    np.testing.assert_array_equal(pca, make_classifier("logreg", 0, 8, 32)[:-1].fit_transform(x))
    # the PCA dimension never exceeds the rows it is fitted on minus one, nor the pixel block
    assert feature_transform(0, 6, pca_components=8, pixel_columns=32).fit_transform(x[:6]).shape == (6, 5 + 16)
    assert feature_transform(0, len(x), pca_components=64, pixel_columns=4).fit_transform(x).shape == (40, 4 + 44)
    # without a pixel block, or with pca_components 0, only standardised (no PCA, unlike the C2ST then)
    plain = feature_transform(0, len(x), pca_components=8, pixel_columns=None).fit_transform(x)
    np.testing.assert_allclose(plain, (x - x.mean(0)) / x.std(0))
    assert feature_transform(0, len(x), pca_components=0, pixel_columns=32).fit_transform(x).shape == (40, 48)
