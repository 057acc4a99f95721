"""The labels CSV: delimiter detection, columns, label values and image ids."""

from __future__ import annotations

import csv
import re
from collections import Counter
from pathlib import Path

import numpy as np

from ctqc.config import DataConfig
from ctqc.data.images import (
    IMAGE_EXTENSIONS,
)
from ctqc.errors import UserError

_SAFE_PART = re.compile(r"^[^/\\\x00]+$")
#: Delimiters a labels CSV may use (spreadsheets in many locales export ';').
_DELIMITERS = ",;\t|"


def read_labels_csv(path: Path, cfg: DataConfig) -> dict:
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
    keys = [id_key(i) for i in ids]
    counts = Counter(keys)
    dupes = sorted({i for i, k in zip(ids, keys) if counts[k] > 1})
    if dupes:
        raise UserError(f"{path}: duplicate id(s) {', '.join(repr(d) for d in dupes[:5])}; each image must appear once")
    labels = np.array([parse_label(v, row, path, cfg.classes) for row, v in enumerate(df[label_column], start=2)])
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


def parse_label(value: str, row: int, path: Path, classes: dict[int, str]) -> int:
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


def id_key(identifier: str) -> str:
    """Match ids to file names: a known image extension is dropped ('007.png' → '007'), and
    '007', '7' and 7 are the same image; other ids match exactly."""
    suffix = Path(identifier).suffix.lower() if "." in identifier else ""
    stem = identifier[: -len(suffix)] if suffix in IMAGE_EXTENSIONS and len(identifier) > len(suffix) else identifier
    return str(int(stem)) if stem.isdigit() else stem
