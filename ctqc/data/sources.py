"""Load labelled images from a folder + CSV, a MedMNIST-style ``.npz`` or the built-in phantoms.

Every problem a user can fix raises :class:`UserError` naming the file, column
or id. Nothing is written here: loading has no side effects.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from pathlib import Path

import numpy as np

from ctqc.config import DataConfig
from ctqc.data.assemble import assemble, duplicate_warnings
from ctqc.data.dataset import LabelledImages
from ctqc.data.images import (
    IMAGE_EXTENSIONS,
    ImageInfo,
    is_dicom,
    read_image,
    why_not_dicom,
)
from ctqc.data.labels import id_key, read_labels_csv
from ctqc.data.npz import load_npz
from ctqc.errors import UserError
from ctqc.phantoms import PhantomSpec, generate_phantoms


def load_dataset(cfg: DataConfig, require_all_classes: bool = True) -> LabelledImages:
    """Load and preprocess the labelled images described by ``cfg``.

    ``require_all_classes=False`` accepts a set that covers only some of the configured
    classes (e.g. another generator's output for the positive class only).
    """
    kind = _detect_kind(cfg)
    if kind == "phantom":
        data = _load_phantoms(cfg)
    elif kind == "npz":
        data = load_npz(cfg)
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
    table = read_labels_csv(root / cfg.labels_csv, cfg)
    csv_name = root / cfg.labels_csv
    images_dir = _find_images_dir(root, cfg, table["ids"], table["folders"])
    _check_id_folders(csv_name, root, images_dir, table["ids"], table["folders"])
    skipped: dict[Path, str] = {}
    files = _index_image_files(images_dir, root, skipped)

    warnings: list[str] = list(table["notes"])
    paths = []
    missing = [i for i in table["ids"] if id_key(i) not in files]
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
        candidates = files[id_key(i)]
        if len(candidates) > 1:
            names = ", ".join(p.name for p in candidates)
            raise UserError(f"{images_dir}: id {i!r} matches several files ({names}); keep one")
        paths.append(candidates[0])
    labelled = {id_key(i) for i in table["ids"]}
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
    warnings += duplicate_warnings(ids, digests)
    return assemble(
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
    wanted = {id_key(i) for i in ids}
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
        files[id_key(p.name)].append(p)
    return files


def _load_phantoms(cfg: DataConfig) -> LabelledImages:
    p = cfg.phantom
    if sorted(cfg.classes) != [0, 1]:
        raise UserError("the built-in phantom data has two classes, 0 and 1; data.classes must use those keys")
    phantoms = generate_phantoms(PhantomSpec(n_per_class=p.n_per_class, size=p.size, seed=p.seed, difficulty=p.difficulty))
    arrays = [img.astype(np.float32) / 255.0 for img in phantoms.images]
    digests = [hashlib.sha256(img.tobytes()).hexdigest() for img in phantoms.images]
    infos = [ImageInfo(width=p.size, height=p.size, mode="L", format="array", value_min=float(img.min()), value_max=float(img.max()), handling="/255") for img in phantoms.images]
    return assemble(
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
