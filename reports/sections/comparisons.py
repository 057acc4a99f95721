"""The classification section's statistics, worded: comparisons by role, sensitivity, the duplicate-real control, dose-response.

Every number and verdict is the compare stage's own (``compare/summary.json``,
:class:`ctqc.artefacts.CompareSummary`): the image-level estimate, its interval, the
permutation p-value, the adjusted p-value, the minimum detectable difference (MDE) and
the verdict. This module only arranges and words them; an older summary without
verdicts is judged by the same rule (interval excludes 0 *and* p ≤ α). Arm names are
handled generically: the run's configured order first, other arms after (ratio arms by
ratio).
"""

from __future__ import annotations

from collections.abc import Iterable

from ctqc.arms import arm_ratio
from ctqc.artefacts import CompareSummary, Comparison, MeanCI
from reports import conclusion as concl
from reports import figures
from reports.conclusion import num
from reports.sections.common import pct_ci

DUPLICATED = "original+duplicated"  # real training images repeated to the count of original+synthetic
SYNTHETIC = "original+synthetic"
REFERENCE = "original"
NOT_ESTIMABLE = "not estimable"
NO_EVIDENCE = "no evidence of a difference"
OVER_TRAININGS = "optimisation noise only: test images not resampled"


# ----------------------------------------------------------------------------- arms


def order_arms(names: Iterable[str], comp: CompareSummary) -> list[str]:
    """``names`` once each: the run's configured arms in their order, then the others as they come, ratio arms last by ratio."""
    names = list(dict.fromkeys(names))
    configured = (comp.config.get("compare") or {}).get("arms") if isinstance(comp.config.get("compare"), dict) else None
    rank = {a: i for i, a in enumerate(configured if isinstance(configured, list) else [])}
    ratios = {p.arm: p.ratio for p in comp.dose_response}
    for a in names:
        if a not in ratios and (r := arm_ratio(a)) is not None:
            ratios[a] = r
    known = sorted((a for a in names if a in rank), key=rank.__getitem__)
    rest = [a for a in names if a not in rank]
    return known + sorted(rest, key=lambda a: (a in ratios, ratios.get(a, 0.0), rest.index(a)))


def headline_metric(comp: CompareSummary) -> str | None:
    """The metric of the verdict lines (balanced accuracy); None when the summary has none of it: every metric is a headline."""
    return concl.HEADLINE_METRIC if any(c.metric == concl.HEADLINE_METRIC for c in comp.comparisons) else None


# ----------------------------------------------------------------------------- one comparison


def estimate(c: Comparison) -> float | None:
    return num(c.estimate) if num(c.estimate) is not None else num(c.mean_diff)


def verdict(c: Comparison, alpha: float) -> str:
    """The stored verdict; for an older entry without one, the same rule from its interval and p-value."""
    if c.verdict:
        return c.verdict
    est, lo, hi, p = estimate(c), num(c.ci_low), num(c.ci_high), num(c.p_value)
    if est is None or lo is None or hi is None:
        return NOT_ESTIMABLE
    if p is None or p > alpha or lo <= 0 <= hi:
        return NO_EVIDENCE
    return "evidence of an improvement" if lo > 0 else "evidence of a decrease"


def is_evidence(label: str) -> bool:
    return label.startswith("evidence of")


def name(c: Comparison) -> str:
    return f"{c.arm} − {c.reference}"


def interval(lo, hi) -> str:
    lo, hi = num(lo), num(hi)
    return "–" if lo is None or hi is None else f"{concl.points(lo)} to {concl.points(hi)}"


def p_cell(p) -> str:
    p = num(p)
    return "–" if p is None else concl.fmt_p(p).removeprefix("p = ").replace("p < ", "< ")


def mde(c: Comparison) -> str | None:
    """ "could detect ≥ 4.3 points": the minimum detectable difference (80 % power, α), in points."""
    m = num(c.mdd)
    if m is None or m <= 0 or c.verdict == NOT_ESTIMABLE:  # a zero-width interval detects nothing
        return None
    return f"could detect ≥ {abs(m) * 100:.1f} points"


def result_text(c: Comparison, alpha: float) -> str:
    """ "+1.2 points (95 % CI −2.0 to +4.4; p = 0.31, adjusted p = 0.62): no evidence of a difference; could detect ≥ 5.1 points"."""
    label = verdict(c, alpha)
    est = estimate(c)
    if est is None:
        return f"{NOT_ESTIMABLE} ({c.why})" if c.why else NOT_ESTIMABLE
    ci = interval(c.ci_low, c.ci_high)
    p, padj = num(c.p_value), num(c.p_adjusted)
    p_text = concl.fmt_p(p) + (f", adjusted {concl.fmt_p(padj)}" if padj is not None and p is not None and abs(padj - p) > 1e-12 else "")
    text = f"{concl.points(est)} points (95 % CI {ci}; {p_text}): {label}"
    if "not tested" in str(c.adjustment or ""):
        text += f" ({c.adjustment})"
    detect = mde(c)
    return text + (f"; {detect}" if detect else "")


def _row(c: Comparison, alpha: float, footnotes: list[str]) -> dict:
    if c.note and c.note not in footnotes:
        footnotes.append(c.note)
    label = verdict(c, alpha)
    shown = f"{label}: {c.why}" if label == NOT_ESTIMABLE and c.why else label
    if "not tested" in str(c.adjustment or ""):
        shown += f" ({c.adjustment})"
    if c.n_images:
        n = f"{c.n_images} images × {c.n_replicates or '?'}"
    else:
        n = "–" if c.n_pairs is None else f"{c.n_pairs} pairs"
    est = estimate(c)
    return {
        "name": name(c),
        "arm": c.arm,
        "reference": c.reference,
        "metric": c.metric.replace("_", " "),
        "diff": "–" if est is None else concl.points(est),
        "ci": interval(c.ci_low, c.ci_high),
        "p": p_cell(c.p_value),
        "p_adjusted": p_cell(c.p_adjusted),
        "mde": mde(c) or "–",
        "verdict": shown,
        "n": n,
        "nodiff": not is_evidence(label),
        "note": footnotes.index(c.note) + 1 if c.note else None,
        "sensitivity": None,
    }


# ----------------------------------------------------------------------------- the tables


def tables(comp: CompareSummary, arm_names: list[str]) -> dict:
    """The comparisons as the template's tables: primary (fixed sequence), secondary (Holm), older ones without a role, other metrics."""
    alpha = num(comp.alpha) or 0.05
    headline = headline_metric(comp)
    rank = {a: i for i, a in enumerate(arm_names)}
    steps = {tuple(p): i for i, p in enumerate(comp.primary)}
    footnotes: list[str] = []
    primary, secondary, plain, other = [], [], [], []
    for c in comp.comparisons:
        row = _row(c, alpha, footnotes)
        if headline is not None and c.metric != headline:
            other.append(row)
        else:
            {"primary": primary, "secondary": secondary}.get(c.role or "", plain).append(row)
    primary.sort(key=lambda r: (steps.get((r["arm"], r["reference"]), len(steps)), rank.get(r["arm"], len(rank))))
    lines, sensitivity_note = sensitivity(comp, alpha)
    for r in primary or secondary + plain:
        r["sensitivity"] = lines.get((r["arm"], r["reference"]))
    adjustments = list(dict.fromkeys(c.adjustment for c in comp.comparisons if c.role == "secondary" and c.metric == (headline or c.metric) and c.adjustment))
    return {
        "alpha": f"{alpha:g}",
        "primary": primary,
        "secondary": secondary,
        "plain": plain,
        "other": other,
        "footnotes": footnotes,
        "secondary_adjustment": adjustments[0] if len(adjustments) == 1 else None,
        "sensitivity_note": sensitivity_note,
        "over_trainings": over_training_rows(comp),
    }


def over_training_rows(comp: CompareSummary) -> list[dict]:
    """The earlier per-training display: mean difference and t-interval over folds × seeds (test images fixed)."""
    rows = []
    for c in comp.comparisons:
        o = c.over_trainings
        if o is None or num(o.mean_diff) is None:
            continue
        rows.append(
            {
                "name": name(c),
                "metric": c.metric.replace("_", " "),
                "diff": concl.points(num(o.mean_diff)),
                "ci": interval(o.ci_low, o.ci_high),
                "p": p_cell(o.p_value),
                "test": o.test or "–",
                "n": "–" if o.n_pairs is None else o.n_pairs,
                "note": o.note,
            }
        )
    return rows


# ----------------------------------------------------------------------------- sensitivity to degenerate trainings


def sensitivity(comp: CompareSummary, alpha: float) -> tuple[dict[tuple[str, str], str], str | None]:
    """Per (arm, reference) of the headline comparisons: the result without the degenerate trainings; and the section's line about them."""
    s, counts = comp.sensitivity, comp.degenerate_trainings
    total = sum(counts.values())
    if s is None:
        if not counts:
            return {}, None  # an older summary: not counted
        if total == 0:
            return {}, "Sensitivity: no degenerate trainings (no training predicted one class for every image), so no result changes without them."
        per_arm = ", ".join(f"{a} {n}" for a, n in counts.items() if n)
        return {}, f"{total} degenerate training(s) ({per_arm}); this summary has no result without them."
    redone = {(x.arm, x.reference, x.metric): x for x in s.comparisons}
    lines = {}
    for c in comp.comparisons:
        x = redone.get((c.arm, c.reference, c.metric))
        if x is None or (c.arm, c.reference) in lines or c.metric != (headline_metric(comp) or c.metric):
            continue
        n = s.excluded.get(c.arm, 0) + s.excluded.get(c.reference, 0)
        if n == 0:
            lines[(c.arm, c.reference)] = "No degenerate training in these two arms: nothing left out."
            continue
        who = ", ".join(f"{a} {k}" for a in (c.arm, c.reference) if (k := s.excluded.get(a, 0)))
        lines[(c.arm, c.reference)] = f"Without the {n} degenerate training{'s' if n != 1 else ''} ({who}): {result_text(x, alpha)}"
    excluded = ", ".join(f"{a} {n}" for a, n in s.excluded.items() if n)
    note = f"Sensitivity analysis: {sum(s.excluded.values())} degenerate training(s) left out ({excluded or 'none'})" + (f"; {s.rule}" if s.rule else "") + "."
    return lines, note


def sensitivity_lines(rows: dict) -> list[str]:
    """ "<arm> − <reference>: without the N degenerate trainings: …" for the rows that carry one (the primary comparisons)."""
    return [f"{r['name']}: {r['sensitivity'][0].lower()}{r['sensitivity'][1:]}" for group in ("primary", "secondary", "plain") for r in rows[group] if r["sensitivity"]]


# ----------------------------------------------------------------------------- the duplicate-real control


def duplicate_real(comp: CompareSummary, arm_names: list[str]) -> dict | None:
    """What ``original+duplicated`` is for, and original+synthetic − original+duplicated when summary.json has it."""
    if DUPLICATED not in arm_names:
        return None
    sentence = (
        f"‘{DUPLICATED}’ trains on the real training images repeated until there are as many as ‘{SYNTHETIC}’ trains on: "
        f"the same number of images, none of them new, so ‘{SYNTHETIC}’ − ‘{DUPLICATED}’ separates the effect of new images from that of more images."
    )
    headline = headline_metric(comp)
    found = [c for c in comp.comparisons if {c.arm, c.reference} == {SYNTHETIC, DUPLICATED} and c.metric == (headline or c.metric)]
    if not found:
        return {"sentence": sentence, "result": f"The comparison {SYNTHETIC} − {DUPLICATED} is not in compare/summary.json."}
    c = found[0]
    metric = concl.METRIC_NAMES.get(c.metric, c.metric.replace("_", " "))
    return {"sentence": sentence, "result": f"{name(c)} ({metric}, {c.role or 'comparison'}): {result_text(c, num(comp.alpha) or 0.05)}."}


# ----------------------------------------------------------------------------- dose-response


def dose_response(comp: CompareSummary) -> dict | None:
    """The ratio arms' headline metric against the synthetic-to-real ratio (``original`` at 0), its table and notes."""
    if not comp.dose_response:
        return None
    metric = concl.HEADLINE_METRIC
    if not any(metric in v for v in comp.arms.values()):
        metric = next((m for v in comp.arms.values() for m in v), metric)
    label = concl.METRIC_NAMES.get(metric, metric.replace("_", " "))
    points, rows = [], []
    base = comp.arms.get(REFERENCE, {}).get(metric)
    if _value(base) is not None:
        points.append({"ratio": 0.0, "estimate": _value(base), "low": num(base.ci_low), "high": num(base.ci_high), "extended": False, "label": REFERENCE})
    for p in sorted(comp.dose_response, key=lambda p: p.ratio):
        e = comp.arms.get(p.arm, {}).get(metric)
        rows.append(
            {
                "ratio": f"×{p.ratio:g}",
                "arm": p.arm,
                "n_synthetic": "–" if num(p.n_synthetic) is None else f"{num(p.n_synthetic):.0f}",
                "extended": p.extended,
                "value": "–" if e is None else pct_ci(e.mean, e.ci_low, e.ci_high),
                "skipped": p.skipped or "",
            }
        )
        if not p.skipped and _value(e) is not None:
            points.append({"ratio": float(p.ratio), "estimate": _value(e), "low": num(e.ci_low), "high": num(e.ci_high), "extended": p.extended > 0, "label": p.arm})
    notes = []
    extended = [p for p in comp.dose_response if p.extended > 0]
    if extended:
        notes.append("The pool was extended from the generator at " + ", ".join(f"×{p.ratio:g} ({p.extended} images beyond the pool, summed over folds)" for p in extended) + ".")
    skipped = [p for p in comp.dose_response if p.skipped]
    if skipped:
        notes.append("Not trained: " + "; ".join(f"×{p.ratio:g} ({p.skipped})" for p in skipped) + ".")
    return {"metric": label, "rows": rows, "notes": notes, "figure": figures.dose_response(points, label)}


def _value(e: MeanCI | None) -> float | None:
    return None if e is None else num(e.mean)


# ----------------------------------------------------------------------------- the at-a-glance lines


def primary_results(comp: CompareSummary, rows: dict) -> list[dict]:
    """Each primary comparison (fixed-sequence order): its name, metric and result with interval, p, verdict and MDE."""
    alpha = num(comp.alpha) or 0.05
    found = {(c.arm, c.reference): c for c in comp.comparisons if c.role == "primary" and c.metric == (headline_metric(comp) or c.metric)}
    out = []
    for r in rows["primary"]:
        c = found.get((r["arm"], r["reference"]))
        if c is not None:
            metric = concl.METRIC_NAMES.get(c.metric, c.metric.replace("_", " "))
            out.append({"name": name(c), "metric": metric, "text": result_text(c, alpha), "sensitivity": r["sensitivity"]})
    return out
