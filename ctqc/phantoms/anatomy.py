"""The phantom's anatomy: head geometry, tissues, normal findings, the bleed and the acquisition.

Private to :mod:`ctqc.phantoms`; intensities in window units (0 = 0 HU, 1 = 80 HU).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

# Window-unit intensities (0 = 0 HU, 1 = 80 HU); the soft-tissue ones are drawn per image.
_AIR = -1.0  # air and fat: far below the window, so noise never lifts them above 0
_BONE = 1.4  # cortical bone saturates to white
_CALCIFICATION = 1.3

#: Bleed size and contrast move from their easy to their hard ranges in
#: proportion to ``difficulty ** _HARDNESS_EXPONENT``; the power puts the
#: calibrated default (0.5, about 82 % for the reference CNN) mid-scale.
_HARDNESS_EXPONENT = 1.35

#: Polar angles at which functions of the angle are tabulated (bin centres).
_ANGLES = (np.arange(4096) + 0.5) * (2.0 * np.pi / 4096) - np.pi
#: cos(k * angle) and sin(k * angle) for harmonics k = 0..15, rows indexed by k.
_COS = np.cos(np.arange(16)[:, None] * _ANGLES)
_SIN = np.sin(np.arange(16)[:, None] * _ANGLES)


@dataclass(frozen=True)
class Head:
    """Geometry of one randomly posed head, sampled on the pixels of its bounding box.

    All arrays are float32 with the shape of the box ``box`` (a pair of slices
    into the ``size`` x ``size`` frame), which holds the head plus a margin wide
    enough for the blur; everything outside it is air.
    ``x``, ``y``: coordinates in which the skull outline is roughly the unit
    circle (y points to the back of the head, the image bottom).
    ``rho``: normalised radius, 1 on the (irregular) outer scalp surface.
    ``angle_bin``: index of each pixel's polar angle into :data:`_ANGLES`, so that
    functions of the angle are evaluated once on a table and looked up.
    ``outer_skull``, ``inner_skull``: ``rho`` of the skull surfaces along each pixel's ray.
    ``csf_rim``: thickness of the CSF layer between skull and brain, ``rho`` units.
    ``brain``: antialiased mask of the intracranial space.
    ``px``: one pixel expressed in ``rho`` units, the width of antialiased edges.
    ``to_pixel``: 2x3 affine map from (x, y, 1) to (row, column) in the box.
    ``pixels_per_unit``: the largest number of pixels spanned by one unit of x or y.
    """

    size: int
    box: tuple[slice, slice]
    x: np.ndarray
    y: np.ndarray
    rho: np.ndarray
    angle_bin: np.ndarray
    outer_skull: float
    inner_skull: np.ndarray
    csf_rim: float
    brain: np.ndarray
    px: float
    to_pixel: np.ndarray
    pixels_per_unit: float

    @staticmethod
    def draw(rng: np.random.Generator, size: int) -> Head:
        """Draw pose, outline and skull of a head in a ``size`` x ``size`` frame."""
        cx, cy = (float(c) for c in rng.uniform(-0.07, 0.07, size=2))
        angle = rng.uniform(-0.25, 0.25)
        half_length = rng.uniform(0.66, 0.88)  # front-back semi-axis, in half-frames
        aspect = rng.uniform(0.76, 0.9)  # heads are longer than wide
        # Irregular outline: low-order Fourier terms plus a wider back of the head.
        outline = 1.0 + 0.035 * np.sin(_ANGLES) + _fourier(rng, orders=range(2, 6), amplitude=0.01)
        scalp = rng.uniform(0.025, 0.045)
        # Bone is thicker at the front and back than at the temples.
        thickness = rng.uniform(0.04, 0.06) * (1.0 + 0.3 * np.sin(_ANGLES) ** 2)
        thickness += _fourier(rng, orders=range(3, 7), amplitude=0.004)
        csf_rim = rng.uniform(0.008, 0.025)

        cos, sin = float(np.cos(angle)), float(np.sin(angle))
        scale = size / 2.0  # pixels per half-frame
        # Box: the rotated ellipse that encloses the outline, plus room for the blur.
        a, b = outline.max() * half_length * aspect, outline.max() * half_length
        margin = 2.0 + 4.0 * size / 256.0
        box = (
            _span(cy, np.hypot(a * sin, b * cos), scale, margin, size),
            _span(cx, np.hypot(a * cos, b * sin), scale, margin, size),
        )

        # Image-plane coordinates in [-1, 1] at pixel centres, rotated into the head frame.
        grid = ((np.arange(size) + 0.5) * (2.0 / size) - 1.0).astype(np.float32)
        u, v = grid[None, box[1]] - cx, grid[box[0], None] - cy
        x = (cos * u + sin * v) * (1.0 / (half_length * aspect))
        y = (cos * v - sin * u) * (1.0 / half_length)
        angle_bin = ((np.arctan2(y, x) + np.pi) * (len(_ANGLES) / (2.0 * np.pi))).astype(np.intp) % len(_ANGLES)
        rho = np.sqrt(x * x + y * y) / outline.astype(np.float32)[angle_bin]
        inner_skull = (1.0 - scalp - thickness).astype(np.float32)[angle_bin]
        px = 2.0 / (size * half_length * aspect)

        # Inverse of the map above, for cropping small objects to their own boxes.
        to_pixel = np.array(
            [
                [sin * half_length * aspect, cos * half_length, cy + 1.0 - (box[0].start + 0.5) / scale],
                [cos * half_length * aspect, -sin * half_length, cx + 1.0 - (box[1].start + 0.5) / scale],
            ]
        ) * scale
        return Head(
            size=size,
            box=box,
            x=x,
            y=y,
            rho=rho,
            angle_bin=angle_bin,
            outer_skull=1.0 - scalp,
            inner_skull=inner_skull,
            csf_rim=csf_rim,
            brain=np.clip(0.5 + (inner_skull - rho) / px, 0.0, 1.0),
            px=px,
            to_pixel=to_pixel,
            pixels_per_unit=half_length * scale,
        )

    def inside(self, distance: np.ndarray | float, edge_px: float = 1.0) -> np.ndarray:
        """Indicator from a signed distance (> 0 inside, ``rho`` units), ramping over ``edge_px`` pixels."""
        return np.clip(0.5 + distance / (edge_px * self.px), 0.0, 1.0)

    def around(self, table: np.ndarray) -> np.ndarray:
        """Per-pixel value of a function of the polar angle tabulated on :data:`_ANGLES`."""
        return table.astype(np.float32)[self.angle_bin]

    def window(self, cx: float, cy: float, radius: float) -> tuple[slice, slice]:
        """Pixels of the box that hold the disc of ``radius`` around (cx, cy), plus a margin."""
        row, col = self.to_pixel @ (cx, cy, 1.0)
        reach = radius * self.pixels_per_unit + 2.0
        return tuple(
            slice(min(max(int(centre - reach), 0), n), min(max(int(np.ceil(centre + reach)), 0), n))
            for centre, n in zip((float(row), float(col)), self.rho.shape)
        )

    def ellipse(self, cx: float, cy: float, a: float, b: float, angle: float) -> np.ndarray:
        """Antialiased mask of an ellipse with semi-axes ``a`` (along ``angle``) and ``b``."""
        mask = np.zeros_like(self.rho)
        box = self.window(cx, cy, max(a, b))
        dx, dy = self.x[box] - cx, self.y[box] - cy
        cos, sin = float(np.cos(angle)), float(np.sin(angle))
        q = np.sqrt(((cos * dx + sin * dy) / a) ** 2 + ((cos * dy - sin * dx) / b) ** 2)
        mask[box] = self.inside((1.0 - q) * min(a, b))
        return mask


def _span(centre: float, half_width: float, scale: float, margin: float, size: int) -> slice:
    """Pixel indices covering ``centre`` +- ``half_width`` (half-frame units) plus ``margin`` px."""
    low = (centre - half_width + 1.0) * scale - 0.5 - margin
    high = (centre + half_width + 1.0) * scale - 0.5 + margin
    return slice(max(0, int(np.floor(low))), min(size, int(np.ceil(high)) + 1))


def anatomy(rng: np.random.Generator, head: Head) -> np.ndarray:
    """Normal anatomy in window units, before any acquisition effects."""
    grey = rng.uniform(0.46, 0.54)
    white = grey - rng.uniform(0.06, 0.11)
    csf = rng.uniform(0.06, 0.16)
    depth = head.rho / head.inner_skull  # 0 at the centre, 1 at the inner skull surface

    # Cortex ribbon over white matter; the boundary wiggles like gyri do.
    white_edge = rng.uniform(0.76, 0.84) + 0.05 * _smooth_noise(rng, head, cells=10)
    parenchyma = grey + (white - grey) * np.clip((white_edge - depth) / 0.04 + 0.5, 0.0, 1.0)
    parenchyma += 0.012 * _smooth_noise(rng, head, cells=5)
    parenchyma = _sulci(rng, head, depth, parenchyma, csf)

    image = np.full(head.rho.shape, _AIR, dtype=np.float32)
    image = _paint(image, head.inside(1.0 - head.rho), rng.uniform(0.3, 0.5))  # scalp
    image = _paint(image, head.inside(head.outer_skull - head.rho), _BONE)
    image = _paint(image, head.brain, csf)
    image = _paint(image, head.inside(head.inner_skull - head.csf_rim - head.rho), parenchyma)
    image = _paint(image, _ventricles(rng, head), csf)
    image += rng.uniform(0.04, 0.1) * _falx(head) * (rng.uniform() < 0.75)
    return image


def _sulci(
    rng: np.random.Generator, head: Head, depth: np.ndarray, parenchyma: np.ndarray, csf: float
) -> np.ndarray:
    """Darken thin, winding clefts of CSF that reach in from the brain surface."""
    # Zero crossings of a smooth random field are winding lines, like sulci.
    clefts = np.clip(1.0 - np.abs(_smooth_noise(rng, head, cells=22)) / 0.2, 0.0, 1.0)
    reach = rng.uniform(0.1, 0.18)
    band = np.clip((depth - (1.0 - reach)) / (0.5 * reach), 0.0, 1.0)
    strength = rng.uniform(0.5, 0.9)  # sulci widen with age
    return parenchyma + strength * clefts * band * (csf - parenchyma)


def _ventricles(rng: np.random.Generator, head: Head) -> np.ndarray:
    """Mask of the lateral ventricles: two crescents ")(" either side of the midline."""
    scale = rng.uniform(0.7, 1.4)  # atrophy enlarges the ventricles
    gap = rng.uniform(0.05, 0.1) * scale
    cy = rng.uniform(-0.1, 0.1)
    width, length = rng.uniform(0.06, 0.1) * scale, rng.uniform(0.2, 0.3) * scale
    tilt = rng.uniform(0.1, 0.3)
    mask = np.zeros_like(head.rho)
    for side in (-1.0, 1.0):
        s = rng.uniform(0.85, 1.15)  # mild asymmetry
        cx = side * (gap + width * s)
        body = head.ellipse(cx, cy, width * s, length * s, side * tilt)
        # The caudate head indents the lateral wall, leaving a crescent.
        caudate_x = cx + side * width * s * rng.uniform(0.8, 1.2)
        caudate = head.ellipse(caudate_x, cy - 0.1 * length, width * s * 0.9, length * s * 0.7, side * tilt)
        mask = np.maximum(mask, body * (1.0 - caudate))
    third = head.ellipse(0.0, cy + length * 0.75, 0.012 * scale, 0.06 * scale, 0.0)
    return np.maximum(mask, third * (rng.uniform() < 0.5))


def _falx(head: Head) -> np.ndarray:
    """Thin midline line (falx cerebri), only in front of and behind the ventricles."""
    line = np.exp(-np.minimum((head.x / 0.008) ** 2, 30.0))  # capped: no float32 underflow
    away_from_centre = np.clip((np.abs(head.y) - 0.3) / 0.1, 0.0, 1.0)
    return line * away_from_centre * head.inside(head.inner_skull - head.csf_rim - head.rho)


def distractors(rng: np.random.Generator, head: Head) -> np.ndarray:
    """Normal findings, equally likely in both classes, some of which resemble small bleeds."""
    extra = np.zeros_like(head.rho)

    # Calcifications: choroid plexus (paired, back of the ventricles), pineal (midline).
    for probability, spots in ((0.4, [(-0.17, 0.18), (0.17, 0.18)]), (0.3, [(0.0, 0.3)])):
        present = rng.uniform() < probability
        radius = rng.uniform(0.012, 0.03)
        for cx, cy in spots:
            dx, dy = (float(d) for d in rng.normal(0.0, 0.03, size=2))
            if present:
                extra += _CALCIFICATION * head.ellipse(cx + dx, cy + dy, radius, radius, 0.0)

    # Partial volume of the skull base / vertex: a bright rim inside the skull
    # over an arc, which looks much like a thin subdural collection.
    arc = np.exp(-np.minimum((_angle_from(rng.uniform(-np.pi, np.pi)) / rng.uniform(0.4, 1.2)) ** 2, 30.0))
    fade = np.exp(-np.maximum(head.inner_skull - head.rho, 0.0) / rng.uniform(0.02, 0.05))
    extra += (rng.uniform() < 0.5) * rng.uniform(0.15, 0.35) * head.around(arc) * fade * head.brain

    # Beam hardening: faint straight streaks, dark or bright, across the brain.
    for _ in range(rng.integers(0, 4)):
        px, py = (float(p) for p in rng.uniform(-0.5, 0.5, size=2))
        direction = rng.uniform(0.0, np.pi)
        distance = (head.x - px) * float(np.sin(direction)) - (head.y - py) * float(np.cos(direction))
        amplitude = rng.uniform(0.03, 0.07) * float(rng.choice([-1.0, 1.0]))
        profile = np.exp(-np.minimum((distance / rng.uniform(0.004, 0.012)) ** 2, 30.0))
        extra += amplitude * profile * head.brain

    # Mottled density differences (e.g. old gliosis, vessels) anywhere in the brain.
    extra += 0.03 * np.maximum(_smooth_noise(rng, head, cells=16) - 1.0, 0.0) * head.brain
    return extra


def bleed(rng: np.random.Generator, head: Head, difficulty: float) -> tuple[np.ndarray, np.ndarray]:
    """Draw one haemorrhage: its soft mask in [0, 1] and its (mottled) window-unit level.

    All values are drawn whatever the class and kind; ``difficulty`` only
    rescales them, shrinking size and contrast monotonically.
    """
    kind = rng.choice(["intraparenchymal", "subdural", "epidural"], p=[0.5, 0.3, 0.2])
    u_size, u_contrast, u_extent = rng.uniform(size=3)
    centre = 0.7 * np.sqrt(rng.uniform()) * np.exp(1j * rng.uniform(-np.pi, np.pi))
    elongation, orientation = rng.uniform(0.55, 1.0), rng.uniform(0.0, np.pi)
    lumps = rng.normal(0.0, 0.08, size=(3, 2))
    arc_centre = rng.uniform(-np.pi, np.pi)
    mottling = 0.04 * _smooth_noise(rng, head, cells=24)  # a clot is not uniform

    hardness = difficulty**_HARDNESS_EXPONENT
    # Acute blood is 60-80 HU, well above grey matter (about 0.5 here).
    level = 0.5 + _scaled(u_contrast, easy=(0.4, 0.55), hard=(0.03, 0.1), hardness=hardness) + mottling
    if kind == "intraparenchymal":
        radius = _scaled(u_size, easy=(0.3, 0.5), hard=(0.03, 0.07), hardness=hardness)
        return _blob(head, centre, radius, elongation, orientation, lumps), level
    if kind == "subdural":
        # Crescent hugging the inner skull, its thickness tapering off like a cosine.
        thickness = _scaled(u_size, easy=(0.12, 0.22), hard=(0.012, 0.03), hardness=hardness)
        extent = _scaled(u_extent, easy=(1.2, 2.0), hard=(0.3, 0.7), hardness=hardness)
        taper = np.cos(np.clip(_angle_from(arc_centre) / extent, -1.0, 1.0) * (np.pi / 2))
    else:
        # Epidural: a biconvex lens, shorter and thicker than a subdural.
        thickness = _scaled(u_size, easy=(0.18, 0.28), hard=(0.02, 0.05), hardness=hardness)
        extent = _scaled(u_extent, easy=(0.6, 1.0), hard=(0.2, 0.4), hardness=hardness)
        taper = np.sqrt(np.maximum(1.0 - (_angle_from(arc_centre) / extent) ** 2, 0.0))
    inner = head.inner_skull - head.around(thickness * taper)
    return head.brain * head.inside(head.rho - inner, edge_px=2.0), level


def _blob(
    head: Head, centre: complex, radius: float, elongation: float, orientation: float, lumps: np.ndarray
) -> np.ndarray:
    """Irregular elliptical blob with low-order boundary ``lumps``, clipped to the brain."""
    mask = np.zeros_like(head.rho)
    box = head.window(centre.real, centre.imag, radius * (1.0 + np.abs(lumps).sum()))
    dx, dy = head.x[box] - centre.real, head.y[box] - centre.imag
    cos, sin = float(np.cos(orientation)), float(np.sin(orientation))
    along, across = cos * dx + sin * dy, (cos * dy - sin * dx) / elongation
    distance = np.sqrt(along**2 + across**2)
    direction = np.arctan2(across, along)
    outline = 1.0 + sum(c * np.cos(k * direction) + s * np.sin(k * direction) for k, (c, s) in enumerate(lumps, 2))
    mask[box] = head.inside(radius * elongation * (1.0 - distance / (radius * outline)), edge_px=3.0)
    return mask * head.brain


def acquire(rng: np.random.Generator, image: np.ndarray, size: int) -> np.ndarray:
    """Apply window jitter, blur and scanner noise; clip to float32 [0, 1]."""
    gain, offset = rng.uniform(0.85, 1.15), rng.uniform(-0.05, 0.05)
    image = (image - 0.45) * gain + (0.45 + offset)  # slightly different window settings

    scale = size / 256.0  # blur and noise grain are defined for 256 px renders
    image = ndimage.gaussian_filter(image, sigma=rng.uniform(0.5, 1.0) * scale, mode="nearest")
    noise = ndimage.gaussian_filter(rng.standard_normal(image.shape, dtype=np.float32), sigma=0.7 * scale)
    image += rng.uniform(0.02, 0.05) / noise.std() * noise
    return np.clip(image, 0.0, 1.0, out=image)


def _paint(image: np.ndarray, mask: np.ndarray, value: np.ndarray | float) -> np.ndarray:
    """Cover ``image`` with ``value`` where ``mask`` is 1, blending at soft edges."""
    return image + mask * (value - image)


def _scaled(u: float, easy: tuple[float, float], hard: tuple[float, float], hardness: float) -> float:
    """Map a uniform draw ``u`` into the range interpolated between easy and hard."""
    low = easy[0] + (hard[0] - easy[0]) * hardness
    high = easy[1] + (hard[1] - easy[1]) * hardness
    return low + u * (high - low)


def _angle_from(angle: float) -> np.ndarray:
    """Signed angular distance in [-pi, pi) from ``angle``, tabulated on :data:`_ANGLES`."""
    return (_ANGLES - angle + np.pi) % (2.0 * np.pi) - np.pi


def _fourier(rng: np.random.Generator, orders: range, amplitude: float) -> np.ndarray:
    """Random periodic ``sum_k a_k cos(k phi) + b_k sin(k phi)``, tabulated on :data:`_ANGLES`."""
    a, b = rng.normal(0.0, amplitude, size=(2, len(orders), 1))
    return (a * _COS[orders.start : orders.stop] + b * _SIN[orders.start : orders.stop]).sum(axis=0)


def _smooth_noise(rng: np.random.Generator, head: Head, cells: int) -> np.ndarray:
    """Smooth unit-variance random field on the head's box, features about size/cells px wide.

    A (cells + 3)^2 grid of Gaussian control points spanning the whole frame is
    interpolated with cubic B-splines, separably and only on the box: far
    cheaper than filtering white noise. Plain array arithmetic (no BLAS) keeps
    the result bit-identical whatever the thread count.
    """
    first, weights = _spline_taps(head.size, cells)
    (r_first, r_weights), (c_first, c_weights) = ((first[s], weights[s]) for s in head.box)
    control = rng.standard_normal((cells + 3, cells + 3), dtype=np.float32)
    rows = sum(r_weights[:, a, None] * control[r_first + a] for a in range(4))
    return sum(rows[:, c_first + b] * c_weights[None, :, b] for b in range(4))


@functools.lru_cache(maxsize=64)
def _spline_taps(size: int, cells: int) -> tuple[np.ndarray, np.ndarray]:
    """Per pixel: index of the first of its 4 control points, and their cubic B-spline weights.

    Control point ``j`` sits at ``j - 1`` in cell units; pixel centres span [0, cells).
    The weights (size, 4) are scaled to unit norm so that the field has unit variance.
    """
    t = (np.arange(size) + 0.5) * (cells / size)
    first = np.floor(t).astype(np.intp)
    f = t - first
    weights = np.stack([(1 - f) ** 3, 3 * f**3 - 6 * f**2 + 4, -3 * f**3 + 3 * f**2 + 3 * f + 1, f**3], axis=1)
    weights = (weights / np.linalg.norm(weights, axis=1, keepdims=True)).astype(np.float32)
    for array in (first, weights):
        array.flags.writeable = False  # shared through the cache
    return first, weights
