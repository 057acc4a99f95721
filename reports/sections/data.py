"""2 Data: class counts (manifest.json), split sizes (splits.csv), example real images."""

from __future__ import annotations

from reports.rundata import RunData
from reports.sections.common import MAX_REAL_EXAMPLES, RealImages, Section

ROLES = ("train", "val", "test")


def build(run: RunData, real: RealImages) -> Section:
    m = run.manifest()
    counts = dict(m.data.class_counts) if m else {}
    splits = run.csv(run.layout.splits)
    if splits is None and not run.stage_done("data"):
        return Section("data", "Data", False)
    classes = run.class_names() or list(counts)
    split_rows, fold_sizes, examples = [], [], []
    split_classes = classes
    if splits is not None and {"fold", "role", "class"} <= set(splits.columns):
        folds = sorted(splits["fold"].unique())
        for fold in folds:
            part = splits[splits["fold"] == fold]
            fold_sizes.append({"fold": int(fold), **{r: int((part["role"] == r).sum()) for r in ROLES}})
        part = splits[splits["fold"] == folds[0]]
        split_classes = list(dict.fromkeys(classes + [c for c in part["class"].unique() if c not in classes]))
        for role in ROLES:
            cells = [int(((part["role"] == role) & (part["class"] == c)).sum()) for c in split_classes]
            split_rows.append({"role": role, "counts": cells, "total": sum(cells)})
        train = part[part["role"] == "train"]
        for c in split_classes:
            ids = train.loc[train["class"] == c, "id"].astype(str).tolist()[:MAX_REAL_EXAMPLES]
            pics = [p for p in (real.picture(i, caption=i, title=f"real {c}: {i}") for i in ids) if p]
            examples.append({"class": c, "pictures": pics})
    summary = {
        "class_counts": counts,
        "n_images": m.data.n_images if m else None,
        "folds": len(fold_sizes),
        "split_sizes": fold_sizes[0] if fold_sizes else None,
    }
    content = {
        "class_counts": list(counts.items()),
        "split_classes": split_classes,
        "split_rows": split_rows,
        "fold_sizes": fold_sizes if len(fold_sizes) > 1 else [],
        "examples": examples,
        "real_note": real.note,
        "scheme": run.setting("split", "scheme"),
    }
    return Section("data", "Data", True, content, summary)
