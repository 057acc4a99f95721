"""9 Filter: the operating point and what it kept (filter/filter.json), before/after metrics, galleries.

Per fold and class: the threshold used and the genuine images it rejects, the ECE of the stored
(calibrated) scores, the after-filter C2ST (kept vs held-out real images, two-sided), the frozen
filter on fresh images (the evidence: its kept images vs the held-out real images) and density /
coverage of pool and kept set against same-size random subsets of the pool. With more than one
selection strategy (``ctqc filter --strategy``), what each kept per fold and class, side by side.
"""

from __future__ import annotations

from ctqc.artefacts import Diversity
from reports import conclusion as concl
from reports import figures
from reports.images import THUMB_PX, Picture, picture_from_file
from reports.rundata import RunData
from reports.sections.common import MAX_GALLERY, Section, auc, c2st_cell, fmt
from reports.sections.distribution import floor_ci, gap_cells, headline, metric_label, value_ci

UNIT_FIELDS = {"n_synthetic", "kept", "rejected_c2st", "rejected_copy", "rejected_duplicate", "c2st_before", "mmd_before", "c2st_after", "threshold"}


def build(run: RunData) -> Section:
    filt = run.filter_summary()
    if filt is None:
        return Section("filter", "Filter", False)
    kept, rejected = run.csv(run.layout.kept), run.csv(run.layout.rejected)
    inauthentic = inauthentic_counts(kept, rejected)
    rows = [
        {
            "unit": unit,
            "n": v.n_synthetic,
            "kept": v.kept,
            "rejected_c2st": v.rejected_c2st,
            "rejected_copy": v.rejected_copy,
            "inauthentic": inauthentic.get(unit, "–"),
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
    diversity_rows = [_diversity_row(unit, d) for unit, v in filt.per_class.items() if (d := v.diversity) is not None]
    qc_metrics = run.metrics()
    metric_diversity = qc_metrics.after_filter.diversity if qc_metrics and qc_metrics.after_filter else {}
    metric_diversity_rows = [_diversity_row(scope, d) for scope, d in metric_diversity.items()]
    frozen_rows = [
        {
            "unit": unit,
            "n": f.n,
            "kept": f.kept,
            "after": after_cell(f.c2st_after),
            "coverage": "–" if (d := f.diversity_vs_heldout) is None else f"{fmt(d.coverage_before, 2)} → {fmt(d.coverage_kept, 2)}",
            "coverage_random": "–" if d is None else fmt(d.coverage_random, 2),
            "warning": None if d is None else (d.warning or d.note),
        }
        for unit, v in filt.per_class.items()
        if (f := v.frozen) is not None
    ]
    sources = sorted({v.frozen.source for v in filt.per_class.values() if v.frozen is not None and v.frozen.source})
    frozen_sources = "; ".join({"generator": "new draws from each fold's generator, as many as its pool", "split half": "half of the pool held back at random; the filter refitted on the other half"}.get(x, x) for x in sources)
    metrics = qc_metrics
    strategies, strategy_rows = strategy_table(filt)
    after = metrics.after_filter.scopes if metrics and metrics.after_filter else {}
    # measured against the held-out images, the pool's own values are the like-for-like "before" (older runs: none)
    against = metrics.after_filter.against if metrics and metrics.after_filter else None
    before = metrics.after_filter.pool_scopes if against else (metrics.scopes if metrics else {})
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
                    "metric": metric_label(metric, metrics.extractor),
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
        "frozen": {unit: {"n": v.frozen.n, "kept": v.frozen.kept, "auc": v.frozen.c2st_after.auc, "p_value_two_sided": v.frozen.c2st_after.p_value_two_sided} for unit, v in filt.per_class.items() if v.frozen is not None},
        "distribution_metrics_after": headline(after),
        "strategy": filt.strategy,
        "strategies": {name: {unit: u.kept for unit, u in st.per_class.items()} for name, st in filt.strategies.items()},
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
        "strategy": filt.strategy,
        "label_threshold": fmt(filt.label_threshold),
        "strategies": strategies,
        "strategy_rows": strategy_rows,
        "diversity_rows": diversity_rows,
        "frozen_rows": frozen_rows,
        "metric_diversity_rows": metric_diversity_rows,
        "frozen_sources": frozen_sources,
        "before_after": before_after,
        "metrics_ran": metrics is not None,  # ctqc qc has run
        "after_ran": bool(metrics is not None and metrics.after_filter is not None),  # … after ctqc filter
        "against": against or "the training images (the images that chose the kept set: read with care)",
        "figure": figures.filter_scores(kept, rejected, filt.c2st_threshold),
        "kept_pictures": _gallery(run, kept, ascending=True),
        "rejected_pictures": _gallery(run, rejected, ascending=False),
        "n_kept_total": 0 if kept is None else len(kept),
        "n_rejected_total": 0 if rejected is None else len(rejected),
    }
    return Section("filter", "Filter", True, content, summary)


def _diversity_row(unit: str, d: Diversity) -> dict:
    """One row of a density/coverage table: pool → kept, the same-size random subsets' values, the real images' count."""
    return {
        "unit": unit,
        "coverage": f"{fmt(d.coverage_before, 2)} → {fmt(d.coverage_kept, 2)}",
        "coverage_random": fmt(d.coverage_random, 2),
        "density": f"{fmt(d.density_before, 2)} → {fmt(d.density_kept, 2)}",
        "density_random": fmt(d.density_random, 2),
        "n_real": d.n_real,
        "warning": d.warning or d.note,
    }


def inauthentic_counts(*tables) -> dict[str, int]:
    """``fold<k>/<class>`` → synthetic images whose ``authentic`` column is False (kept and rejected together); {} for older tables."""
    counts: dict[str, int] = {}
    for table in tables:
        if table is None or "authentic" not in table:
            continue
        flags = table["authentic"].astype(str).isin(["False", "0", "0.0"])
        for (fold, name), n in flags.groupby([table["fold"], table["class"]]).sum().items():
            counts[f"fold{fold}/{name}"] = counts.get(f"fold{fold}/{name}", 0) + int(n)
    return counts


def strategy_table(filt) -> tuple[list[dict], list[dict]]:
    """The strategies side by side: (one entry per strategy: name, description, kept in all; one row per fold × class
    with each strategy's kept / synthetic and the genuine held-out images its rules reject)."""
    strategies = [{"name": name, "default": name == filt.strategy, "description": st.description, "kept": st.kept, "total": st.kept + st.rejected} for name, st in filt.strategies.items()]
    rows = []
    for unit in filt.per_class:
        cells = []
        for st in filt.strategies.values():
            u = st.per_class.get(unit)
            cells.append({"kept": "–" if u is None else f"{u.kept}/{u.n_synthetic}", "genuine": "–" if u is None else genuine_cell(u.real_rejection), "notes": [] if u is None else u.notes})
        rows.append({"unit": unit, "cells": cells})
    return strategies, rows


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
