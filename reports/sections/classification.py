"""10 Classification: what is estimated, Table 1 layout with intervals, primary and secondary comparisons with verdicts and MDEs,
sensitivity to degenerate trainings, the duplicate-real control, dose-response, the paper's figures (compare/summary.json)."""

from __future__ import annotations

from ctqc.artefacts import CompareSummary, PaperRow
from ctqc.paper import METRICS as TABLE1_METRICS
from ctqc.paper import TABLE1
from reports import conclusion as concl
from reports import figures
from reports.rundata import RunData
from reports.sections import comparisons as stats
from reports.sections.common import Section, pct_ci

EXTRA_METRICS = ("balanced_accuracy", "roc_auc")
PAPER_SOURCE = "the paper's Table 1 (papers/dcgan-da-head-ct.txt)"


def build(run: RunData) -> Section:
    comp = run.compare_summary()
    results = run.csv(run.layout.results)
    if comp is None and results is None:
        return Section("classification", "Classification", False)
    comp = comp or CompareSummary()
    arms = comp.arms
    listed = list(dict.fromkeys(results["arm"])) if results is not None and "arm" in results else []
    arm_names = stats.order_arms([*arms, *listed], comp)
    metric_cols = [m for m in (*TABLE1_METRICS, *EXTRA_METRICS) if any(m in arms.get(a, {}) for a in arm_names)]
    table = []
    for a in arm_names:
        entry = arms.get(a, {})
        ns = [e.n for e in entry.values() if e.n is not None]
        n_results = int((results["arm"] == a).sum()) if listed else None
        cells = [pct_ci(e.mean, e.ci_low, e.ci_high) if (e := entry.get(m)) else "–" for m in metric_cols]
        n = ns[0] if ns else (n_results if n_results is not None else "–")
        table.append({"arm": a, "cells": cells, "n": n, "degenerate": comp.degenerate_trainings.get(a, "–")})
    rows = stats.tables(comp, stats.order_arms([*arm_names, *(c.arm for c in comp.comparisons)], comp))
    paper = comp.paper or {arm: PaperRow.model_validate(row) for arm, row in TABLE1.items()}
    paper_rows = [{"arm": row.label or arm, "cells": [_percent(getattr(row, m)) for m in TABLE1_METRICS]} for arm, row in paper.items()]
    plot_metrics = [m for m in ["balanced_accuracy", *TABLE1_METRICS, "roc_auc"] if results is not None and m in results]
    arms_dump = {a: {m: e.model_dump() for m, e in v.items()} for a, v in arms.items()}
    dots = figures.classification_dots(results, arms_dump, plot_metrics[:4], {a: r.model_dump() for a, r in paper.items()})
    summary = {
        "arms": {a: {m: arms_dump[a][m] for m in metric_cols if m in arms_dump.get(a, {})} for a in arm_names},
        "comparisons": [c.model_dump(exclude_unset=True) for c in comp.comparisons],
        "skipped": dict(comp.skipped),
        "seeds": comp.seeds,
        "folds": comp.folds,
        "estimand": comp.estimand,
        "primary": [list(p) for p in comp.primary],
        "primary_results": stats.primary_results(comp, rows),
        "degenerate_trainings": dict(comp.degenerate_trainings),
        "sensitivity": None if comp.sensitivity is None else comp.sensitivity.model_dump(exclude_unset=True),
        "sensitivity_lines": stats.sensitivity_lines(rows),
        "dose_response": [p.model_dump() for p in comp.dose_response],
    }
    content = {
        "metric_cols": [m.replace("_", " ") for m in metric_cols],
        "table": table,
        "show_degenerate": bool(comp.degenerate_trainings),
        "interval_notes": _interval_notes(comp, arm_names, metric_cols),
        "reading": _reading(comp),
        "rows": rows,
        "duplicate": stats.duplicate_real(comp, arm_names),
        "dose": stats.dose_response(comp),
        "paper_rows": paper_rows,
        "paper_source": "compare/summary.json" if comp.paper else PAPER_SOURCE,
        "figure": dots,
        "skipped": list(comp.skipped.items()),
        "method": [(k, v) for k in ("ci", "test", "paired_by", "positive_class", "evaluated_on") if (v := getattr(comp, k)) and not (k == "ci" and comp.estimand)],
        "notes": list(comp.notes),
        "seeds_text": _count_text(comp.seeds, results, "seed"),
        "folds_text": _count_text(comp.folds, results, "fold"),
        "n_results": None if results is None else len(results),
        "over_trainings_label": stats.OVER_TRAININGS,
    }
    return Section("classification", "Classification", True, content, summary)


def _reading(comp: CompareSummary) -> list[tuple[str, str]]:
    """What the numbers are, from summary.json: estimand, what the intervals include, replicates, α (empty for an older summary)."""
    first = next((c for c in comp.comparisons if c.estimand or c.interval), None)
    estimand = comp.estimand or (first.estimand if first else None)
    if estimand is None:
        return []
    out = [("Estimand", estimand), ("Intervals include", comp.ci or (first.interval if first else None)), ("Replicates", comp.replicates)]
    if comp.alpha is not None:
        out.append(("Significance level", f"α = {comp.alpha:g}"))
    return [(k, v) for k, v in out if v]


def _interval_notes(comp: CompareSummary, arm_names: list[str], metric_cols: list[str]) -> list[str]:
    """Metrics whose per-arm intervals are not the headline metric's kind (e.g. ROC AUC: over trainings only)."""
    kinds = {m: {e.interval for a in arm_names if (e := comp.arms.get(a, {}).get(m)) is not None and e.interval} for m in metric_cols}
    headline = kinds.get(concl.HEADLINE_METRIC) or set()
    return [f"{m.replace('_', ' ')}: {'; '.join(sorted(k))}" for m, k in kinds.items() if k and headline and k != headline]


def _count_text(items: list[int] | None, results, column: str) -> str:
    """ "3 seeds (0, 1, 2)" from summary.json's list, else from results.csv."""
    if items is None:
        if results is None or column not in results:
            return f"{column}s"
        items = sorted(results[column].dropna().unique().tolist())
    shown = ", ".join(str(v) for v in items[:10]) + (", …" if len(items) > 10 else "")
    return f"{len(items)} {column}(s) ({shown})"


def _percent(fraction: float | None) -> str:
    f = concl.num(fraction)
    return "–" if f is None else f"{f * 100:.2f} %"
