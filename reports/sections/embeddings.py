"""6 Embeddings: the filter's t-SNE / UMAP plots, and per class how many images they show.

The coordinates are the score stage's (``qc/embeddings.csv``, no decision in it);
kept / rejected come from joining its synthetic rows with ``filter/kept.csv``.
"""

from __future__ import annotations

from reports.images import picture_from_file
from reports.rundata import RunData
from reports.sections.common import Section

METHODS = (("tsne", "t-SNE"), ("umap", "UMAP"))
PLOT_PX = 1000


def build(run: RunData) -> Section:
    layout = run.layout
    pics = [p for p in (picture_from_file(layout.embedding_plot(m), PLOT_PX, caption=label) for m, label in METHODS) if p]
    table = run.csv(layout.embeddings)
    if not pics and table is None:
        return Section("embeddings", "Embeddings", False)
    kept_table = run.csv(layout.kept) if run.stage_done("filter") or layout.filter_summary.is_file() else None
    kept_ids = None if kept_table is None or "sample_id" not in kept_table else set(kept_table["sample_id"].astype(str))
    counts = []
    if table is not None and {"id", "class", "source"} <= set(table.columns):
        for c in dict.fromkeys(table["class"]):
            part = table[table["class"] == c]
            syn = part[part["source"] == "synthetic"]
            n_kept = None if kept_ids is None else int(syn["id"].astype(str).isin(kept_ids).sum())
            counts.append(
                {
                    "class": c,
                    "real": int((part["source"] == "real").sum()),
                    "synthetic": int(len(syn)),
                    "kept": "–" if n_kept is None else n_kept,
                    "rejected": "–" if n_kept is None else int(len(syn)) - n_kept,
                    "folds": int(part["fold"].nunique()) if "fold" in part else 1,
                }
            )
    methods = [c[:-2] for c in (table.columns if table is not None else []) if c.endswith("_x")]
    return Section("embeddings", "Embeddings", True, {"pictures": pics, "counts": counts, "methods": methods})
