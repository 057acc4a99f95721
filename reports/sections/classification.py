"""10 Classification: Table 1 layout with CIs, paired differences, the paper's figures (compare/summary.json)."""

from __future__ import annotations

from ctqc.artefacts import CompareSummary, PaperRow
from ctqc.paper import METRICS as TABLE1_METRICS
from ctqc.paper import TABLE1
from reports import conclusion as concl
from reports import figures
from reports.rundata import RunData
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
    arm_names = list(arms) + [a for a in listed if a not in arms]
    metric_cols = [m for m in (*TABLE1_METRICS, *EXTRA_METRICS) if any(m in arms.get(a, {}) for a in arm_names)]
    table = []
    for a in arm_names:
        entry = arms.get(a, {})
        ns = [e.n for e in entry.values() if e.n is not None]
        n_results = int((results["arm"] == a).sum()) if listed else None
        cells = [pct_ci(e.mean, e.ci_low, e.ci_high) if (e := entry.get(m)) else "–" for m in metric_cols]
        table.append({"arm": a, "cells": cells, "n": ns[0] if ns else (n_results if n_results is not None else "–")})
    comparisons, footnotes = _comparisons(comp)
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
    }
    content = {
        "metric_cols": [m.replace("_", " ") for m in metric_cols],
        "table": table,
        "comparisons": [c for c in comparisons if c["headline"]],
        "other_comparisons": [c for c in comparisons if not c["headline"]],
        "footnotes": footnotes,
        "paper_rows": paper_rows,
        "paper_source": "compare/summary.json" if comp.paper else PAPER_SOURCE,
        "figure": dots,
        "skipped": list(comp.skipped.items()),
        "method": [(k, v) for k in ("ci", "test", "paired_by", "positive_class", "evaluated_on") if (v := getattr(comp, k))],
        "notes": list(comp.notes),
        "seeds_text": _count_text(comp.seeds, results, "seed"),
        "folds_text": _count_text(comp.folds, results, "fold"),
        "n_results": None if results is None else len(results),
    }
    return Section("classification", "Classification", True, content, summary)


def _comparisons(comp: CompareSummary) -> tuple[list[dict], list[str]]:
    """Table rows of the paired comparisons, and their numbered footnotes."""
    rows, footnotes = [], []
    for c in comp.comparisons:
        if c.note and c.note not in footnotes:
            footnotes.append(c.note)
        diff, lo, hi = concl.num(c.mean_diff), concl.num(c.ci_low), concl.num(c.ci_high)
        rows.append(
            {
                "arm": c.arm,
                "reference": c.reference,
                "metric": c.metric.replace("_", " "),
                "diff": "–" if diff is None else concl.points(diff),
                "ci": "–" if lo is None or hi is None else f"{concl.points(lo)} to {concl.points(hi)}",
                "p": concl.fmt_p(c.p_value),
                "test": c.test or "–",
                "n_pairs": "–" if c.n_pairs is None else c.n_pairs,
                "includes_zero": concl.ci_includes_zero(lo, hi),
                "note": footnotes.index(c.note) + 1 if c.note else None,
                "headline": c.metric == concl.HEADLINE_METRIC,
            }
        )
    if not any(r["headline"] for r in rows):  # no balanced accuracy: every metric is "headline"
        for r in rows:
            r["headline"] = True
    return rows, footnotes


def _count_text(items: list[int] | None, results, column: str) -> str:
    """"3 seeds (0, 1, 2)" from summary.json's list, else from results.csv."""
    if items is None:
        if results is None or column not in results:
            return f"{column}s"
        items = sorted(results[column].dropna().unique().tolist())
    shown = ", ".join(str(v) for v in items[:10]) + (", …" if len(items) > 10 else "")
    return f"{len(items)} {column}(s) ({shown})"


def _percent(fraction: float | None) -> str:
    f = concl.num(fraction)
    return "–" if f is None else f"{f * 100:.2f} %"
