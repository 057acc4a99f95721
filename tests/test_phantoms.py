"""The procedural head-CT phantoms: API contract, determinism and image content."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy import ndimage

import ctqc.phantoms as phantoms_module
from ctqc.phantoms import PhantomSet, PhantomSpec, generate_phantoms, render_phantom


@pytest.fixture(scope="module")
def default_set() -> PhantomSet:
    return generate_phantoms()


def _render_pair(seed: int, index: int, size: int, difficulty: float) -> tuple[np.ndarray, np.ndarray]:
    """The same slice rendered with and without its haemorrhage (equal generator states)."""
    with_bleed = render_phantom(np.random.default_rng([seed, index]), size, True, difficulty)
    without = render_phantom(np.random.default_rng([seed, index]), size, False, difficulty)
    return with_bleed, without


def test_default_set_shapes_dtypes_labels_and_ids(default_set):
    assert default_set.images.shape == (200, 256, 256) and default_set.images.dtype == np.uint8
    assert default_set.labels.shape == (200,) and default_set.labels.dtype == np.int64
    assert np.bincount(default_set.labels).tolist() == [100, 100]
    assert default_set.labels.tolist() == [i % 2 for i in range(200)]  # interleaved, even = normal
    assert default_set.ids == [f"{i:03d}" for i in range(200)]


def test_slices_look_like_head_ct(default_set):
    images = default_set.images
    corners = np.concatenate([images[:, :4, :4], images[:, :4, -4:], images[:, -4:, :4], images[:, -4:, -4:]], axis=1)
    assert (corners == 0).all(), "air around the head must be black"
    # Skull: every slice has a ring of near-white pixels covering a visible area.
    assert ((images >= 240).mean(axis=(1, 2)) > 0.01).all()
    # Inside the head most tissue is brain, mid-grey in a brain window.
    head_median = np.array([np.median(im[im > 0]) for im in images])
    assert ((head_median > 70) & (head_median < 160)).all()
    # Poses vary: the head is not always in the same place or of the same size.
    head_area = (images > 0).mean(axis=(1, 2))
    assert head_area.std() > 0.02 and 0.2 < head_area.mean() < 0.7


def test_same_spec_is_bit_identical_and_seed_matters():
    spec = PhantomSpec(n_per_class=4, size=64, seed=7)
    first, second = generate_phantoms(spec), generate_phantoms(spec)
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.labels, second.labels)
    other = generate_phantoms(PhantomSpec(n_per_class=4, size=64, seed=8))
    assert all((a != b).any() for a, b in zip(first.images, other.images))


def test_image_does_not_depend_on_how_many_are_made():
    small = generate_phantoms(PhantomSpec(n_per_class=5, size=48, seed=3))
    large = generate_phantoms(PhantomSpec(n_per_class=10, size=48, seed=3))
    np.testing.assert_array_equal(small.images, large.images[:10])
    np.testing.assert_array_equal(small.labels, large.labels[:10])
    assert small.ids == large.ids[:10]


def test_id_width_grows_past_three_digits(monkeypatch):
    # Only the bookkeeping is under test here: skip the (slow) rendering of 1002 slices.
    monkeypatch.setattr(phantoms_module, "render_phantom", lambda rng, size, *_: np.zeros((size, size), np.float32))
    phantoms = generate_phantoms(PhantomSpec(n_per_class=501, size=16))
    assert phantoms.ids[0] == "0000" and phantoms.ids[-1] == "1001"
    assert len(set(phantoms.ids)) == 1002


@pytest.mark.parametrize("size", [16, 32, 255, 512])
def test_renders_at_any_size(size):
    image = render_phantom(np.random.default_rng(size), size, True, 0.5)
    assert image.shape == (size, size) and image.dtype == np.float32
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert image[0, 0] == image[-1, -1] == 0.0
    assert image.max() > 0.9  # the skull survives even at 16 px


def _air_around_head(image: np.ndarray) -> np.ndarray:
    """Mask of the black pixels connected to the frame border (not dark CSF inside the skull)."""
    regions, _ = ndimage.label(image == 0)
    border = np.concatenate([regions[0], regions[-1], regions[:, 0], regions[:, -1]])
    return np.isin(regions, border[border > 0])


def test_bleed_only_adds_intensity_inside_the_head():
    for index in range(6):
        with_bleed, without = _render_pair(seed=0, index=index, size=128, difficulty=0.5)
        difference = with_bleed - without
        assert difference.min() >= 0.0
        assert difference.max() > 0.05
        air = _air_around_head(without)
        assert air.mean() > 0.2 and (difference[air] == 0).all()
        assert with_bleed[~air].mean() > without[~air].mean()


def test_class_does_not_change_the_random_stream():
    a, b = np.random.default_rng([1, 2]), np.random.default_rng([1, 2])
    render_phantom(a, 64, True, 0.3)
    render_phantom(b, 64, False, 0.3)
    assert a.random() == b.random()


def test_bleeds_shrink_and_fade_with_difficulty():
    def bleed_signal(difficulty: float) -> tuple[float, float]:
        """Mean over slices of the summed extra intensity and of the visibly changed area."""
        diffs = [np.subtract(*_render_pair(0, i, 64, difficulty)) for i in range(8)]
        return float(np.mean([d.sum() for d in diffs])), float(np.mean([(d > 0.05).sum() for d in diffs]))

    easy, medium, hard = bleed_signal(0.0), bleed_signal(0.5), bleed_signal(1.0)
    assert easy[0] > medium[0] > hard[0] > 0.0
    assert easy[1] > medium[1] > hard[1]


@pytest.mark.parametrize(
    "bad", [dict(n_per_class=0), dict(size=15), dict(seed=-1), dict(difficulty=-0.1), dict(difficulty=1.5)]
)
def test_spec_rejects_bad_values(bad):
    with pytest.raises(ValueError):
        PhantomSpec(**bad)


def test_module_does_not_import_torch():
    code = "import sys, ctqc.phantoms; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
