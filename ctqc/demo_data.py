"""Write the built-in phantom dataset to disk in the Kaggle "Head CT – hemorrhage" layout."""

from __future__ import annotations

from pathlib import Path

from ctqc import atomic
from ctqc.errors import UserError
from ctqc.phantoms import PhantomSpec, generate_phantoms

#: The Kaggle file's header, space included; the loader strips it.
KAGGLE_HEADER = "id, hemorrhage"
CLASS_NAMES = {0: "normal", 1: "haemorrhage"}


def write_kaggle_layout(out: str | Path, spec: PhantomSpec = PhantomSpec()) -> dict[str, int]:
    """Write ``out/head_ct/<id>.png`` and ``out/labels.csv``; return image counts per class.

    ``out`` must not exist or be empty. The folder appears whole or not at all.
    """
    from PIL import Image

    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise UserError(f"{out} already exists and is not an empty folder; choose a new path")
    phantoms = generate_phantoms(spec)
    try:
        with atomic.atomic_dir(out) as tmp:
            (tmp / "head_ct").mkdir()
            for identifier, image in zip(phantoms.ids, phantoms.images):
                Image.fromarray(image).save(tmp / "head_ct" / f"{identifier}.png", optimize=False)
            rows = [KAGGLE_HEADER] + [f"{i}, {int(y)}" for i, y in zip(phantoms.ids, phantoms.labels)]
            (tmp / "labels.csv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    except OSError as exc:
        raise UserError(f"cannot write {out} ({exc.strerror or exc.__class__.__name__})") from None
    return {name: int((phantoms.labels == key).sum()) for key, name in CLASS_NAMES.items()}
