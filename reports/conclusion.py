"""The report's conclusion: plain sentences written from the saved numbers.

Rules: every difference is stated with its 95 % CI and p-value; "evidence"
only when the CI excludes 0 and the test agrees at α (the compare stage's own
verdict, ``classify.verdicts``, when summary.json carries it); a CI that
includes 0 is reported as "no evidence of a difference", never as a small
effect; nothing is said about a stage that did not run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from ctqc.artefacts import GAP_ABOVE, GAP_BELOW, GAP_NOT_ESTIMABLE, GAP_WITHIN
from ctqc.numbers import finite as num

# the arm whose comparison with "original" is the headline, then the others
ARM_ORDER = ["original+filtered", "original+synthetic", "synthetic-only", "original+classical", "original+random-subset"]
REFERENCE_NAMES = {"original": "no augmentation (original)"}
METRIC_NAMES = {"balanced_accuracy": "balanced accuracy", "roc_auc": "ROC AUC"}
HEADLINE_METRIC = "balanced_accuracy"


def fmt_p(p) -> str:
    p = num(p)
    if p is None:
        return "p not available"
    if p < 0.001:
        return "p < 0.001"
    if p < 0.01:
        return f"p = {p:.2g}"
    return "p = " + (f"{p:.3f}".rstrip("0").rstrip(".") if p < 1 else "1")


def points(v: float) -> str:
    """A difference of fractions in percentage points, signed (U+2212 minus)."""
    s = f"{abs(v) * 100:.1f}"
    return ("+" if v >= 0 else "\u2212") + s


def ci_includes_zero(lo, hi) -> bool:
    lo, hi = num(lo), num(hi)
    return lo is None or hi is None or lo <= 0 <= hi


def comparison_sentence(c: dict, alpha: float = 0.05) -> str | None:
    """One paired comparison (compare/summary.json "comparisons" entry) as a sentence.

    The verdict is the compare stage's own (``classify.verdicts``: the interval excludes 0 *and*
    the test agrees at α, with the minimum detectable difference otherwise) whenever the entry
    carries one; an older entry without it is judged by the same rule from its interval and p-value.
    """
    diff, lo, hi = num(c.get("mean_diff")), num(c.get("ci_low")), num(c.get("ci_high"))
    if diff is None:
        return None
    metric = str(c.get("metric", "?"))
    name = METRIC_NAMES.get(metric, metric.replace("_", " "))
    ref = str(c.get("reference", "?"))
    ref_name = REFERENCE_NAMES.get(ref, f"‘{ref}’")
    ci = "95 % CI not available" if lo is None or hi is None else f"95 % CI {points(lo)} to {points(hi)}"
    n, images, reps = c.get("n_pairs"), num(c.get("n_images")), num(c.get("n_replicates"))
    if images:
        pairs = f", {int(images)} test images × {int(reps or 0)} training replicate(s)"
    else:
        pairs = f", {int(n)} paired fold×seed results" if num(n) is not None else ""
    p_shown = c.get("p_adjusted") if num(c.get("p_adjusted")) is not None else c.get("p_value")
    role = f"{c['role']} comparison: " if c.get("role") else ""
    sentence = f"{role}‘{c.get('arm', '?')}’ changed {name} by {points(diff)} points ({ci}, {fmt_p(p_shown)}{pairs}) compared with {ref_name}"
    note = f" ({c['note']})" if c.get("note") else ""
    if c.get("verdict"):
        mdd = num(c.get("mdd"))
        detectable = f"; this design could only detect differences larger than {points(mdd).lstrip('+')} points" if mdd is not None and "no evidence" in c["verdict"] else ""
        tested = f" ({c['adjustment']})" if "not tested" in str(c.get("adjustment", "")) else ""
        return sentence + f": {c['verdict']}{tested}{detectable}{note}."
    if lo is None or hi is None:
        return sentence + f"; without a CI this is not evidence of a difference{note}."
    if ci_includes_zero(lo, hi):
        return sentence + f": the CI includes 0, so there is no evidence of a difference{note}."
    p = num(c.get("p_value"))
    if p is None or p > alpha:
        return sentence + f": the CI excludes 0 but the test does not agree at α = {alpha:g}, so there is no evidence of a difference{note}."
    direction = "an improvement" if lo > 0 else "a decrease"
    return sentence + f": the CI excludes 0 and the test agrees, evidence of {direction} on this data{note}."


def classification_sentences(summary: dict | None) -> list[str]:
    """The headline metric's comparisons (the primary ones first, in their testing order; then arms against ``original``), then the skipped arms."""
    if not summary:
        return []
    comps = list(summary.get("comparisons") or [])
    metrics_present = {c.get("metric") for c in comps}
    metric = HEADLINE_METRIC if HEADLINE_METRIC in metrics_present else (sorted(m for m in metrics_present if m) or [None])[0]
    chosen = [c for c in comps if c.get("metric") == metric]
    order = {a: i for i, a in enumerate(ARM_ORDER)}
    steps = {tuple(p): i for i, p in enumerate(summary.get("primary") or [])}  # the fixed testing order of the primary comparisons
    chosen.sort(
        key=lambda c: (
            c.get("role") != "primary",
            steps.get((c.get("arm"), c.get("reference")), len(steps)),
            c.get("reference") != "original",
            order.get(c.get("arm"), len(order)),
            str(c.get("arm")),
        )
    )
    out = [s for s in (comparison_sentence(c) for c in chosen) if s]
    for arm, reason in (summary.get("skipped") or {}).items():
        out.append(f"‘{arm}’ was not evaluated: {reason}.")
    return out


def c2st_sentence(name: str, entry: dict) -> str | None:
    auc, p = num(entry.get("auc")), num(entry.get("p_value"))
    if auc is None:
        return None
    if p is not None and p <= 0.05 and auc > 0.5:  # a permutation p = (1 + k) / (B + 1) ≤ α is a level-α test
        return f"{name}: a classifier tells the synthetic images from real ones (C2ST AUC {auc:.3f}, {fmt_p(p)}; 0.5 would mean indistinguishable)."
    return f"{name}: no evidence that a classifier can tell the synthetic images from real ones (C2ST AUC {auc:.3f}, {fmt_p(p)})."


def after_check_sentence(name: str, entry: dict) -> str | None:
    """The after-filter C2ST (kept vs held-out real images) in words, two-sided: an AUC well below 0.5 is an artefact."""
    auc, p, p2 = num(entry.get("auc")), num(entry.get("p_value")), num(entry.get("p_value_two_sided"))
    if auc is None or p2 is None:
        return c2st_sentence(name, entry)  # a filter.json from before the held-out after-check
    if auc < 0.5 and p2 <= 0.05:
        return f"{name}: the kept images score AUC {auc:.3f} against held-out real images (two-sided {fmt_p(p2)}), well below 0.5 — an artefact of the comparison, not evidence of realism."
    if auc > 0.5 and p is not None and p <= 0.05:
        return f"{name}: a classifier still tells the kept images from held-out real images (C2ST AUC {auc:.3f}, {fmt_p(p)})."
    return f"{name}: no evidence that a classifier can tell the kept images from held-out real images (C2ST AUC {auc:.3f}, two-sided {fmt_p(p2)})."


def sig(v: float, digits: int = 3) -> str:
    """``digits`` significant figures, with a real minus sign."""
    text = f"{v:.{digits}g}"
    return text.replace("-", "\u2212")


def _with_ci(v: float, lo: float | None, hi: float | None, extra: str = "") -> str:
    parts = ([] if lo is None or hi is None else [f"95 % CI {sig(lo)} to {sig(hi)}"]) + ([extra] if extra else [])
    return f"{sig(v)} ({'; '.join(parts)})" if parts else sig(v)


def signed(v: float, digits: int = 3) -> str:
    """``digits`` significant figures with an explicit sign (+, or U+2212 minus)."""
    return ("+" if v >= 0 else "") + sig(v, digits)


# what each stored gap verdict (``ctqc.artefacts.qc.gap_verdict``) means, in words
GAP_MEANING = {
    GAP_ABOVE: "above the floor: the synthetic images are further from the training images than held-out real images are",
    GAP_WITHIN: "no evidence of a gap",
    GAP_BELOW: "below the floor: the synthetic images are closer to the training images than held-out real images are — a copying signal, see the memorisation section",
    GAP_NOT_ESTIMABLE: "too few resamples had a defined value, so no conclusion is drawn",
}


def gap_ci(gap: Mapping) -> str:
    """``+3.2 [−1.0, +7.9]``: a stored size-matched gap (``Estimate.gap``) with its 95 % CI, or –."""
    est, lo, hi = num(gap.get("estimate")), num(gap.get("ci_low")), num(gap.get("ci_high"))
    if est is None:
        return "–"
    return signed(est) + ("" if lo is None or hi is None else f" [{signed(lo)}, {signed(hi)}]")


def distribution_sentence(scope: str, metric: str, entry: dict, n_floor: int | None = None) -> str | None:
    """A FID/KID entry against its real-vs-real floor, from its stored size-matched gap.

    The verdict is the one ``ctqc qc`` stored (``ctqc.artefacts.qc.gap_verdict`` of the interval of
    synthetic − floor at the same n, with a shared reference). An entry without a gap (a
    metrics.json from before it) falls back to comparing the full-pool CI with the floor's CI,
    marked as not size-matched. ``n_floor``: the held-out images behind the floor, to say when
    the floor was subsampled to a smaller synthetic pool instead.
    """
    gap = entry.get("gap")
    if gap:
        syn, floor, est, n = num(gap.get("synthetic")), num(gap.get("floor")), num(gap.get("estimate")), gap.get("n")
        if syn is None or floor is None or est is None:
            return None
        lo, hi = num(gap.get("ci_low")), num(gap.get("ci_high"))
        at = f"at n = {n} (the synthetic pool's size; the floor subsampled to it)" if n_floor is not None and n is not None and n < n_floor else f"at the floor's n ({n})"
        ci = "no CI" if lo is None or hi is None else f"95 % CI {signed(lo)} to {signed(hi)}"
        meaning = GAP_MEANING.get(str(gap.get("verdict")), str(gap.get("verdict")))
        return f"{scope}: {metric.upper()} {at} {sig(syn)} vs floor {sig(floor)}: difference {signed(est)} ({ci}, shared reference resample): {meaning}."
    return _unmatched_sentence(scope, metric, entry)


def _unmatched_sentence(scope: str, metric: str, entry: dict) -> str | None:
    """The pre-gap wording: the full-pool value's CI against the floor's CI (FID/KID: lower is better)."""
    v, lo, hi = num(entry.get("value")), num(entry.get("ci_low")), num(entry.get("ci_high"))
    f, flo, fhi = num(entry.get("floor")), num(entry.get("floor_ci_low")), num(entry.get("floor_ci_high"))
    if v is None or f is None:
        return None
    matched = num(entry.get("matched"))
    at_n = f"{sig(matched)} at the floor's sample size" if matched is not None and matched != v else ""
    head = f"{scope}: {metric.upper()} {_with_ci(v, lo, hi, at_n)}"
    old = " (not size-matched: this metrics.json predates the size-matched gap; run `ctqc qc` again for it)"
    if None in (lo, hi, flo, fhi):
        return f"{head}, against a real-vs-real floor of {sig(f)} (without CIs no conclusion is drawn){old}."
    if lo > fhi:
        return f"{head} lies above the real-vs-real floor {_with_ci(f, flo, fhi)}: the synthetic images are further from the real ones than real images are from each other{old}."
    return f"{head} overlaps the real-vs-real floor {_with_ci(f, flo, fhi)}: no evidence of a distribution gap on these features{old}."


def ct_sentence(name: str, c_t) -> str | None:
    c_t = num(c_t)
    if c_t is None:
        return None
    shown = f"{c_t:.2f}".replace("-", "\u2212")
    if c_t < -2:
        return f"{name}: C_T = {shown}, below −2: the synthetic images sit closer to training images than fresh real images do — evidence of copying."
    return f"{name}: C_T = {shown} (copying would push it well below 0): no evidence of data copying."


# ----------------------------------------------------------------------------- the conclusion section


class SectionLike(Protocol):
    id: str
    title: str
    ran: bool

    def get(self, key: str, default: Any = None) -> Any: ...


def paragraphs(sections: Mapping[str, SectionLike], headlines: Mapping[str, Any]) -> list[tuple[str, list[str]]]:
    """(question, sentences) from the other sections' sentences and headline numbers (``report/summary.json``)."""
    out: list[tuple[str, list[str]]] = []
    cls = headlines.get("classification")
    if cls:
        lines = classification_sentences({"comparisons": cls.get("comparisons"), "skipped": cls.get("skipped"), "primary": cls.get("primary")})
        if not lines:
            lines = ["The comparison ran, but its summary holds no paired comparisons, so no difference between arms can be stated."]
        lines += [f"Sensitivity, {line}." for line in cls.get("sensitivity_lines") or []]
        out.append(("Does augmentation help?", lines))
    realism = list(sections["c2st"].get("sentences") or []) + list(sections["metrics"].get("sentences") or [])
    if realism:
        out.append(("Are the synthetic images realistic?", realism))
    filt = headlines.get("filter")
    if filt:
        point = f"threshold {filt['c2st_threshold']}" if filt.get("c2st_threshold") is not None else filt.get("operating_point", "–")
        lines = [f"The filter ({point}) kept {filt['kept']} of {filt['kept'] + filt['rejected']} synthetic images."]
        for unit, v in filt["per_class"].items():
            after = after_check_sentence(unit, v.get("c2st_after") or {})
            if after:
                lines.append(f"After filtering — {after}")
        out.append(("Filtering", lines))
    mem = sections["memorisation"].get("sentences") or []
    if mem:
        out.append(("Copies of training images?", list(mem)))
    gan = sections["gan"]
    if gan.ran and gan.get("warnings"):
        out.append(("GAN training", [f"The trainer warned: {w}." for w in gan.get("warnings")]))
    st = headlines.get("selftest")
    if st:
        verdict = "passed" if st.get("pass") else "did not pass every check"
        checks = f"null: {passfail(st.get('null_pass'))}, planted artifacts: {passfail(st.get('planted_pass'))}, copies: {passfail(st.get('copies_pass'))}"
        out.append(("Can the QC be trusted?", [f"The planted-defect self-test {verdict} ({checks})."]))
    missing = [s.title for s in sections.values() if not s.ran and s.id != "conclusion"]
    if missing:
        out.append(("Not covered", [f"No conclusion is drawn about: {', '.join(missing)} (not run)."]))
    return out


def passfail(v) -> str:
    return "pass" if v is True else "fail" if v is False else "not recorded"
