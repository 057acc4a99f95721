"""QC self-test: proof, on real images with known answers, that the filter does its job.

Uses only development images (train + val of fold 0; the test part is never
touched) and the QC settings of the config.

(a) **null** — the real images split in two at random, one half scored as if
    synthetic: the C2ST must not see a difference (AUC ≈ 0.5), its permutation
    p-values must look uniform over repeats, and at most 15 % of the "synthetic"
    half may be discarded at the threshold;
(b) **planted artifacts** — checkerboard, nearest-neighbour blockiness, blur,
    noise, intensity shift (in units of the data's own brightness spread, see
    :func:`artifacts`) and cut-out applied at three strengths to half of the
    held-out images, which are then pooled with the other, clean half: the
    per-image scores must rank the defective images above the clean ones
    (AUROC), rising with strength and ≥ 0.9 at medium strength;
(c) **copies** — exact, noisy, 1-px shifted and mirrored copies of training
    images: ≥ 95 % flagged, while ≤ 5 % of genuine held-out images are.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ctqc.config import QCConfig
from ctqc.data import LabelledImages, load_dataset
from ctqc.qc.c2st import configured_c2st
from ctqc.qc.domain import fit_domain_encoder
from ctqc.qc.features import feature_matrix
from ctqc.qc.memorisation import check_copies
from ctqc.splits import Splits

STRENGTHS = ("low", "medium", "high")


def _foreground(x: torch.Tensor) -> torch.Tensor:
    return (x > -0.9).to(x.dtype)


def checkerboard(x: torch.Tensor, delta: float) -> torch.Tensor:
    """±delta in a 1-px checkerboard over the head (transposed-conv artifacts look like this)."""
    h, w = x.shape[-2:]
    pattern = ((torch.arange(h).view(-1, 1) + torch.arange(w).view(1, -1)) % 2) * 2.0 - 1.0
    return (x + delta * pattern * _foreground(x)).clamp(-1, 1)


def blocky(x: torch.Tensor, factor: int) -> torch.Tensor:
    """Average-pool by ``factor`` then nearest-neighbour up-sample: blocks of factor×factor px."""
    return F.interpolate(F.avg_pool2d(x, factor), scale_factor=factor, mode="nearest")


def blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    radius = max(1, int(3 * sigma + 0.5))
    t = torch.arange(-radius, radius + 1, dtype=x.dtype)
    kernel = torch.exp(-(t**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    padded = F.pad(x, [radius] * 4, value=-1.0)
    out = F.conv2d(padded, kernel.view(1, 1, 1, -1))
    return F.conv2d(out, kernel.view(1, 1, -1, 1))


def noise(x: torch.Tensor, sigma: float, generator: torch.Generator) -> torch.Tensor:
    return (x + sigma * torch.randn(x.shape, generator=generator) * _foreground(x)).clamp(-1, 1)


def intensity_shift(x: torch.Tensor, shift: float) -> torch.Tensor:
    return (x + shift * _foreground(x)).clamp(-1, 1)


def cutout(x: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """A black square of ``size`` px at a random place in the central half of each image."""
    out = x.clone()
    h, w = x.shape[-2:]
    for i in range(len(x)):
        top = int(torch.randint(h // 4, max(h // 4 + 1, 3 * h // 4 - size + 1), (1,), generator=generator))
        left = int(torch.randint(w // 4, max(w // 4 + 1, 3 * w // 4 - size + 1), (1,), generator=generator))
        out[i, :, top : top + size, left : left + size] = -1.0
    return out


def brightness_spread(images: torch.Tensor) -> float:
    """Inter-image SD of the mean foreground intensity: the natural spread an intensity shift hides in."""
    fg = (images > -0.9).to(images.dtype)
    means = (images * fg).sum(dim=(1, 2, 3)) / fg.sum(dim=(1, 2, 3)).clamp_min(1)
    return float(means.std())


SHIFT_IN_SPREADS = (1.0, 2.5, 5.0)  # intensity-shift strengths, in units of brightness_spread()


def artifacts(generator: torch.Generator, size: int = 32, spread: float = 0.04) -> dict[str, dict[str, Callable[[torch.Tensor], torch.Tensor]]]:
    """name → strength → function. Strengths are in [-1, 1] intensity units or px at 32 px.

    The intensity shift is the exception: it is measured in ``spread`` units (the data's own
    inter-image SD of mean foreground brightness). One image shifted by δ is told from the
    unshifted population at best with AUROC Φ(δ / (spread·√2)) — 0.76 at 1 spread, 0.96 at
    2.5, ~1 at 5 — so a fixed δ would test the data's brightness spread, not the filter.
    """
    scale = size / 32
    return {
        "checkerboard": {s: (lambda x, d=d: checkerboard(x, d)) for s, d in zip(STRENGTHS, (0.03, 0.08, 0.2))},
        "blockiness": {s: (lambda x, f=f: blocky(x, f)) for s, f in zip(STRENGTHS, (2, 4, 8))},
        "blur": {s: (lambda x, g=g * scale: blur(x, g)) for s, g in zip(STRENGTHS, (0.5, 1.0, 2.0))},
        "noise": {s: (lambda x, g=g: noise(x, g, generator)) for s, g in zip(STRENGTHS, (0.03, 0.08, 0.2))},
        "intensity_shift": {s: (lambda x, d=k * spread: intensity_shift(x, d)) for s, k in zip(STRENGTHS, SHIFT_IN_SPREADS)},
        "cutout": {s: (lambda x, c=int(c * scale): cutout(x, c, generator)) for s, c in zip(STRENGTHS, (4, 8, 12))},
    }


def _rises(weaker: float, stronger: float, tolerance: float = 0.02, saturated: float = 0.95) -> bool:
    """Detection does not fall with strength (beyond noise); near-perfect values may trade places."""
    return stronger >= weaker - tolerance or min(weaker, stronger) >= saturated


def _features(images: torch.Tensor, qc: QCConfig, domain_weights=None) -> tuple[np.ndarray, int | None]:
    return feature_matrix(images, qc.features, domain_weights=domain_weights)


def run_selftest(images: torch.Tensor, qc: QCConfig, seed: int = 0, null_repeats: int = 5, null_permutations: int = 100, domain_weights=None) -> dict:
    """Run (a), (b) and (c) on development ``images`` (N×1×S×S in [-1, 1]); returns a JSON-able report.

    ``domain_weights``: the encoder for the ``domain`` features, when ``qc.features`` has them.
    """
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    n = len(images)
    feats, pixel_columns = _features(images, qc, domain_weights)

    # (a) null: random halves, one scored as synthetic
    aucs, p_values, discarded = [], [], []
    for r in range(null_repeats):
        order = rng.permutation(n)
        a, b = order[: n // 2], order[n // 2 :]
        test = configured_c2st(qc, seed + r, pixel_columns, n_permutations=null_permutations).fit(feats[a], feats[b])
        aucs.append(test.auc_)
        p_values.append(test.p_value_)
        discarded.append(float((test.synthetic_scores_ > qc.c2st_threshold).mean()))
    null = {
        "auc": aucs,
        "p_values": p_values,
        "discarded_fraction": discarded,
        "pass": bool(abs(np.mean(aucs) - 0.5) <= 0.1 and max(discarded) <= 0.15),
    }

    # (b) planted artifacts: reference half vs a pool of clean + defective held-out images
    order = rng.permutation(n)
    reference, clean, defect = order[: n // 2], order[n // 2 : 3 * n // 4], order[3 * n // 4 :]
    planted: dict[str, dict[str, float]] = {}
    spread = brightness_spread(images)
    for name, levels in artifacts(gen, images.shape[-1], spread).items():
        planted[name] = {}
        for strength, apply in levels.items():
            pool = torch.cat([images[clean], apply(images[defect])])
            test = configured_c2st(qc, seed, pixel_columns, n_permutations=0).fit(feats[reference], _features(pool, qc, domain_weights)[0])
            is_defect = np.r_[np.zeros(len(clean)), np.ones(len(defect))]
            planted[name][strength] = round(float(roc_auc_score(is_defect, test.synthetic_scores_)), 4)
    rising = all(_rises(v["low"], v["medium"]) and _rises(v["medium"], v["high"]) for v in planted.values())
    medium_ok = all(v["medium"] >= 0.9 for v in planted.values())

    # (c) copies of training images vs genuine held-out images
    train, ref_held, genuine = order[: n // 2], order[n // 2 : 3 * n // 4], order[3 * n // 4 :]
    src = images[train][: max(1, len(train) // 2)]
    shifted = F.pad(src, [1, 0, 0, 1], value=-1.0)[..., 1:, :-1]
    copies = {
        "exact": src,
        "noisy": (src + 0.03 * torch.randn(src.shape, generator=gen)).clamp(-1, 1),
        "shifted_1px": shifted,
        "flipped": src.flip(-1),
    }
    flagged = {k: float(check_copies(v, images[train], images[ref_held], qc.copy_percentile, qc.copy_max_shift).flagged.mean()) for k, v in copies.items()}
    false_alarms = float(check_copies(images[genuine], images[train], images[ref_held], qc.copy_percentile, qc.copy_max_shift).flagged.mean())
    copy_report = {
        "flagged": flagged,
        "genuine_flagged": false_alarms,
        "pass": bool(min(flagged.values()) >= 0.95 and false_alarms <= 0.05),
    }
    return {
        "n_images": n,
        "features": qc.features,
        "classifier": qc.classifier,
        "threshold": qc.c2st_threshold,
        "null": null,
        "planted": {"auroc": planted, "intensity_shift_units": {"brightness_spread": round(spread, 4), "strengths": dict(zip(STRENGTHS, SHIFT_IN_SPREADS))}, "rising_with_strength": rising, "medium_at_least_0.9": medium_ok, "pass": bool(rising and medium_ok)},
        "copies": copy_report,
        "pass": bool(null["pass"] and rising and medium_ok and copy_report["pass"]),
    }


def selftest(config, null_permutations: int = 100, data: LabelledImages | None = None, splits: Splits | None = None) -> dict:
    """Self-test on the development images (train + val, fold 0) of ``config``'s data.

    ``data`` and ``splits``: already loaded (a run's); by default loaded and split from ``config``.
    """
    data = load_dataset(config.data) if data is None else data
    splits = Splits.make(data, config.split, config.split_seed) if splits is None else splits
    dev = splits.development(data)
    images = torch.cat([dev.train.images, dev.val.images])
    with tempfile.TemporaryDirectory(prefix="ctqc-selftest-") as tmp:
        weights = None
        if "domain" in config.qc.features:  # the encoder learns from fold 0's training images only, as in ctqc qc
            weights = Path(tmp) / "domain.pt"
            fit_domain_encoder(dev.train.images, dev.train.labels, seed=config.seed, path=weights)
        report = run_selftest(images, config.qc, seed=config.seed, null_permutations=null_permutations, domain_weights=weights)
    report["data"] = {"location": data.source.location, "fingerprint": data.source.fingerprint, "images_used": "train + val of fold 0 (test never)"}
    return report
