"""Load labelled images from a folder + CSV, a MedMNIST-style ``.npz`` or the built-in phantoms.

Every problem a user can fix raises :class:`UserError` naming the file, column
or id. Nothing is written here: loading has no side effects.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from ctqc.config import DataConfig
from ctqc.data.dataset import DataSource, LabelledImages
from ctqc.data.images import (
    IMAGE_EXTENSIONS,
    PREPROCESSING_VERSION,
    ImageInfo,
    is_dicom,
    preprocess,
    read_image,
    scale_values,
    why_not_dicom,
)
from ctqc.errors import UserError

_NPZ_SPLITS = ("train", "val", "test")
_SAFE_PART = re.compile(r"^[^/\\\x00]+$")
#: Delimiters a labels CSV may use (spreadsheets in many locales export ';').
_DELIMITERS = ",;\t|"


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
    if not (root / cfg.labels_csv).is_file():
        subfolders = _class_subfolders(root, cfg)
        if subfolders:
            return _load_class_subfolders(cfg, root, subfolders)
    table = _read_labels_csv(root / cfg.labels_csv, cfg)
    csv_name = root / cfg.labels_csv
    images_dir = _find_images_dir(root, cfg, table["ids"], table["folders"])
    _check_id_folders(csv_name, root, images_dir, table["ids"], table["folders"])
    skipped: dict[Path, str] = {}
    files = _index_image_files(images_dir, root, skipped)

    warnings: list[str] = list(table["notes"])
    paths = []
    missing = [i for i in table["ids"] if _id_key(i) not in files]
    if missing:
        shown = ", ".join(repr(m) for m in missing[:5])
        unread = ""
        if skipped:
            first, why = next(iter(skipped.items()))
            unread = f"; {len(skipped)} file(s) without an image extension were not read (e.g. {first.name}: {why})"
        raise UserError(
            f"{csv_name}: {len(missing)} id(s) have no image in {images_dir} (e.g. {shown}; looked for "
            f"{'/'.join(IMAGE_EXTENSIONS)} and DICOM content{unread}); add the images or remove the rows"
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


def class_name_key(name: str) -> str:
    """How folder names are matched to class names: case, spaces/punctuation and the British
    'ae'/'oe' spellings ignored, so ``Hemorrhage/``, ``haemorrhage/`` and ``HAEMORRHAGE/`` are one class."""
    key = re.sub(r"[^0-9a-z]", "", name.lower())
    return key.replace("ae", "e").replace("oe", "e")


def _class_subfolders(root: Path, cfg: DataConfig) -> dict[int, Path]:
    """Subfolders named after configured classes (name or key; see :func:`class_name_key`): ``normal/``, ``1/``...

    Used when there is no labels CSV. A subfolder holding images that matches no class, or two
    subfolders of one class, raise :class:`UserError` listing the folders and how to map them:
    images are never dropped silently.
    """
    names = {class_name_key(name): key for key, name in cfg.classes.items()} | {str(key): key for key in cfg.classes}
    matched: dict[int, Path] = {}
    unmatched = []
    for p in sorted(root.iterdir()):
        if not p.is_dir() or p.name.startswith("."):
            continue
        key = names.get(p.name.strip()) if p.name.strip() in names else names.get(class_name_key(p.name))
        if key is None:
            if _index_image_files(p, root):
                unmatched.append(p.name)
            continue
        if key in matched:
            raise UserError(f"{root}: subfolders {matched[key].name}/ and {p.name}/ both name class {key} ({cfg.classes[key]}); merge them or rename one")
        matched[key] = p
    if unmatched:
        classes = ", ".join(f"{k}: {n}" for k, n in cfg.classes.items())
        folders = ", ".join(f"{n}/" for n in unmatched)
        example = ", ".join(f"{k}: {p.name}" for k, p in matched.items())
        example = "{" + (example + ", " if example else "") + ", ".join(f"{k}: {n}" for k, n in zip((k for k in cfg.classes if k not in matched), unmatched)) + "}"
        lead = f"labels CSV not found: {root / cfg.labels_csv}, and the" if not matched else "the"
        raise UserError(
            f"{root}: {lead} subfolder(s) {folders} hold images but match no class of data.classes ({classes}); "
            f"rename the folders, or map them with data.classes (e.g. --set 'data.classes={example}'), or add {cfg.labels_csv}"
        )
    return matched


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
        delimiter = _sniff_delimiter(path)
        df = pd.read_csv(path, sep=delimiter, dtype=str, keep_default_na=False, skipinitialspace=True, encoding="utf-8-sig")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise UserError(f"{path}: cannot read as CSV ({reason})") from None
    df.columns = [str(c).strip() for c in df.columns]
    notes = []
    configured = (cfg.id_column, cfg.label_column, cfg.group_column)
    for column in list(df.columns):
        # pandas' default index, written by ``df.to_csv(path)``: an unnamed leading column of integers
        if re.fullmatch(r"Unnamed: \d+", column) and column not in configured and all(v.strip().isdigit() for v in df[column]):
            df = df.drop(columns=column)
            notes.append(f"{path.name}: ignored the unnamed integer column (a pandas index)")
    columns = list(df.columns)
    if len(columns) == 1 and any(d in columns[0] for d in _DELIMITERS if d != delimiter):
        raise UserError(f"{path}: one column {columns[0]!r}: the delimiter was not recognised; save it comma-separated")
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

    ids, folders = [], []
    for row, written in enumerate((s.strip() for s in df[cfg.id_column]), start=2):  # row 1 is the header
        if not written:
            raise UserError(f"{path}: row {row} has an empty id")
        parts = re.split(r"[/\\]", written)
        if written[0] in "/\\" or any(not _SAFE_PART.match(p) or p in (".", "..") for p in parts):
            raise UserError(
                f"{path}: row {row}: id {written!r} is not a plain file name "
                "(ids name a file of the images folder: 000, 000.png or images/000.png)"
            )
        ids.append(parts[-1])  # a leading folder is checked against the images folder later
        folders.append("/".join(parts[:-1]) or None)
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
    return {"ids": tuple(ids), "folders": tuple(folders), "labels": labels.astype(np.int64), "groups": groups, "notes": notes}


def _sniff_delimiter(path: Path) -> str:
    """The CSV's delimiter (',', ';', tab or '|') by :class:`csv.Sniffer`; ',' when unsure."""
    with open(path, encoding="utf-8-sig", newline="") as fh:
        sample = fh.read(64 * 1024)
    header = next((line for line in sample.splitlines() if line.strip()), "")
    try:
        found = csv.Sniffer().sniff(sample, delimiters=_DELIMITERS).delimiter
    except csv.Error:
        found = ","
    if found not in header:
        # the sniffer can be fooled by a ragged file; a delimiter absent from the header is not the one
        found = next((d for d in _DELIMITERS if d in header), ",")
    return found


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
    """Match ids to file names: a known image extension is dropped ('007.png' → '007'), and
    '007', '7' and 7 are the same image; other ids match exactly."""
    suffix = Path(identifier).suffix.lower() if "." in identifier else ""
    stem = identifier[: -len(suffix)] if suffix in IMAGE_EXTENSIONS and len(identifier) > len(suffix) else identifier
    return str(int(stem)) if stem.isdigit() else stem


def _find_images_dir(root: Path, cfg: DataConfig, ids: tuple[str, ...], folders: tuple[str | None, ...] = ()) -> Path:
    root_resolved = root.resolve()
    if cfg.images_dir is not None:
        candidate = (root / cfg.images_dir).resolve()
        if not candidate.is_relative_to(root_resolved):
            raise UserError(f"data.images_dir={cfg.images_dir!r} leaves the data folder {root}")
        if not candidate.is_dir():
            raise UserError(f"images folder not found: {root / cfg.images_dir} (data.images_dir)")
        return root / cfg.images_dir
    named = {f for f in folders if f is not None}
    if len(named) == 1:  # ids such as head_ct/000.png name the images folder themselves
        folder = next(iter(named))
        candidate = (root / folder).resolve()
        if candidate.is_relative_to(root_resolved) and candidate.is_dir():
            return root / folder
    # The Kaggle archive nests images one or two levels down (head_ct/ or head_ct/head_ct/).
    wanted = {_id_key(i) for i in ids}
    candidates = [root] + sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    candidates += sorted(q for p in candidates[1:] for q in p.iterdir() if q.is_dir() and not q.name.startswith("."))
    best, best_hits = root, -1
    for directory in candidates:
        hits = sum(1 for key in _index_image_files(directory, root) if key in wanted)
        if hits > best_hits:
            best, best_hits = directory, hits
    if best_hits <= 0:
        raise UserError(
            f"{root}: no image files named after the ids in {cfg.labels_csv} "
            f"(e.g. {ids[0]}.png) here or in a subfolder; set data.images_dir=SUBFOLDER"
        )
    return best


def _check_id_folders(csv_name: Path, root: Path, images_dir: Path, ids, folders) -> None:
    """Ids written with a leading folder (``head_ct/000.png``) must name the images folder."""
    rel = images_dir.relative_to(root).as_posix() if images_dir != root else "."
    for i, folder in zip(ids, folders):
        if folder is not None and not (folder == rel or rel.endswith("/" + folder)):
            raise UserError(f"{csv_name}: id '{folder}/{i}' names the folder {folder!r}, but the images are in {rel!r}; fix the ids or set data.images_dir={folder}")


def _maybe_dicom(p: Path) -> bool:
    """Files named like scanner exports (no extension, or a numeric one: IM0001, slice.001)."""
    return p.suffix == "" or p.suffix[1:].isdigit()


def _index_image_files(directory: Path, root: Path, skipped: dict[Path, str] | None = None) -> dict[str, list[Path]]:
    """Map id key → image files in ``directory``; refuse files that resolve outside ``root``.

    Files with an image extension count; so do files named like scanner exports whose content is
    DICOM (:func:`ctqc.data.images.is_dicom`). Those that are not are put in ``skipped`` with the reason.
    """
    root_resolved = root.resolve()
    files: dict[str, list[Path]] = defaultdict(list)
    for p in sorted(directory.iterdir()):
        if p.name.startswith(".") or not p.is_file():
            continue
        if p.suffix.lower() not in IMAGE_EXTENSIONS:
            if not _maybe_dicom(p) or not p.resolve().is_relative_to(root_resolved):
                continue
            if not is_dicom(p):
                if skipped is not None:
                    skipped[p] = why_not_dicom(p) or "not DICOM"
                continue
        if not p.resolve().is_relative_to(root_resolved):
            raise UserError(f"{p}: links outside the data folder {root}; copy the file in instead")
        files[_id_key(p.name)].append(p)
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
        dtype = str(images.dtype)
        if images.ndim not in (3, 4) or (images.ndim == 4 and images.shape[-1] not in (1, 3, 4)):
            raise UserError(f"{path}: '{split}_images' has shape {images.shape}; expected N×H×W or N×H×W×C (C = 1, 3 or 4)")
        _check_pixel_count_npz(path, images, cfg.max_image_pixels)
        if not (np.issubdtype(images.dtype, np.integer) or np.issubdtype(images.dtype, np.floating) or images.dtype == bool):
            raise UserError(f"{path}: '{split}_images' has dtype {dtype}; expected integer or float pixels")
        gray_all, handling = _npz_gray(images, cfg, f"{path} '{split}_images'")
        channels = {3: " RGB", 4: " RGBA"}.get(images.shape[-1] if images.ndim == 4 else 1, "")
        for n, (img, y) in enumerate(zip(gray_all, lab)):
            if not float(y).is_integer() or int(y) not in cfg.classes:
                allowed = ", ".join(f"{k} ({v})" for k, v in cfg.classes.items())
                raise UserError(f"{path}: {key}[{n}] = {y} is not a configured class ({allowed}); set data.classes")
            raw = images[n]
            ids.append(f"{split}_{n:05d}")
            labels.append(int(y))
            arrays.append(_minmax(img) if cfg.intensity == "per_image" else img)
            infos.append(
                ImageInfo(
                    width=img.shape[1],
                    height=img.shape[0],
                    mode=dtype + channels,
                    format="npz",
                    value_min=float(raw.min()),
                    value_max=float(raw.max()),
                    handling="per-image stretch (data.intensity=per_image)" if cfg.intensity == "per_image" else handling,
                )
            )
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


def _npz_gray(images: np.ndarray, cfg: DataConfig, where: str) -> tuple[np.ndarray, str]:
    """N×H×W or N×H×W×C array → (float32 N×H×W in [0, 1], what was done), decided once per array.

    RGB(A) becomes luma (0.299 R + 0.587 G + 0.114 B, times alpha), as for RGB files; uint8 is
    divided by 255, uint16 by 65535; other integers and floats follow
    :func:`ctqc.data.images.scale_values` (floats in [0, 1] kept, [0, 255] divided by 255, HU windowed).
    """
    arr = images.astype(np.float64)
    luma = ""
    if arr.ndim == 4:
        if arr.shape[-1] == 1:
            arr = arr[..., 0]
        else:
            gray = arr[..., 0] * 0.299 + arr[..., 1] * 0.587 + arr[..., 2] * 0.114
            if arr.shape[-1] == 4:
                top = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(images.dtype, 1.0)
                gray = gray * (arr[..., 3] / top)
            arr, luma = gray, "luma "
    if cfg.intensity == "per_image":
        return arr.astype(np.float32), luma + "per-image stretch"
    full = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0, np.dtype(bool): 1.0}.get(images.dtype)
    if full is not None and cfg.intensity != "hu":
        return (arr / full).astype(np.float32), f"{luma}/{full:g}"
    gray, handling = scale_values(arr, integer=not np.issubdtype(images.dtype, np.floating), intensity=cfg.intensity, dicom=cfg.dicom, path=where)
    return gray, luma + handling


def _check_pixel_count_npz(path: Path, images: np.ndarray, max_pixels: int) -> None:
    h, w = images.shape[1:3]
    if h * w > max_pixels:
        raise UserError(f"{path}: images are {w}×{h} pixels, over data.max_image_pixels={max_pixels:,}")


def _minmax(arr: np.ndarray) -> np.ndarray:
    lo, hi = float(arr.min()), float(arr.max())
    return np.zeros_like(arr, dtype=np.float32) if hi <= lo else ((arr - lo) / (hi - lo)).astype(np.float32)


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
    infos = [ImageInfo(width=p.size, height=p.size, mode="L", format="array", value_min=float(img.min()), value_max=float(img.max()), handling="/255") for img in phantoms.images]
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
        "preprocessing_version": PREPROCESSING_VERSION,  # decoding rules: same bytes, other pixels
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
