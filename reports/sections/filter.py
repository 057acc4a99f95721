"""9 Filter: the operating point and what it kept (filter/filter.json), before/after metrics, galleries.

Per fold and class: the threshold used and the genuine images it rejects, the ECE of the stored
scores as they are, the after-filter C2ST (kept vs held-out real images, two-sided) and density /
coverage of pool and kept set against same-size random subsets of the pool.
"""

from __future__ import annotations

from reports import conclusion as concl
from reports import figures
from reports.images import THUMB_PX, Picture, picture_from_file
from reports.rundata import RunData
from reports.sections.common import MAX_GALLERY, Section, auc, c2st_cell, fmt
from reports.sections.distribution import floor_ci, gap_cells, headline, value_ci

UNIT_FIELDS = {"n_synthetic", "kept", "rejected_c2st", "rejected_copy", "rejected_duplicate", "c2st_before", "mmd_before", "c2st_after", "threshold"}


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
            "rejected_duplicate": v.rejected_duplicate,
            "before": c2st_cell(v.c2st_before),
            "after": after_cell(v.c2st_after),
            "copy_threshold": fmt(v.copy_threshold),
            "threshold": fmt(v.threshold),
            "genuine": genuine_cell(v.real_rejection),
            "ece": "–" if v.calibration is None else fmt(v.calibration.ece),
        }
        for unit, v in filt.per_class.items()
    ]
    diversity_rows = [
        {
            "unit": unit,
            "coverage": f"{fmt(d.coverage_before, 2)} → {fmt(d.coverage_kept, 2)}",
            "coverage_random": fmt(d.coverage_random, 2),
            "density": f"{fmt(d.density_before, 2)} → {fmt(d.density_kept, 2)}",
            "density_random": fmt(d.density_random, 2),
            "n_real": d.n_real,
            "warning": d.warning,
        }
        for unit, v in filt.per_class.items()
        if (d := v.diversity) is not None
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
        "mode": filt.mode,
        "operating_point": filt.operating_point(),
        "memorisation": filt.memorisation,
        "kept": filt.kept,
        "rejected": filt.rejected,
        "per_class": {unit: v.model_dump(include=UNIT_FIELDS) for unit, v in filt.per_class.items()},
        "distribution_metrics_after": headline(after),
    }
    content = {
        "threshold": filt.c2st_threshold,
        "operating_point": filt.operating_point(),
        "conformal": filt.mode == "conformal",
        "after_check": filt.after_check,
        "memorisation": filt.memorisation,
        "features": ", ".join(filt.features),
        "classifier": filt.classifier,
        "fitted_on": filt.fitted_on,
        "kept": filt.kept,
        "rejected": filt.rejected,
        "rows": rows,
        "diversity_rows": diversity_rows,
        "before_after": before_after,
        "metrics_ran": bool(before),
        "figure": figures.filter_scores(kept, rejected, filt.c2st_threshold),
        "kept_pictures": _gallery(run, kept, ascending=True),
        "rejected_pictures": _gallery(run, rejected, ascending=False),
        "n_kept_total": 0 if kept is None else len(kept),
        "n_rejected_total": 0 if rejected is None else len(rejected),
    }
    return Section("filter", "Filter", True, content, summary)


def genuine_cell(rejection) -> str:
    """'8 % [3 %, 19 %] of 24 held-out' (fixed threshold) or '5.6 % ≤ 0.1 (conformal, n = 17)'."""
    if rejection is None or rejection.n == 0:
        return "–"
    if rejection.guarantee is not None and rejection.expected is not None:
        return f"{rejection.expected:.1%} ≤ {rejection.guarantee:g} (split conformal, n = {rejection.n})"
    if rejection.rate is None:
        return f"– (n = {rejection.n})"
    ci = f" [{rejection.ci[0]:.0%}, {rejection.ci[1]:.0%}]" if rejection.ci else ""
    return f"{rejection.rate:.0%}{ci} of {rejection.n} held-out"


def after_cell(result) -> str:
    """The after-filter C2ST with its two-sided p-value, and its note (e.g. an AUC well below 0.5 is an artefact)."""
    if result is None:
        return "–"
    if result.auc is None:
        return result.note or "–"
    if result.p_value_two_sided is not None:
        text = f"AUC {auc(result.auc)} (two-sided {concl.fmt_p(result.p_value_two_sided)})"
    else:
        text = f"AUC {auc(result.auc)} ({concl.fmt_p(result.p_value)})"
    return text + (f" — {result.note}" if result.note else "")


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
