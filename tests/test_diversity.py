"""Density and coverage (Naeem et al. 2020) on hand-computed and known-distribution cases."""

import numpy as np
import pytest

from ctqc.qc.diversity import density_coverage, diversity_check, real_radii


def test_hand_computed_case():
    """Reals at 0, 1, 2, 3 on a line, k = 1: every radius is 1. A synthetic image at 0.5 lies in the balls
    of 0 and 1 (strictly), one at 10 in none: density = 2 / (1 · 2) = 1, coverage = 2 / 4."""
    real = np.array([[0.0], [1.0], [2.0], [3.0]])
    assert np.allclose(real_radii(real, 1), 1.0)
    assert density_coverage(real, np.array([[0.5], [10.0]]), k=1) == pytest.approx((1.0, 0.5))
    assert density_coverage(real, np.array([[1.0]]), k=1) == pytest.approx((1.0, 0.25))  # distance 1 to 0 and 2: not < 1


def test_same_distribution_and_collapsed_diversity():
    """Same distribution: density ≈ 1 and coverage ≈ 1 − 2⁻ᵏ (Naeem et al., N = M); a collapsed set covers little."""
    rng = np.random.default_rng(0)
    real, same = rng.normal(size=(1000, 4)), rng.normal(size=(1000, 4))
    density, coverage = density_coverage(real, same, k=5)
    assert density == pytest.approx(1.0, abs=0.1) and coverage == pytest.approx(1 - 0.5**5, abs=0.03)
    collapsed = rng.normal(size=(1000, 4)) * 0.3
    assert density_coverage(real, collapsed, k=5)[1] < 0.5


def test_warning_when_the_kept_set_loses_diversity():
    rng = np.random.default_rng(1)
    real, pool = rng.normal(size=(300, 3)), rng.normal(size=(400, 3))
    central = np.linalg.norm(pool, axis=1) < np.quantile(np.linalg.norm(pool, axis=1), 0.25)  # keep only "average" images
    result = diversity_check(real, pool, central)
    assert result["coverage_kept"] < result["coverage_random"] - 0.1 and "removed diversity" in result["warning"]
    random_keep = rng.random(400) < 0.25
    assert diversity_check(real, pool, random_keep)["warning"] is None
    assert diversity_check(real, pool, random_keep)["note"] is None  # the check could have warned here


def test_a_kept_set_too_small_to_warn_says_so():
    """With 2 kept images of 400, same-size random subsets cover < 0.1 of 300 real neighbourhoods, so the
    kept coverage cannot fall 0.1 below theirs: no warning, and a note that the check could not speak."""
    rng = np.random.default_rng(2)
    real, pool = rng.normal(size=(300, 3)), rng.normal(size=(400, 3))
    few = np.zeros(400, bool)
    few[:2] = True
    result = diversity_check(real, pool, few)
    assert result["coverage_random"] < 0.1 and result["warning"] is None
    assert result["note"].startswith("cannot warn at this size") and f"{result['coverage_random']:.2f}" in result["note"]


def test_matches_an_independent_nearest_neighbour_route():
    """``prdc`` is not installed here, so the cross-check is scikit-learn's k-d tree queries instead of
    the distance matrix: radii from ``kneighbors`` (k + 1 neighbours, the first being the image itself),
    density from ``radius_neighbors`` counts, coverage from each real image's nearest synthetic image."""
    from sklearn.neighbors import NearestNeighbors

    rng = np.random.default_rng(2)
    real, synthetic = rng.normal(size=(150, 6)), rng.normal(size=(120, 6)) * 1.3 + 0.2
    k = 5
    radii = NearestNeighbors(n_neighbors=k + 1).fit(real).kneighbors(real)[0][:, k]
    assert np.allclose(real_radii(real, k), radii)
    to_synthetic = NearestNeighbors().fit(synthetic)
    balls = [to_synthetic.radius_neighbors(x[None], r * (1 - 1e-12), return_distance=False)[0] for x, r in zip(real, radii)]  # strictly inside
    density = sum(len(b) for b in balls) / (k * len(synthetic))
    coverage = np.mean(to_synthetic.kneighbors(real, n_neighbors=1)[0][:, 0] < radii)
    assert density_coverage(real, synthetic, k) == pytest.approx((density, coverage), abs=1e-9)
    assert 0 < coverage < 1 and density > 0


def test_matches_the_authors_prdc_package():
    """The reference implementation (Naeem et al.'s ``prdc``) gives the same density and coverage."""
    import contextlib
    import io

    from prdc import compute_prdc

    rng = np.random.default_rng(3)
    for n_real, n_syn, d, scale in ((150, 120, 6, 1.3), (40, 60, 32, 0.7), (25, 7, 10, 1.0)):
        real, synthetic = rng.normal(size=(n_real, d)), rng.normal(size=(n_syn, d)) * scale + 0.1
        with contextlib.redirect_stdout(io.StringIO()):  # prdc prints the set sizes
            reference = compute_prdc(real, synthetic, nearest_k=5)
        assert density_coverage(real, synthetic, 5) == pytest.approx((reference["density"], reference["coverage"]), abs=1e-6)


def test_embedding_plot_marks_a_diversity_warning(tmp_path):
    """A class whose kept set lost diversity gets a red frame and the warning in its panel; the other class does not."""
    import pandas as pd
    from PIL import Image

    from ctqc.qc.embeddings import plot_embedding

    rng = np.random.default_rng(0)
    rows = [
        {"class": c, "source": s, "tsne_x": x, "tsne_y": y, "kept": (None if s == "real" else bool(rng.random() < 0.5))}
        for c in ("normal", "haemorrhage")
        for s in ("real", "synthetic")
        for x, y in rng.normal(size=(20, 2))
    ]
    table = pd.DataFrame(rows)
    plot_embedding(table, "tsne", tmp_path / "plain.png")
    plot_embedding(table, "tsne", tmp_path / "marked.png", {"haemorrhage": "the kept images cover 0.41 of the real neighbourhoods, same-size random subsets 0.66: the filter removed diversity"})
    plain, marked = (np.asarray(Image.open(tmp_path / f"{n}.png").convert("RGB")).astype(int) for n in ("plain", "marked"))
    red = lambda img: ((img[..., 0] > 150) & (img[..., 1] < 60) & (img[..., 2] < 80))  # noqa: E731
    half = plain.shape[1] // 2
    assert red(marked[:, half:]).sum() > 200 and red(plain).sum() == 0  # the haemorrhage panel (right) is marked
    assert red(marked[:, :half]).sum() == 0
