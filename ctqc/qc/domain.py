"""A CT *domain* feature extractor: a small CNN encoder trained on the real training images.

Inception's features were learned on photographs, not on grey head slices. The domain
extractor instead embeds images with an encoder fitted
on the run's own real *training* images (never validation or test), with their class
labels as the training signal: the 128-d global-average-pooled output of its last
convolutional block (the layer before the linear class head) is the feature vector.

- :class:`DomainEncoder` — 4 conv blocks (3×3, stride 2, batch norm, GELU), global
  average pool → 128-d embedding, linear class head; for 1×S×S images in [-1, 1].
- :func:`fit_domain_encoder` — cross-entropy on the images it is given, light
  augmentation (horizontal flips, ±2 px shifts), deterministic on CPU for a seed.
- :func:`save_encoder` / :func:`load_encoder` — a plain ``state_dict`` file
  (``torch.save``; loaded with ``weights_only=True``).
- torch-fidelity: :func:`register` registers ``FeatureExtractorCTDomain`` as
  ``"ctqc-ct-domain"`` (idempotent); then
  ``calculate_metrics(..., feature_extractor="ctqc-ct-domain", feature_extractor_weights_path=<.pt>)``.
  Like every torch-fidelity extractor it takes N×3×H×W uint8; it uses the first channel.
- ctqc's own path (:func:`domain_features`, used by ``ctqc.qc.features.extract("domain", ...,
  domain_weights=...)``) goes through the same uint8 boundary and the same forward.
- :func:`fit_fold_encoders` — one encoder per fold for ``ctqc qc`` / ``ctqc filter``, saved
  as ``<cache dir>/domain-fold<k>.pt`` and re-used while its training images and settings
  are unchanged.

torch-fidelity is imported only by :func:`register` (importing it costs seconds).
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ctqc import atomic
from ctqc.errors import UserError
from ctqc.qc.pixels import image_hashes, quantise, to_uint8_rgb

FIDELITY_NAME = "ctqc-ct-domain"
FEATURE_DIM = 128
FEATURE_NAME = str(FEATURE_DIM)
WIDTHS = (32, 64, 128, FEATURE_DIM)
EPOCHS = 30
BATCH_SIZE = 32
MAX_SHIFT = 2
ENCODER_VERSION = 1  # bump when the architecture or training changes: fitted encoders are then re-fitted


class DomainEncoder(nn.Module):
    """Small CNN for 1×S×S images in [-1, 1] (S = 32..256): 128-d embedding + linear class head."""

    def __init__(self, n_classes: int, image_size: int):
        super().__init__()
        if n_classes < 2:
            raise ValueError(f"the domain encoder needs at least two classes, got {n_classes}")
        if not 16 <= image_size <= 1024:
            raise ValueError(f"image size must be 16..1024 px, got {image_size}")
        layers: list[nn.Module] = []
        c_in = 1
        for c_out in WIDTHS:
            layers += [nn.Conv2d(c_in, c_out, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.GELU()]
            c_in = c_out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(FEATURE_DIM, n_classes)
        self.register_buffer("image_size", torch.tensor(int(image_size)))  # saved with the weights

    @property
    def size(self) -> int:
        return int(self.image_size)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """N×1×S×S float in [-1, 1] → N×128 (global average pool of the last block)."""
        return self.features(x).mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(x))


def from_uint8(images_uint8: torch.Tensor, size: int) -> torch.Tensor:
    """N×3×H×W uint8 (torch-fidelity's input; grey in every channel) → N×1×size×size float in [-1, 1]."""
    if images_uint8.dtype != torch.uint8 or images_uint8.dim() != 4 or images_uint8.shape[1] not in (1, 3):
        raise ValueError(f"expected N×3×H×W uint8 images, got {tuple(images_uint8.shape)} {images_uint8.dtype}")
    x = images_uint8[:, :1].float() / 127.5 - 1
    if x.shape[-2:] != (size, size):
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=True).clamp(-1, 1)
    return x


def _augment(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    """Random horizontal flips and shifts of up to ±MAX_SHIFT px (air, -1, fills the border)."""
    n, _, h, w = x.shape
    flip = torch.rand(n, generator=gen) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(-1), x)
    padded = F.pad(x, [MAX_SHIFT] * 4, value=-1.0)
    dy, dx = (torch.randint(0, 2 * MAX_SHIFT + 1, (n,), generator=gen) for _ in range(2))
    rows = (dy[:, None] + torch.arange(h))[:, :, None]  # n×h×1
    cols = (dx[:, None] + torch.arange(w))[:, None, :]  # n×1×w
    return padded[torch.arange(n)[:, None, None], 0, rows, cols].unsqueeze(1)


def fit_domain_encoder(
    images: torch.Tensor,
    labels,
    seed: int = 0,
    epochs: int = EPOCHS,
    path: Path | None = None,
    bf16: bool = False,
    threads: int = 1,
) -> DomainEncoder:
    """Train a :class:`DomainEncoder` on ``images`` (N×1×S×S in [-1, 1]) with class ``labels``; eval mode.

    Only these images are used: pass the real *training* images. Labels may be any integers
    (mapped to 0..C-1 in sorted order); at least two classes are needed. AdamW, batch 32,
    one-cycle learning rate (warm-up, then cosine decay), ``epochs`` passes; the seed fixes
    initialisation, shuffling and augmentation. Training runs on ``threads`` CPU threads
    (default 1: the same bits whatever the machine's thread count, and for a network this
    small the fastest here — 2 threads on a busy 2-core machine were 20× slower per step).
    ``bf16`` runs the forward pass under bfloat16 autocast: measured ~10 % faster per step on
    this AMX CPU (26 vs 30 ms for 32 images at 32 px), not worth its rounding, so off by
    default. When ``path`` is given the weights are saved there.
    """
    labels = np.asarray(labels)
    if images.dim() != 4 or images.shape[1] != 1 or images.shape[-1] != images.shape[-2]:
        raise ValueError(f"expected N×1×S×S images, got {tuple(images.shape)}")
    if len(labels) != len(images):
        raise ValueError(f"{len(images)} images but {len(labels)} labels")
    classes, y = np.unique(labels, return_inverse=True)
    if len(classes) < 2:
        raise ValueError(f"the domain encoder is trained to tell classes apart and needs at least two; got {classes.tolist()}")
    x = quantise(images)  # what it will see at inference, after the uint8 boundary
    y = torch.from_numpy(y.astype(np.int64))
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = DomainEncoder(len(classes), images.shape[-1])
    gen = torch.Generator().manual_seed(seed)
    steps_per_epoch = -(-len(x) // BATCH_SIZE)
    optimiser = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=3e-3, total_steps=max(1, epochs * steps_per_epoch), pct_start=0.2)
    model.train()
    with _torch_threads(threads):
        _train(model, optimiser, schedule, x, y, gen, epochs, bf16)
    model.eval().requires_grad_(False)
    if path is not None:
        save_encoder(model, path)
    return model


def _train(model, optimiser, schedule, x, y, gen, epochs: int, bf16: bool) -> None:
    for _ in range(epochs):
        order = torch.randperm(len(x), generator=gen)
        for batch in order.split(BATCH_SIZE):
            if len(batch) < 2:  # batch norm needs two samples
                continue
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss = F.cross_entropy(model(_augment(x[batch], gen)).float(), y[batch])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            schedule.step()


@contextlib.contextmanager
def _torch_threads(n: int):
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def save_encoder(model: DomainEncoder, path: Path) -> Path:
    """Write the encoder's ``state_dict`` atomically; returns ``path``."""
    with atomic.atomic_path(path) as tmp:
        torch.save(model.state_dict(), tmp)
    return Path(path)


def load_encoder(path: Path) -> DomainEncoder:
    """A :class:`DomainEncoder` from a saved ``state_dict`` (``weights_only=True``), in eval mode."""
    state = _read_state(path)
    try:
        model = DomainEncoder(state["head.weight"].shape[0], int(state["image_size"]))
        model.load_state_dict(state)
    except (KeyError, RuntimeError) as exc:
        raise ValueError(f"{path}: not a ctqc domain-encoder state dict ({exc})") from exc
    return model.eval().requires_grad_(False)


def weights_digest(path: Path) -> str:
    """Short hash of the encoder's weights (names, types, values): names its feature cache, so
    encoders never share one. Taken over the tensors, not the file, whose zip records the
    temporary name it was written under and a random serialization id."""
    digest = hashlib.sha256()
    for name, value in sorted(_read_state(path).items()):
        digest.update(name.encode())
        if isinstance(value, torch.Tensor):
            digest.update(f"{value.dtype}{tuple(value.shape)}".encode())
            digest.update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes())
        else:
            digest.update(repr(value).encode())
    return digest.hexdigest()[:16]


def _read_state(path: Path) -> dict:
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle.UnpicklingError for unsafe content, RuntimeError for a corrupt zip
        raise UserError(f"{path}: not a loadable domain encoder ({exc.__class__.__name__}); it may be corrupt or unsafe: delete it and it is fitted again") from None


@functools.lru_cache(maxsize=8)
def _cached_encoder(path: str, digest: str) -> DomainEncoder:  # keyed by content, so a re-fitted file is re-read
    return load_encoder(Path(path))


def embed_uint8(model: DomainEncoder, images_uint8: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """N×3×H×W uint8 → N×128 float32 embeddings (the torch-fidelity extractor's forward).

    Single-threaded, like the fit: measured on this shared 2-core machine, 96 images took
    30 ms on one thread and 270 ms on two while another process was busy.
    """
    with torch.inference_mode(), _torch_threads(1):
        parts = [model.embed(from_uint8(b, model.size)) for b in images_uint8.cpu().split(batch_size)]
    return torch.cat([torch.empty(0, FEATURE_DIM), *parts]).float()


def domain_features(images: torch.Tensor, weights: Path) -> np.ndarray:
    """128-d domain features of N×1×S×S float images in [-1, 1], as float64 (via the uint8 boundary)."""
    model = _cached_encoder(str(weights), weights_digest(weights))
    return embed_uint8(model, to_uint8_rgb(images)).double().numpy()


# --- one encoder per fold, for ctqc qc / ctqc filter ---------------------------------------------


def fit_fold_encoders(units, cache_dir: Path, seed: int = 0, epochs: int | None = None) -> dict[int, Path]:
    """Fit (or re-use) one encoder per fold on that fold's real training images; {fold: weights path}.

    A fold's training set is the ``reference`` images of all its units (one unit per class),
    labelled by ``unit.key``. Weights go to ``<cache_dir>/domain-fold<k>.pt`` with a JSON
    sidecar recording a fingerprint of the images, labels, seed and settings; a later call
    with the same fingerprint re-uses the file instead of fitting again.
    """
    cache_dir, epochs = Path(cache_dir), EPOCHS if epochs is None else epochs
    out: dict[int, Path] = {}
    for fold in sorted({u.fold for u in units}):
        members = [u for u in units if u.fold == fold]
        images = torch.cat([u.reference for u in members])
        labels = np.concatenate([np.full(len(u.reference), u.key) for u in members])
        if len(set(labels.tolist())) < 2:
            raise UserError(f"fold {fold}: the 'domain' extractor learns from real training images of at least two classes; this fold has synthetic images of one class only — use other qc.features / qc.metric_features")
        fingerprint = hashlib.sha256(
            json.dumps([ENCODER_VERSION, seed + fold, epochs, image_hashes(images), labels.tolist()]).encode()
        ).hexdigest()[:24]
        path, sidecar = cache_dir / f"domain-fold{fold}.pt", cache_dir / f"domain-fold{fold}.json"
        recorded = _read_json(sidecar)
        fitted = path.is_file() and recorded.get("fingerprint") == fingerprint and recorded.get("weights_sha256_16") == weights_digest(path)
        if not fitted:
            start = time.perf_counter()
            fit_domain_encoder(images, labels, seed=seed + fold, epochs=epochs, path=path)
            info = {
                "fingerprint": fingerprint,
                "weights_sha256_16": weights_digest(path),
                "trained_on": "real training images of this fold (all classes), labelled by class",
                "n_images": len(images),
                "classes": sorted(int(k) for k in set(labels.tolist())),
                "image_size": int(images.shape[-1]),
                "seed": seed + fold,
                "epochs": epochs,
                "fit_seconds": round(time.perf_counter() - start, 2),
            }
            atomic.write_json(sidecar, info)
        out[fold] = path
    return out


def encoders_if_used(units, names, cache_dir: Path | None, seed: int = 0) -> dict[int, Path]:
    """:func:`fit_fold_encoders` when ``"domain"`` is among the extractor ``names``, else ``{}``."""
    if "domain" not in names:
        return {}
    if cache_dir is None:
        raise ValueError("the 'domain' extractor needs a cache directory to keep its fitted encoders in")
    return fit_fold_encoders(units, cache_dir, seed)


def describe_encoder(path: Path) -> dict:
    """What :func:`fit_fold_encoders` recorded about the encoder at ``path`` (its JSON sidecar)."""
    info = _read_json(Path(path).with_suffix(".json"))
    return {"weights": Path(path).name, **{k: v for k, v in info.items() if k != "fingerprint"}}


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


# --- torch-fidelity ---------------------------------------------------------------------------


@functools.cache
def _fidelity_class():
    """The torch-fidelity extractor class (built on first use: importing torch-fidelity costs seconds)."""
    from torch_fidelity.feature_extractor_base import FeatureExtractorBase
    from torch_fidelity.helpers import vassert

    class FeatureExtractorCTDomain(FeatureExtractorBase):
        """torch-fidelity feature extractor ``"ctqc-ct-domain"``: a fitted :class:`DomainEncoder`'s 128-d embedding.

        ``feature_extractor_weights_path`` (required): a file written by :func:`save_encoder`.
        Input: N×3×H×W uint8 (grey: the first channel is used), resized to the encoder's
        training size when it differs. Provides one feature, ``"128"``, used for FID, KID and PRC.
        """

        def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
            super().__init__(name, features_list)
            vassert(
                feature_extractor_weights_path is not None,
                f'Feature extractor "{name}" needs feature_extractor_weights_path: a ctqc domain encoder (.pt)',
            )
            self.encoder = load_encoder(Path(feature_extractor_weights_path))

        def forward(self, x):
            vassert(torch.is_tensor(x) and x.dtype == torch.uint8, "Expecting image as torch.Tensor with dtype=torch.uint8")
            vassert(x.dim() == 4 and x.shape[1] == 3, f"Input is not Bx3xHxW: {tuple(x.shape)}")
            with _torch_threads(1):  # see embed_uint8
                return (self.encoder.embed(from_uint8(x, self.encoder.size)).float(),)

        @staticmethod
        def get_provided_features_list():
            return (FEATURE_NAME,)

        @staticmethod
        def get_default_feature_layer_for_metric(metric):
            vassert(metric in ("fid", "kid", "prc"), f'"{FIDELITY_NAME}" has no class logits: no default layer for {metric!r}')
            return FEATURE_NAME

        @staticmethod
        def can_be_compiled():
            return False

        @staticmethod
        def get_dummy_input_for_compile():
            return (torch.rand([1, 3, 32, 32]) * 255).to(torch.uint8)

    FeatureExtractorCTDomain.__module__ = __name__
    FeatureExtractorCTDomain.__qualname__ = "FeatureExtractorCTDomain"  # importable via the module's __getattr__
    return FeatureExtractorCTDomain


def register() -> str:
    """Register the extractor with torch-fidelity as ``"ctqc-ct-domain"``; safe to call again. Returns the name.

    A class of the same name left by an earlier import of this module (e.g. a reload) is
    replaced; a different extractor already registered under the name is an error.
    """
    import torch_fidelity
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    cls = _fidelity_class()
    existing = FEATURE_EXTRACTORS_REGISTRY.get(FIDELITY_NAME)
    if existing is None:
        torch_fidelity.register_feature_extractor(FIDELITY_NAME, cls)
    elif existing is not cls:
        if (existing.__module__, existing.__qualname__) != (cls.__module__, cls.__qualname__):
            raise RuntimeError(f"torch-fidelity already has a different feature extractor named {FIDELITY_NAME!r}: {existing!r}")
        FEATURE_EXTRACTORS_REGISTRY[FIDELITY_NAME] = cls
    return FIDELITY_NAME


def __getattr__(name: str):
    if name == "FeatureExtractorCTDomain":
        register()
        return _fidelity_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
