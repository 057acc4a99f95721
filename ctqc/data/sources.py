"""Load labelled images from a folder + CSV, a MedMNIST-style ``.npz`` or the built-in phantoms.

Every problem a user can fix raises :class:`UserError` naming the file, column
or id. Nothing is written here: loading has no side effects.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from ctqc.config import DataConfig
from ctqc.data.dataset import DataSource, LabelledImages
from ctqc.data.images import IMAGE_EXTENSIONS, ImageInfo, preprocess, read_image
from ctqc.errors import UserError

_NPZ_SPLITS = ("train", "val", "test")
_SAFE_ID = re.compile(r"^[^/\\\x00]+$")


def load_dataset(cfg: DataConfig, require_all_classes: bool = True) -> LabelledImages:
    """Load and preprocess the labelled images described by ``cfg``.

    ``require_all_classes=False`` accepts a set that covers only some of the configured
    classes (e.g. another generator's output for the positive class only).
    """
    kind = _detect_kind(cfg)
    if kind == "phantom":
        data = _load_phantoms(cfg)
    elif kind == "npz":
        data = _load_npz(cfg)
    else:
        data = _load_folder(cfg)
    if require_all_classes:
        _check_classes(cfg, data.labels, data.source.location)
    return data


def _check_classes(cfg: DataConfig, labels: np.ndarray, location: str) -> None:
    present = set(labels.tolist())
    absent = [f"{k} ({n})" for k, n in cfg.classes.items() if k not in present]
    if len(present) < 2:
        raise UserError(f"{location}: only one class present ({cfg.classes[labels[0]]}); ctqc needs at least two")
    if absent:
        raise UserError(f"{location}: no images of configured class(es) {', '.join(absent)}; remove them from data.classes")


def _detect_kind(cfg: DataConfig) -> str:
    if cfg.format == "phantom" or (cfg.format == "auto" and cfg.path is None):
        return "phantom"
    if cfg.path is None:
        raise UserError(f"data.format={cfg.format} needs a path: pass --data PATH or set data.path")
    if not cfg.path.exists():
        raise UserError(f"data path not found: {cfg.path}")
    if cfg.format != "auto":
        return cfg.format
    if cfg.path.is_file():
        if cfg.path.suffix.lower() == ".npz":
            return "npz"
        raise UserError(f"{cfg.path}: expected a folder with images and {cfg.labels_csv}, or a .npz file")
    return "folder"


# --------------------------------------------------------------------- folder + CSV


def _load_folder(cfg: DataConfig) -> LabelledImages:
    assert cfg.path is not None
    root = cfg.path
    if not root.is_dir():
        raise UserError(f"{root}: expected a folder with images and {cfg.labels_csv}")
    if not any(root.iterdir()):
        raise UserError(f"data folder is empty: {root} (expected images and {cfg.labels_csv})")
    subfolders = _class_subfolders(root, cfg)
    if subfolders and not (root / cfg.labels_csv).is_file():
        return _load_class_subfolders(cfg, root, subfolders)
    table = _read_labels_csv(root / cfg.labels_csv, cfg)
    csv_name = root / cfg.labels_csv
    images_dir = _find_images_dir(root, cfg, table["ids"])
    files = _index_image_files(images_dir, root)

    warnings: list[str] = []
    paths = []
    missing = [i for i in table["ids"] if _id_key(i) not in files]
    if missing:
        shown = ", ".join(repr(m) for m in missing[:5])
        raise UserError(
            f"{csv_name}: {len(missing)} id(s) have no image in {images_dir} (e.g. {shown}; looked for "
            f"{'/'.join(IMAGE_EXTENSIONS)}); add the images or remove the rows"
        )
    for i in table["ids"]:
        candidates = files[_id_key(i)]
        if len(candidates) > 1:
            names = ", ".join(p.name for p in candidates)
            raise UserError(f"{images_dir}: id {i!r} matches several files ({names}); keep one")
        paths.append(candidates[0])
    labelled = {_id_key(i) for i in table["ids"]}
    unlabelled = sorted(p.name for key, ps in files.items() if key not in labelled for p in ps)
    if unlabelled:
        msg = f"{len(unlabelled)} image(s) in {images_dir} have no row in {csv_name} (e.g. {', '.join(unlabelled[:3])})"
        if cfg.unlabelled_images == "error":
            raise UserError(f"{msg}; add them to the CSV or set data.unlabelled_images=skip")
        warnings.append(f"{msg}; skipped")

    return _read_files(cfg, root, table["ids"], table["labels"], table["groups"], paths, str(images_dir), warnings)


def _read_files(cfg: DataConfig, root: Path, ids, labels, groups, paths: list[Path], images_dir: str, warnings: list[str]) -> LabelledImages:
    arrays, infos, digests = [], [], []
    for path in paths:
        raw = path.read_bytes()
        digests.append(hashlib.sha256(raw).hexdigest())
        gray, info = read_image(path, max_pixels=cfg.max_image_pixels, intensity=cfg.intensity, dicom=cfg.dicom)
        arrays.append(gray)
        infos.append(info)
    warnings += _duplicate_warnings(ids, digests)
    return _assemble(
        cfg,
        ids=ids,
        labels=labels,
        groups=groups,
        arrays=arrays,
        infos=infos,
        digests=digests,
        kind="folder",
        location=str(root),
        images_dir=images_dir,
        warnings=warnings,
        files=tuple(str(p.relative_to(root)) for p in paths),
    )


def _class_subfolders(root: Path, cfg: DataConfig) -> dict[int, Path]:
    """Subfolders named after configured classes (name or key, any case): ``normal/``, ``1/``..."""
    names = {name.lower(): key for key, name in cfg.classes.items()} | {str(key): key for key in cfg.classes}
    return {names[p.name.lower()]: p for p in sorted(root.iterdir()) if p.is_dir() and p.name.lower() in names}


def _load_class_subfolders(cfg: DataConfig, root: Path, subfolders: dict[int, Path]) -> LabelledImages:
    """Labels from the folder each image is in; ids are ``<folder>_<file stem>``."""
    ids, labels, paths = [], [], []
    for key, folder in sorted(subfolders.items()):
        for stem, candidates in sorted(_index_image_files(folder, root).items()):
            if len(candidates) > 1:
                raise UserError(f"{folder}: {', '.join(p.name for p in candidates)} share the name {stem!r}; keep one")
            ids.append(f"{folder.name}_{candidates[0].stem}")
            labels.append(key)
            paths.append(candidates[0])
    if not paths:
        raise UserError(f"{root}: class subfolders ({', '.join(p.name for p in subfolders.values())}) hold no images ({'/'.join(IMAGE_EXTENSIONS)})")
    return _read_files(cfg, root, tuple(ids), np.asarray(labels, dtype=np.int64), None, paths, str(root), [])


def _read_labels_csv(path: Path, cfg: DataConfig) -> dict:
    """Read ids, labels and groups; the Kaggle header ``id, hemorrhage`` (with a space) is fine."""
    import pandas as pd

    if not path.is_file():
        folders = ", ".join(f"{name}/" for name in cfg.classes.values())
        raise UserError(f"labels CSV not found: {path} (set data.labels_csv=NAME if it is called otherwise, or put the images in class subfolders {folders})")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, skipinitialspace=True, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise UserError(f"{path}: cannot read as CSV ({reason})") from None
    df.columns = [str(c).strip() for c in df.columns]
    columns = list(df.columns)
    for role, name in (("id", cfg.id_column), ("group", cfg.group_column)):
        if name is not None and name not in columns:
            raise UserError(f"{path}: no {role} column {name!r} (columns: {', '.join(columns)}); set data.{role}_column=NAME")
    label_column = cfg.label_column
    if label_column is None:
        others = [c for c in columns if c not in (cfg.id_column, cfg.group_column)]
        if len(others) != 1:
            found = ", ".join(others) if others else "none"
            raise UserError(f"{path}: cannot tell which column holds the labels (candidates: {found}); set data.label_column=NAME")
        label_column = others[0]
    elif label_column not in columns:
        raise UserError(f"{path}: no label column {label_column!r} (columns: {', '.join(columns)}); set data.label_column=NAME")
    if len(df) == 0:
        raise UserError(f"{path}: has a header but no rows")

    ids = [s.strip() for s in df[cfg.id_column]]
    for row, i in enumerate(ids, start=2):  # row 1 is the header
        if not i:
            raise UserError(f"{path}: row {row} has an empty id")
        if not _SAFE_ID.match(i) or i in (".", "..") or ".." in Path(i).parts:
            raise UserError(f"{path}: row {row}: id {i!r} is not a plain file name (ids must not contain path separators)")
    keys = [_id_key(i) for i in ids]
    counts = Counter(keys)
    dupes = sorted({i for i, k in zip(ids, keys) if counts[k] > 1})
    if dupes:
        raise UserError(f"{path}: duplicate id(s) {', '.join(repr(d) for d in dupes[:5])}; each image must appear once")
    labels = np.array([_parse_label(v, row, path, cfg.classes) for row, v in enumerate(df[label_column], start=2)])
    groups = None
    if cfg.group_column is not None:
        groups = tuple(s.strip() for s in df[cfg.group_column])
        if any(not g for g in groups):
            raise UserError(f"{path}: empty value in group column {cfg.group_column!r}")
    return {"ids": tuple(ids), "labels": labels.astype(np.int64), "groups": groups}


def _parse_label(value: str, row: int, path: Path, classes: dict[int, str]) -> int:
    text = value.strip()
    by_name = {name.lower(): key for key, name in classes.items()}
    try:
        number = float(text)
        key = int(number) if number.is_integer() else None
    except ValueError:
        key = by_name.get(text.lower())
    if key is None or key not in classes:
        allowed = ", ".join(f"{k} ({n})" for k, n in classes.items())
        raise UserError(f"{path}: row {row}: label {text!r} is not a configured class ({allowed}); fix it or set data.classes")
    return key


def _id_key(identifier: str) -> str:
    """Match ids to file stems: '007', '7' and 7 are the same image; other ids match exactly."""
    return str(int(identifier)) if identifier.isdigit() else identifier


def _find_images_dir(root: Path, cfg: DataConfig, ids: tuple[str, ...]) -> Path:
    root_resolved = root.resolve()
    if cfg.images_dir is not None:
        candidate = (root / cfg.images_dir).resolve()
        if not candidate.is_relative_to(root_resolved):
            raise UserError(f"data.images_dir={cfg.images_dir!r} leaves the data folder {root}")
        if not candidate.is_dir():
            raise UserError(f"images folder not found: {root / cfg.images_dir} (data.images_dir)")
        return root / cfg.images_dir
    # The Kaggle archive nests images one or two levels down (head_ct/ or head_ct/head_ct/).
    wanted = {_id_key(i) for i in ids}
    candidates = [root] + sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    candidates += sorted(q for p in candidates[1:] for q in p.iterdir() if q.is_dir() and not q.name.startswith("."))
    best, best_hits = root, -1
    for directory in candidates:
        hits = sum(
            1
            for p in directory.iterdir()
            if p.suffix.lower() in IMAGE_EXTENSIONS and _id_key(p.stem) in wanted
        )
        if hits > best_hits:
            best, best_hits = directory, hits
    if best_hits <= 0:
        raise UserError(
            f"{root}: no image files named after the ids in {cfg.labels_csv} "
            f"(e.g. {ids[0]}.png) here or in a subfolder; set data.images_dir=SUBFOLDER"
        )
    return best


def _index_image_files(directory: Path, root: Path) -> dict[str, list[Path]]:
    """Map id key → image files in ``directory``; refuse files that resolve outside ``root``."""
    root_resolved = root.resolve()
    files: dict[str, list[Path]] = defaultdict(list)
    for p in sorted(directory.iterdir()):
        if p.suffix.lower() not in IMAGE_EXTENSIONS or not p.is_file():
            continue
        if not p.resolve().is_relative_to(root_resolved):
            raise UserError(f"{p}: links outside the data folder {root}; copy the file in instead")
        files[_id_key(p.stem)].append(p)
    return files


def _duplicate_warnings(ids, digests: list[str]) -> list[str]:
    warnings = []
    seen: dict[str, str] = {}
    for i, digest in zip(ids, digests):
        if digest in seen:
            warnings.append(f"ids {seen[digest]!r} and {i!r} are byte-identical files (possible leak between splits)")
        seen.setdefault(digest, i)
    return warnings


# --------------------------------------------------------------------- npz


def _load_npz(cfg: DataConfig) -> LabelledImages:
    assert cfg.path is not None
    path = cfg.path
    try:
        # allow_pickle=False: an .npz must never execute code when loaded.
        with np.load(path, allow_pickle=False) as npz:
            content = {k: npz[k] for k in npz.files}
    except (ValueError, OSError, EOFError) as exc:
        raise UserError(f"{path}: not a readable .npz file ({str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__})") from None
    present = [s for s in _NPZ_SPLITS if f"{s}_images" in content]
    if not present:
        raise UserError(f"{path}: no 'train_images'/'val_images'/'test_images' arrays (found: {', '.join(content) or 'none'})")
    ids, labels, arrays, infos = [], [], [], []
    for split in present:
        images, key = content[f"{split}_images"], f"{split}_labels"
        if key not in content:
            raise UserError(f"{path}: has '{split}_images' but no '{key}'")
        lab = content[key]
        if lab.ndim == 2 and lab.shape[1] == 1:
            lab = lab[:, 0]
        if lab.ndim != 1 or len(lab) != len(images):
            raise UserError(f"{path}: '{key}' has shape {lab.shape}; expected one class label per image ({len(images)})")
        if images.ndim == 4 and images.shape[-1] in (1, 3, 4):
            images = images[..., :3].mean(axis=-1) if images.shape[-1] > 1 else images[..., 0]
        if images.ndim != 3:
            raise UserError(f"{path}: '{split}_images' has shape {images.shape}; expected N×H×W or N×H×W×C")
        _check_pixel_count_npz(path, images, cfg.max_image_pixels)
        full = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(images.dtype)
        for n, (img, y) in enumerate(zip(images, lab)):
            if not float(y).is_integer() or int(y) not in cfg.classes:
                allowed = ", ".join(f"{k} ({v})" for k, v in cfg.classes.items())
                raise UserError(f"{path}: {key}[{n}] = {y} is not a configured class ({allowed}); set data.classes")
            arr = img.astype(np.float32)
            gray = np.clip(arr / full, 0, 1) if full and cfg.intensity == "absolute" else _minmax(arr)
            ids.append(f"{split}_{n:05d}")
            labels.append(int(y))
            arrays.append(gray.astype(np.float32))
            infos.append(ImageInfo(width=img.shape[1], height=img.shape[0], mode=str(images.dtype), format="npz"))
    digest = _file_sha256(path)
    return _assemble(
        cfg,
        ids=tuple(ids),
        labels=np.array(labels, dtype=np.int64),
        groups=None,
        arrays=arrays,
        infos=infos,
        digests=[digest] * len(ids),
        kind="npz",
        location=str(path),
        images_dir=None,
        warnings=[],
    )


def _check_pixel_count_npz(path: Path, images: np.ndarray, max_pixels: int) -> None:
    h, w = images.shape[1:3]
    if h * w > max_pixels:
        raise UserError(f"{path}: images are {w}×{h} pixels, over data.max_image_pixels={max_pixels:,}")


def _minmax(arr: np.ndarray) -> np.ndarray:
    lo, hi = float(arr.min()), float(arr.max())
    return np.zeros_like(arr) if hi <= lo else (arr - lo) / (hi - lo)


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# --------------------------------------------------------------------- phantoms


def _load_phantoms(cfg: DataConfig) -> LabelledImages:
    from ctqc.phantoms import PhantomSpec, generate_phantoms

    p = cfg.phantom
    if sorted(cfg.classes) != [0, 1]:
        raise UserError("the built-in phantom data has two classes, 0 and 1; data.classes must use those keys")
    phantoms = generate_phantoms(PhantomSpec(n_per_class=p.n_per_class, size=p.size, seed=p.seed, difficulty=p.difficulty))
    arrays = [img.astype(np.float32) / 255.0 for img in phantoms.images]
    digests = [hashlib.sha256(img.tobytes()).hexdigest() for img in phantoms.images]
    infos = [ImageInfo(width=p.size, height=p.size, mode="L", format="array")] * len(arrays)
    return _assemble(
        cfg,
        ids=tuple(phantoms.ids),
        labels=phantoms.labels.astype(np.int64),
        groups=None,
        arrays=arrays,
        infos=infos,
        digests=digests,
        kind="phantom",
        location="built-in phantoms",
        images_dir=None,
        warnings=[],
    )


# --------------------------------------------------------------------- common


def _assemble(cfg: DataConfig, *, ids, labels, groups, arrays, infos, digests, kind, location, images_dir, warnings, files=()) -> LabelledImages:
    import torch

    if len(ids) == 0:
        raise UserError(f"{location}: no images")
    images = torch.stack([preprocess(a, cfg.image_size) for a in arrays]) if arrays else torch.empty(0, 1, cfg.image_size, cfg.image_size)
    content = hashlib.sha256()
    for i, y, d, g in zip(ids, labels.tolist(), digests, groups or [None] * len(ids)):
        content.update(f"{i}\t{y}\t{g}\t{d}\n".encode())
    if kind == "phantom":
        content.update(json.dumps(cfg.phantom.model_dump(), sort_keys=True).encode())
    content_hash = content.hexdigest()
    settings = {
        "image_size": cfg.image_size,
        "intensity": cfg.intensity,
        "dicom_window": cfg.dicom.level_width(),
        "classes": cfg.classes,
        "preprocessing": "gray,pad-square-black,resize-bilinear-antialias,[-1,1]",
    }
    fingerprint = hashlib.sha256((content_hash + json.dumps(settings, sort_keys=True)).encode()).hexdigest()
    source = DataSource(
        kind=kind,
        location=location,
        images_dir=images_dir,
        content_hash=content_hash[:16],
        fingerprint=fingerprint[:16],
        image_info=tuple(infos),
        warnings=tuple(warnings),
        files=files,
    )
    return LabelledImages(
        ids=tuple(ids),
        labels=labels,
        images=images,
        class_names=dict(cfg.classes),
        groups=groups,
        source=source,
    )
