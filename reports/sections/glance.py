"""At a glance: short headline facts for the top of the page, from the sections' headline numbers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reports import conclusion as concl
from reports.sections.common import Section, auc, ci


def facts(sections: list[Section], headlines: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(label, text) pairs, each with its uncertainty where it has one."""
    out: list[tuple[str, str]] = []
    data = headlines.get("data") or {}
    if data.get("class_counts"):
        sizes = data.get("split_sizes") or {}
        split = f"; split {sizes.get('train')} / {sizes.get('val')} / {sizes.get('test')} train / val / test" if sizes else ""
        out.append(("Data", f"{data.get('n_images')} images — " + ", ".join(f"{n} {c}" for c, n in data["class_counts"].items()) + split))
    gan = headlines.get("gan") or {}
    if gan:
        warned = sum(1 for u in gan.values() if u["warnings"])
        out.append(("GAN", f"{len(gan)} GAN(s) trained" + (f"; {warned} with trainer warnings" if warned else "")))
    c2st = headlines.get("c2st") or {}
    source = c2st.get("qc") or c2st.get("filter") or {}
    parts = [f"{k} AUC {auc(v.get('auc'))} ({concl.fmt_p(v.get('p_value'))})" for k, v in source.items() if concl.num(v.get("auc")) is not None]
    if parts:
        out.append(("Realism (C2ST, 0.5 = indistinguishable)", "; ".join(parts)))
    scopes = (headlines.get("distribution_metrics") or {}).get("scopes") or {}
    fid = [(k, v["fid"]) for k, v in scopes.items() if concl.num((v.get("fid") or {}).get("value")) is not None]
    if fid:
        out.append(("FID vs real-vs-real floor", "; ".join(_fid_fact(k, e) for k, e in fid)))
    filt = headlines.get("filter")
    if filt:
        out.append(
            (
                "Filter",
                f"kept {filt['kept']} of {filt['kept'] + filt['rejected']} synthetic images ("
                + (f"threshold {filt['c2st_threshold']}" if filt.get("c2st_threshold") is not None else filt.get("operating_point", "–"))
                + ")",
            )
        )
    cls = headlines.get("classification")
    if cls:
        primary = cls.get("primary_results") or []
        for i, r in enumerate(primary, 1):  # the pre-specified comparisons, in their fixed testing order
            out.append((f"Primary comparison {i} of {len(primary)} ({r['metric']}): {r['name']}", r["text"]))
        if not primary:
            lines = concl.classification_sentences({"comparisons": cls.get("comparisons")})
            out.append(("Augmentation", lines[0] if lines else "no paired comparisons in compare/summary.json"))
    st = headlines.get("selftest")
    if st:
        out.append(("QC self-test", "passed" if st.get("pass") else "did not pass every check"))
    missing = [s.title for s in sections if not s.ran]
    if missing:
        out.append(("Not run", ", ".join(missing)))
    return out


def _fid_fact(scope: str, e: Mapping[str, Any]) -> str:
    """The stored size-matched gap and its verdict; an older entry without one: value vs floor, marked."""
    gap = e.get("gap")
    if gap and concl.num(gap.get("estimate")) is not None:
        return f"{scope} {concl.gap_ci(gap)} at n = {gap.get('n')}: {gap.get('verdict')}"
    return f"{scope} {ci(e.get('value'), e.get('ci_low'), e.get('ci_high'))} vs {ci(e.get('floor'), e.get('floor_ci_low'), e.get('floor_ci_high'))} (not size-matched)"
