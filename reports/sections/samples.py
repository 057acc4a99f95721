"""4 Synthetic samples: a capped gallery per class from samples/index.csv."""

from __future__ import annotations

from reports.images import THUMB_PX, picture_from_file
from reports.rundata import RunData
from reports.sections.common import MAX_SAMPLES, Section


def build(run: RunData) -> Section:
    index = run.csv(run.layout.samples_index)
    if index is None:
        return Section("samples", "Synthetic samples", False, hint="ctqc generate" if run.gan_units() else "ctqc train")
    listed = [c for c in index["class"] if isinstance(c, str)] if "class" in index else []  # NaN for an empty cell
    classes = list(dict.fromkeys(run.class_names() + listed))
    per_class = []
    for c in classes:
        part = index[index["class"] == c] if "class" in index else index.iloc[:0]
        if part.empty:
            continue
        if "fold" in part:
            part = part.sort_values("fold", kind="stable")
        files = part["file"].astype(str).tolist()[:MAX_SAMPLES]
        pics = [p for p in (picture_from_file(run.sample(f), THUMB_PX, title=f"synthetic {c}: {f}") for f in files) if p]
        per_class.append({"class": c, "n": int(len(part)), "pictures": pics})
    summary = {row["class"]: row["n"] for row in per_class}
    return Section("samples", "Synthetic samples", True, {"per_class": per_class, "total": int(len(index)), "max_shown": MAX_SAMPLES}, summary)
