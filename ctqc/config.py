"""Typed configuration: YAML presets validated into pydantic models.

The libraries own their settings (``gan.config.GanConfig``,
``classify.config.ClassifierConfig``); this module composes them with the data,
split, QC, comparison and run settings into one :class:`Config`.

Defaults live in one place, the model fields below; ``configs/default.yaml``
only names itself, ``paper.yaml`` and ``smoke.yaml`` override what differs.
Unknown keys and bad values raise :class:`~ctqc.errors.UserError` naming the
dotted key. Dotted overrides (``--set gan.epochs=10``) are parsed as YAML
scalars and applied before validation.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from classify.config import ClassifierConfig
from ctqc.arms import ARMS, FILTER_ARMS, FILTER_STRATEGIES, RATIO_ARM_PREFIX, arm_ratio, arm_strategy, ratio_arm, strategy_arm  # noqa: F401 (re-exported)
from ctqc.errors import UserError
from ctqc.pretrained import CMMD_EXTRACTOR, METRIC_EXTRACTORS, PRETRAINED, PRETRAINED_WEIGHTS
from gan.config import GanConfig

#: DICOM display windows as (level, width) in Hounsfield units.
WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "brain": (40.0, 80.0),
    "subdural": (75.0, 215.0),
    "bone": (600.0, 2800.0),
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DicomConfig(_Strict):
    """How Hounsfield units (DICOM, and HU rasters/arrays) become display intensities."""

    window: Literal["brain", "subdural", "bone", "custom"] = "brain"
    level: float | None = None  # HU, only with window=custom
    width: float | None = Field(None, gt=0)  # HU, only with window=custom

    @model_validator(mode="after")
    def _custom_needs_level_and_width(self) -> DicomConfig:
        custom = self.window == "custom"
        given = self.level is not None or self.width is not None
        if custom and (self.level is None or self.width is None):
            raise ValueError("window=custom needs both data.dicom.level and data.dicom.width")
        if given and not custom:
            raise ValueError("data.dicom.level/width are only used with data.dicom.window=custom")
        return self

    def level_width(self) -> tuple[float, float]:
        if self.window == "custom":
            assert self.level is not None and self.width is not None
            return self.level, self.width
        return WINDOW_PRESETS[self.window]


class PhantomConfig(_Strict):
    """The built-in procedural head-CT dataset, used when no ``data.path`` is given."""

    n_per_class: int = Field(100, ge=3, le=100_000)
    size: int = Field(256, ge=16, le=1024)  # rendered size in px, before preprocessing
    seed: int = Field(0, ge=0)
    difficulty: float = Field(0.5, ge=0.0, le=1.0)


class DataConfig(_Strict):
    """Where the labelled real images come from and how they are preprocessed."""

    path: Path | None = None  # folder (images + labels CSV) or .npz; None → built-in phantoms
    format: Literal["auto", "folder", "npz", "phantom"] = "auto"
    labels_csv: str = "labels.csv"  # relative to path
    images_dir: str | None = None  # relative to path; None → auto-detect
    id_column: str = "id"
    label_column: str | None = None  # None → the one column that is neither id nor group
    group_column: str | None = None  # patient id: splits keep a group together
    classes: dict[int, str] = Field(default_factory=lambda: {0: "normal", 1: "haemorrhage"})
    image_size: Literal[32, 64, 128, 256] = 32
    unlabelled_images: Literal["error", "skip"] = "error"
    # 16/32-bit integer and float images (docs/data.md): "absolute" keeps absolute intensities
    # (0..65535 → /65535, float [0, 1] kept, float [0, 255] → /255, signed values that look
    # like Hounsfield units → the data.dicom.window, as DICOM); "hu" treats every such image
    # as Hounsfield units; "per_image" stretches each image's min..max to 0..1.
    intensity: Literal["absolute", "per_image", "hu"] = "absolute"
    max_image_pixels: int = Field(50_000_000, gt=0)  # decompression-bomb guard
    dicom: DicomConfig = Field(default_factory=DicomConfig)
    phantom: PhantomConfig = Field(default_factory=PhantomConfig)

    @field_validator("classes")
    @classmethod
    def _at_least_two_named_classes(cls, classes: dict[int, str]) -> dict[int, str]:
        if len(classes) < 2:
            raise ValueError("needs at least two classes")
        names = [str(n).strip() for n in classes.values()]
        if any(not n for n in names):
            raise ValueError("class names must not be empty")
        if len(set(names)) != len(names):
            raise ValueError("class names must be unique")
        return dict(sorted((int(k), str(v).strip()) for k, v in classes.items()))


class SplitConfig(_Strict):
    """Train / val / test partition. Fractions default to the paper's 144 / 34 / 22 of 200."""

    scheme: Literal["holdout", "kfold"] = "holdout"
    val_fraction: float = Field(0.17, gt=0.0, lt=1.0)
    test_fraction: float = Field(0.11, gt=0.0, lt=1.0)  # holdout only; k-fold tests 1/folds
    folds: int = Field(5, ge=2, le=50)
    repeats: int = Field(1, ge=1, le=100)
    seed: int | None = None  # None → the top-level seed

    @model_validator(mode="after")
    def _leaves_training_images(self) -> SplitConfig:
        if self.scheme == "holdout" and self.val_fraction + self.test_fraction >= 0.9:
            raise ValueError("val_fraction + test_fraction must leave at least 10 % for training")
        return self


# The arm names and their naming rules live in ctqc.arms (a foundation module: the report reads them too).


class CompareConfig(_Strict):
    """The downstream experiment (``ctqc compare``): arms × folds × seeds of the classifier."""

    seeds: int = Field(3, ge=1, le=1000)  # trainings per arm and fold
    jobs: int = Field(0, ge=0, le=256)  # parallel training processes; 0 = one per CPU core (threads split between them)
    arms: list[Literal[ARMS]] = Field(default_factory=lambda: list(ARMS))  # type: ignore[valid-type]
    test: Literal["wilcoxon", "paired-bootstrap"] = "wilcoxon"  # paired test of arm differences
    n_bootstrap: int = Field(10_000, ge=100)  # resamples for test=paired-bootstrap
    # dose-response: one extra arm per ratio, real + ratio × (real count) synthetic images drawn at random from the
    # pool per class (extended from the fold's generator when the pool is too small); [] = none
    synthetic_ratios: list[float] = Field(default_factory=list)

    @field_validator("synthetic_ratios")
    @classmethod
    def _ratios(cls, ratios: list[float]) -> list[float]:
        bad = [r for r in ratios if not 0 < r <= 20]
        if bad:
            raise ValueError(f"each ratio must be > 0 and ≤ 20 synthetic images per real image (got {bad[0]:g})")
        return sorted(set(float(f"{r:g}") for r in ratios))

    def ratio_arms(self) -> list[str]:
        """The dose-response arms, by increasing ratio."""
        return [ratio_arm(r) for r in self.synthetic_ratios]

    @field_validator("arms")
    @classmethod
    def _unique_arms(cls, arms: list[str]) -> list[str]:
        if not arms:
            raise ValueError("needs at least one arm")
        return list(dict.fromkeys(arms))


class QCConfig(_Strict):
    """QC and filtering (``ctqc filter``): classifier two-sample test and copy checks."""

    # domain = 128-d embedding of a small CNN fitted per fold on the real training images (ctqc.qc.domain).
    # No pixel block by default: with it, patch shuffle and noise removed ~11 % of genuine images on a second
    # self-test seed (goal <= 10 %); without it every goal holds on two seeds (docs/qc-and-filtering.md)
    features: list[Literal["pixels", "fft", "histogram", "structure", "inception", "inception-bf16", "domain"]] = Field(default_factory=lambda: ["fft", "histogram", "structure"])
    classifier: Literal["logreg", "forest"] = "logreg"
    # C2ST: PCA of the pixel block, or of all columns without one, fitted inside each fold; 0 = no PCA. The MMD,
    # diversity and label classifier reduce a pixel block only (without one they only standardise)
    pca_components: int = Field(32, ge=0)
    # inverse L2 strength of the logistic regression: "auto" = by inner CV on log-loss, or a number (Platt-calibrated either way)
    c2st_c: Union[Literal["auto"], Annotated[float, Field(gt=0)]] = "auto"
    n_splits: int = Field(5, ge=2, le=20)
    n_repeats: int = Field(3, ge=1, le=20)
    n_permutations: int = Field(200, ge=0)
    n_jobs: int = Field(2, ge=1, le=64)  # processes for the permutation test
    c2st_threshold: float = Field(0.6, gt=0, lt=1)  # drop images with p(synthetic) above this
    # strategies ctqc filter runs (--strategy adds more); the first is the default: filter/kept.csv, original+filtered
    filter_strategies: list[Literal[FILTER_STRATEGIES]] = Field(default_factory=lambda: ["realism"], min_length=1)  # type: ignore[valid-type]
    label_threshold: float = Field(0.5, gt=0, lt=1)  # label strategy: keep images with p(generated class) at least this
    memorisation: bool = True
    embeddings: list[Literal["tsne", "umap"]] = Field(default_factory=lambda: ["tsne", "umap"])  # [] = none
    copy_percentile: float = Field(1.0, gt=0, lt=50)  # flag copies closer than this percentile of held-out real images
    copy_max_shift: int = Field(1, ge=0, le=4)  # px of shift searched by the copy check
    # duplicates within the pool: pixel correlation ≥ dedup_threshold over the copy check's flips and shifts;
    # all but the first image of each group rejected as "duplicate" (ctqc.qc.dedup); false = no check
    dedup: bool = True
    dedup_threshold: float = Field(0.99, gt=0, le=1)
    # ctqc qc: FID / KID / precision-recall features (inception = torch-fidelity's exact fp32
    # network; inception-bf16 = the same weights, BN folded, bfloat16: faster, ~2 % feature error;
    # domain = the CT encoder above: not comparable with published FIDs, but it knows CT)
    # One name, or a list compared side by side (the first is the headline); pretrained ones need qc.weights.<name>.
    metric_features: Annotated[list[Literal[METRIC_EXTRACTORS]], BeforeValidator(lambda v: [v] if isinstance(v, str) else v)] = Field(default_factory=lambda: ["inception"], min_length=1)  # type: ignore[valid-type]
    weights: dict[Literal[PRETRAINED], str] = Field(default_factory=dict)  # type: ignore[valid-type]  # name → local file; never downloaded
    reject_inauthentic: bool = False  # filter: also reject images the authenticity test (Alaa et al. 2022) calls copies
    n_bootstrap: int = Field(200, ge=0, le=10000)  # bootstrap replicates for the metrics' 95 % CIs

    @field_validator("weights")
    @classmethod
    def _files_exist(cls, weights: dict[str, str]) -> dict[str, str]:  # made absolute: the run's saved config works from any folder
        for name, path in weights.items():
            if not Path(path).expanduser().is_file():
                raise ValueError(f"qc.weights.{name}: file not found: {path}; expected {PRETRAINED_WEIGHTS[name]}")
        return {name: str(Path(path).expanduser().absolute()) for name, path in weights.items()}

    @model_validator(mode="after")
    def _weights_given(self) -> QCConfig:
        """Every pretrained metric extractor has a weights file (one line naming the key), none is listed twice."""
        for name in (n for n in self.metric_features if n in PRETRAINED_WEIGHTS and n not in self.weights):
            raise ValueError(f"qc.weights.{name} is not set: give the local file ({PRETRAINED_WEIGHTS[name]}); ctqc never downloads")
        if len(set(self.metric_features)) != len(self.metric_features):
            raise ValueError("qc.metric_features lists an extractor twice")
        return self

    def metric_extractors(self) -> list[str]:
        """The extractors the QC metrics are computed on: ``metric_features``, plus CMMD's CLIP when its weights are given."""
        return [*self.metric_features, *([CMMD_EXTRACTOR] if CMMD_EXTRACTOR in self.weights and CMMD_EXTRACTOR not in self.metric_features else [])]

    @property
    def default_strategy(self) -> str:
        """The strategy whose kept set is ``filter/kept.csv`` and the ``original+filtered`` arm."""
        return self.filter_strategies[0]


class RunConfig(_Strict):
    root: Path = Path("runs")  # run directories are created under here


class Config(_Strict):
    name: str = "default"
    seed: int = 0
    device: Literal["auto", "cpu", "cuda", "mps"] = "auto"
    data: DataConfig = Field(default_factory=DataConfig)
    split: SplitConfig = Field(default_factory=SplitConfig)
    gan: GanConfig = Field(default_factory=GanConfig)
    classifier: ClassifierConfig = Field(default_factory=ClassifierConfig)
    compare: CompareConfig = Field(default_factory=CompareConfig)
    qc: QCConfig = Field(default_factory=QCConfig)
    run: RunConfig = Field(default_factory=RunConfig)

    @field_validator("name")
    @classmethod
    def _usable_in_a_folder_name(cls, name: str) -> str:
        """Run folders are ``<timestamp>-<name>``: the name must stay one plain path component."""
        if not name.strip() or any(c in "/\\" or ord(c) < 32 for c in name):
            raise ValueError("must be usable as a folder name: not empty, no '/', '\\' or control characters")
        return name

    @model_validator(mode="after")
    def _paper_gan_is_32px(self) -> Config:
        if self.gan.architecture == "paper" and self.data.image_size != 32:
            raise ValueError("gan.architecture=paper generates 32×32 only; set data.image_size=32 or gan.architecture=strided")
        return self

    @property
    def split_seed(self) -> int:
        return self.seed if self.split.seed is None else self.split.seed

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)

    def hash(self) -> str:
        """Content hash of the resolved config (stable across key order)."""
        blob = json.dumps(self.to_dict(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def presets_dir() -> Path:
    """The folder of YAML presets.

    In a source checkout (plain, or an editable install) that is ``configs/`` beside
    ``ctqc/``, so a worktree reads its own presets; after a regular install it is the
    copy shipped as the package ``ctqc.presets`` (pyproject.toml maps ``configs/`` onto it).
    """
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "configs").is_dir():
        return checkout / "configs"
    return Path(str(importlib.resources.files("ctqc.presets")))


def preset_names() -> list[str]:
    return sorted(p.stem for p in presets_dir().glob("*.yaml"))


def resolve_config_path(config: str | Path | None) -> Path | None:
    """A preset name (``paper``) or a path to a YAML file; ``None`` → the default preset."""
    if config is None:
        config = "default"
    path = Path(config)
    if path.suffix in (".yaml", ".yml") or path.exists():
        if not path.is_file():
            raise UserError(f"config file not found: {path}")
        return path
    preset = presets_dir() / f"{config}.yaml"
    if preset.is_file():
        return preset
    raise UserError(f"unknown config '{config}': give a YAML path or one of {', '.join(preset_names())}")


def load_config(
    config: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    data: str | Path | None = None,
) -> Config:
    """Load a preset or YAML file, apply ``--set`` overrides and ``--data``, validate."""
    path = resolve_config_path(config)
    raw: dict[str, Any] = {}
    if path is not None:
        raw = _read_yaml(path)
    for item in overrides:
        apply_override(raw, item)
    if data is not None:
        raw.setdefault("data", {})
        if not isinstance(raw["data"], dict):
            raise UserError(f"{path}: key 'data' must be a mapping")
        raw["data"]["path"] = str(data)
    override_keys = [item.partition("=")[0].strip() for item in overrides]
    return validate_config(raw, source=str(path) if path else "config", override_keys=override_keys)


def validate_config(raw: dict[str, Any], source: str = "config", override_keys: list[str] = ()) -> Config:
    """Validate a raw dict; errors name ``--set`` when the bad key came from an override."""
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        keys = {".".join(str(p) for p in err["loc"]) for err in exc.errors()}
        from_overrides = all(any(k == o or k.startswith(o + ".") or o.startswith(k + ".") for o in override_keys) for k in keys)
        raise UserError(f"{'--set' if from_overrides else source}: {describe_validation_error(exc)}") from None


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Apply one ``dotted.key=value`` override to a raw config dict in place."""
    key, sep, value_text = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise UserError(f"--set '{item}': expected KEY=VALUE with a dotted key, e.g. --set gan.epochs=10")
    try:
        value = yaml.safe_load(value_text) if value_text.strip() else ""
    except yaml.YAMLError:
        raise UserError(f"--set {key}: cannot parse value '{value_text}'") from None
    node = raw
    parts = key.split(".")
    for depth, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            raise UserError(f"--set {key}: '{'.'.join(parts[: depth + 1])}' is a value, not a section")
        node = child
    node[parts[-1]] = value


def describe_validation_error(exc: ValidationError) -> str:
    """One line per problem, joined with '; ', each naming the dotted key."""
    messages = []
    for err in exc.errors():
        key = ".".join(str(p) for p in err["loc"]) or "(top level)"
        if err["type"] == "extra_forbidden":
            valid = _valid_keys(err["loc"][:-1])
            hint = f" (valid keys here: {', '.join(valid)})" if valid else ""
            messages.append(f"unknown key '{key}'{hint}")
        elif err["type"] == "value_error" and str(err["ctx"]["error"]).startswith(f"{key}."):  # names its own key
            messages.append(str(err["ctx"]["error"]))
        else:
            given = err.get("input")
            shown = "" if isinstance(given, dict) else f" (got {given!r})"
            messages.append(f"key '{key}': {err['msg']}{shown}")
    return "; ".join(messages)


def _valid_keys(loc: tuple[Any, ...]) -> list[str]:
    model: type[BaseModel] = Config
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return list(model.model_fields)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise UserError(f"{path}:{where} invalid YAML ({getattr(exc, 'problem', exc)})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read config ({exc.__class__.__name__})") from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise UserError(f"{path}: a config must be a YAML mapping of sections, got {type(raw).__name__}")
    return raw
