"""9 Filter: the operating point and what it kept (filter/filter.json), before/after metrics, galleries."""

from __future__ import annotations

from reports import conclusion as concl
from reports import figures
from reports.images import THUMB_PX, Picture, picture_from_file
from reports.rundata import RunData
from reports.sections.common import MAX_GALLERY, Section, c2st_cell, fmt
from reports.sections.distribution import floor_ci, gap_cells, headline, value_ci

UNIT_FIELDS = {"n_synthetic", "kept", "rejected_c2st", "rejected_copy", "c2st_before", "c2st_after"}


def build(run: RunData) -> Section:
    filt = run.filter_summary()
    if filt is None:
        return Section("filter", "Filter", False)
    kept, rejected = run.csv(run.layout.kept), run.csv(run.layout.rejected)
    rows = [
        {
            "unit": unit,
            "n": v.n_synthetic,
            "kept": v.kept,
            "rejected_c2st": v.rejected_c2st,
            "rejected_copy": v.rejected_copy,
            "before": c2st_cell(v.c2st_before),
            "after": c2st_cell(v.c2st_after),
            "copy_threshold": fmt(v.copy_threshold),
        }
        for unit, v in filt.per_class.items()
    ]
    metrics = run.metrics()
    before = metrics.scopes if metrics else {}
    after = metrics.after_filter.scopes if metrics and metrics.after_filter else {}
    before_after = []
    for name, scope in after.items():
        prior = before.get(name)
        for metric, a in scope.estimates().items():
            if concl.num(a.value) is None:
                continue
            b = getattr(prior, metric) if prior else None
            n_before = "–" if prior is None or prior.n_synthetic is None else prior.n_synthetic
            gap, verdict = gap_cells(a, metric)
            before_after.append(
                {
                    "scope": name,
                    "metric": figures.METRIC_LABELS[metric][0],
                    "before": value_ci(b) if b else "–",
                    "after": value_ci(a),
                    "floor": floor_ci(a),
                    "gap": gap,
                    "verdict": verdict,
                    "n": f"{n_before} → {'–' if scope.n_synthetic is None else scope.n_synthetic}",
                }
            )
    summary = {
        "c2st_threshold": filt.c2st_threshold,
        "memorisation": filt.memorisation,
        "kept": filt.kept,
        "rejected": filt.rejected,
        "per_class": {unit: v.model_dump(include=UNIT_FIELDS) for unit, v in filt.per_class.items()},
        "distribution_metrics_after": headline(after),
    }
    content = {
        "threshold": filt.c2st_threshold,
        "memorisation": filt.memorisation,
        "features": ", ".join(filt.features),
        "classifier": filt.classifier,
        "fitted_on": filt.fitted_on,
        "kept": filt.kept,
        "rejected": filt.rejected,
        "rows": rows,
        "before_after": before_after,
        "metrics_ran": bool(before),
        "figure": figures.filter_scores(kept, rejected, filt.c2st_threshold),
        "kept_pictures": _gallery(run, kept, ascending=True),
        "rejected_pictures": _gallery(run, rejected, ascending=False),
        "n_kept_total": 0 if kept is None else len(kept),
        "n_rejected_total": 0 if rejected is None else len(rejected),
    }
    return Section("filter", "Filter", True, content, summary)


def _gallery(run: RunData, table, ascending: bool) -> list[Picture]:
    """Up to MAX_GALLERY thumbnails, most (rejected) or least (kept) synthetic-looking first."""
    if table is None or table.empty:
        return []
    table = table.sort_values("c2st_score", ascending=ascending, kind="stable", na_position="last")
    pics = []
    for _, r in table.head(MAX_GALLERY).iterrows():
        reasons = str(r.get("reasons") or "")
        caption = f"p {fmt(r.get('c2st_score'), 2)}" + (f" · {reasons}" if reasons else "")
        title = f"{r.get('class')}: {r['file']} — p(synthetic) {fmt(r.get('c2st_score'))}" + (f", rejected: {reasons}" if reasons else "")
        pic = picture_from_file(run.sample(str(r["file"])), THUMB_PX, caption=caption, title=title)
        if pic:
            pics.append(pic)
    return pics
