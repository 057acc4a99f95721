"""Pretrained feature extractors loaded from local weight files (``qc.weights.<name>``); nothing is downloaded.

Each maps float32 images N×1×H×W in [-1, 1] to an N×d float64 matrix (:func:`pretrained_features`):

- ``clip-vit-b-32`` (d = 512) and ``clip-vit-l-14-336px`` (d = 768, CMMD's embedding): torch-fidelity's
  ``FeatureExtractorCLIP`` given ``feature_extractor_weights_path`` — OpenAI's TorchScript file
  (``ViT-B-32.pt``, ``ViT-L-14-336px.pt``; Radford et al. 2021). Input: uint8 RGB through
  :func:`ctqc.qc.pixels.to_uint8_rgb`; torch-fidelity resizes (bilinear, TF-1.x-exact) to 224 / 336 px and
  applies CLIP's mean/std. Output: the image embedding (after ``visual.proj``), not normalised.
- ``dinov2-vits14`` (d = 384) and ``dinov2-vitb14`` (d = 768): timm's ``vit_small_patch14_dinov2`` /
  ``vit_base_patch14_dinov2`` architecture (``pretrained=False``) at 224 px, loading Meta's published state
  dict (``dinov2_vits14_pretrain.pth``; Oquab et al. 2023). timm's ``checkpoint_filter_fn`` converts the
  original keys (drops ``mask_token``) and resamples the 37×37 position grid to 16×16 — the same
  conversion timm applies to its own download. Output: the final-norm CLS token, as in Stein et al. 2023.
- ``swav-resnet50`` (d = 2048): torchvision's ``resnet50`` loading SwAV's published state dict
  (``swav_800ep_pretrain.pth.tar``; Caron et al. 2020): the ``module.`` prefixes are stripped and the
  projection head and prototypes dropped. Output: the global-average-pooled 2048-d features (``fc`` removed).

The grey→RGB boundary of the last two is :func:`ctqc.qc.pixels.to_normalised_rgb`: the grey channel is
copied to R, G and B, mapped from [-1, 1] to [0, 1], resized (bicubic, antialiased) and normalised with
ImageNet's mean/std, which both were trained with. A missing or malformed file raises
:class:`~ctqc.errors.UserError` naming ``qc.weights.<name>`` and the expected format
(:data:`ctqc.pretrained.PRETRAINED_WEIGHTS`). Loaded networks are kept for later calls.
timm, torchvision and torch-fidelity are imported inside functions (seconds each).
"""

from __future__ import annotations

import functools
import hashlib
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ctqc.errors import UserError
from ctqc.pretrained import PRETRAINED_WEIGHTS
from ctqc.qc.pixels import IMAGENET_MEAN, IMAGENET_STD, to_normalised_rgb, to_uint8_rgb

BATCH_SIZE = 32


def _dinov2(arch: str) -> Callable[[], torch.nn.Module]:
    def build() -> torch.nn.Module:
        import timm

        return timm.create_model(arch, pretrained=False, num_classes=0, img_size=224)

    return build


def _resnet50() -> torch.nn.Module:
    import torchvision

    return torchvision.models.resnet50(weights=None)


@dataclass(frozen=True)
class Pretrained:
    """One extractor: its family (how the file is read), the architecture's builder and its input size in px."""

    family: str  # "clip" | "dinov2" | "swav"
    build: Callable[[], torch.nn.Module] | None = None  # None for CLIP: torch-fidelity builds it from the file
    size: int = 224


SPECS: dict[str, Pretrained] = {
    "clip-vit-b-32": Pretrained("clip"),
    "clip-vit-l-14-336px": Pretrained("clip", size=336),
    "dinov2-vits14": Pretrained("dinov2", _dinov2("vit_small_patch14_dinov2")),
    "dinov2-vitb14": Pretrained("dinov2", _dinov2("vit_base_patch14_dinov2")),
    "swav-resnet50": Pretrained("swav", _resnet50),
}
assert SPECS.keys() == PRETRAINED_WEIGHTS.keys()


def refuse(name: str, path: Path | str, problem: str) -> UserError:
    """The one-line error for a bad ``qc.weights.<name>`` file: the key, the file, what is wrong, what is expected."""
    return UserError(f"qc.weights.{name}: {path}: {problem}; expected {PRETRAINED_WEIGHTS[name]}")


def _short(exc: BaseException) -> str:
    """The loader's complaint on one line, at most ~90 characters."""
    text = " ".join(f"{type(exc).__name__}: {exc}".split())
    return text if len(text) <= 90 else text[:89] + "…"


def weights_digest(path: Path | str) -> str:
    """16-hex-digit SHA-256 of the file's bytes (names the feature cache: different weights never share one)."""
    path = Path(path)
    stat = path.stat()
    return _digest(str(path.resolve()), stat.st_size, stat.st_mtime_ns)


@functools.lru_cache(maxsize=16)
def _digest(path: str, size: int, mtime_ns: int) -> str:  # size and mtime: a rewritten file is hashed again
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


def pretrained_features(images: torch.Tensor, name: str, weights: Path | str) -> np.ndarray:
    """Features of N×1×H×W float images in [-1, 1] by extractor ``name`` with the weights file ``weights``: N×d float64.

    Raises ValueError for images of another shape or an unknown name, UserError for a missing or malformed file.
    """
    if name not in SPECS:
        raise ValueError(f"unknown pretrained extractor {name!r}; choose from {', '.join(SPECS)}")
    if images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"expected N×1×H×W images, got {tuple(images.shape)}")
    path = Path(weights).expanduser()
    if not path.is_file():
        raise refuse(name, path, "file not found")
    spec = SPECS[name]
    model = load(name, path)
    batches = []
    with torch.inference_mode():
        for batch in images.cpu().split(BATCH_SIZE):
            if spec.family == "clip":
                batches.append(model(to_uint8_rgb(batch))[0].float())
            else:
                batches.append(model(to_normalised_rgb(batch, spec.size, IMAGENET_MEAN, IMAGENET_STD)).float())
    if not batches:
        return np.empty((0, 0))
    return torch.cat(batches).double().numpy()


def load(name: str, path: Path) -> torch.nn.Module:
    """The network of extractor ``name`` with the weights in ``path``, in eval mode (cached per file version)."""
    stat = path.stat()
    return _load(name, str(path.resolve()), stat.st_size, stat.st_mtime_ns, SPECS[name])


@functools.lru_cache(maxsize=4)
def _load(name: str, path: str, size: int, mtime_ns: int, spec: Pretrained) -> torch.nn.Module:
    if spec.family == "clip":
        model = _load_clip(name, path)
    else:
        state = _read_state_dict(name, path)
        model = spec.build()
        state = _dinov2_state(name, path, state, model) if spec.family == "dinov2" else _swav_state(state)
        if spec.family == "swav":
            model.fc = torch.nn.Identity()
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:  # missing/unexpected keys or wrong shapes: another architecture's file
            raise refuse(name, path, f"does not fit the architecture ({_short(exc)})") from None
    return model.eval().requires_grad_(False)


def _load_clip(name: str, path: str) -> torch.nn.Module:
    from torch_fidelity.feature_extractor_clip import FeatureExtractorCLIP

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch.jit.load's deprecation notice
            return FeatureExtractorCLIP(name, ["clip"], feature_extractor_weights_path=path)
    except (RuntimeError, KeyError, ValueError, AttributeError) as exc:  # not TorchScript, or not CLIP's parameters
        raise refuse(name, path, f"not a CLIP TorchScript file ({_short(exc)})") from None


def _read_state_dict(name: str, path: str) -> dict[str, torch.Tensor]:
    """A torch.save'd dict of tensors (optionally under 'state_dict' or 'model'); refused otherwise."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - pickle, zip and tensor errors alike mean "not this format"
        raise refuse(name, path, f"cannot be read as a PyTorch state dict ({type(exc).__name__})") from None
    if isinstance(state, dict) and not any(isinstance(v, torch.Tensor) for v in state.values()):
        state = state.get("state_dict", state.get("model", state))
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise refuse(name, path, "not a dict of tensors")
    return state


def _dinov2_state(name: str, path: str, state: dict[str, torch.Tensor], model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Meta's DINOv2 keys → timm's, by timm's own ``checkpoint_filter_fn`` (drops mask_token, resamples pos_embed)."""
    from timm.models.vision_transformer import checkpoint_filter_fn

    if "cls_token" not in state or "pos_embed" not in state:
        raise refuse(name, path, "no cls_token/pos_embed: not a DINOv2 ViT state dict")
    try:
        return checkpoint_filter_fn(dict(state), model)
    except (RuntimeError, ValueError, KeyError, IndexError) as exc:
        raise refuse(name, path, f"does not fit the architecture ({_short(exc)})") from None


def _swav_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """SwAV's keys → torchvision's: strip ``module.``, drop the projection head and prototypes (not image features)."""
    out = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        if not key.startswith(("projection_head.", "prototypes.")):
            out[key] = value
    return out
