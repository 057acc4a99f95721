"""11 QC self-test: null, planted artefacts, planted copies and set-level defects (qc/selftest.json)."""

from __future__ import annotations

import numpy as np

from ctqc.artefacts import CopyCheck, DedupCheck, NullCheck, PlantedCheck, SetLevelCheck, SetLevelNull
from reports.rundata import RunData
from reports.sections.common import Section, auc, percent

STRENGTHS = ["low", "medium", "high"]


def _finite(values: list[float | None]) -> list[float]:
    return [v for v in values if v is not None and np.isfinite(v)]


def build(run: RunData) -> Section:
    st = run.selftest()
    if st is None:
        return Section("selftest", "QC self-test", False)
    null, planted, copies = st.null or NullCheck(), st.planted or PlantedCheck(), st.copies or CopyCheck()
    aucs, pvals, disc = _finite(null.auc), _finite(null.p_values), _finite(null.discarded_fraction)
    null_row = {
        "auc": f"{np.mean(aucs):.3f} ({min(aucs):.3f}–{max(aucs):.3f} over {len(aucs)} splits)" if aucs else "–",
        "p": f"{min(pvals):.2g}–{max(pvals):.2g}" if pvals else "–",
        "discarded": (f"{null.mean_discarded:.0%} on average, " if null.mean_discarded is not None else "") + (f"≤ {max(disc):.0%}" if disc else "–"),
        "ece": "–" if null.mean_ece is None else f"{null.mean_ece:.3f}",
        "pass": null.passed,
    }
    planted_rows = [
        {
            "name": name.replace("_", " "),
            "cells": [auc(levels.get(s)) for s in STRENGTHS],
            "removed": [planted.medium_share("removed", name) if s == "medium" else percent(planted.removed.get(name, {}).get(s)) for s in STRENGTHS],
            "genuine": planted.medium_share("genuine_removed", name),
        }
        for name, levels in planted.auroc.items()
    ]
    copy_rows = [(kind.replace("_", " "), percent(v)) for kind, v in copies.flagged.items()]
    sets = st.set_level
    summary = {"pass": st.passed, "null_pass": null.passed, "planted_pass": planted.passed, "copies_pass": copies.passed, "set_level_pass": None if sets is None else sets.passed}
    content = {
        "overall": st.passed,
        "null": null_row,
        "planted_rows": planted_rows,
        "strengths": STRENGTHS,
        "rising": planted.rising_with_strength,
        "medium_ok": planted.medium_at_least_0_9,
        "removed_ok": planted.medium_removed_at_least_0_9,
        "genuine_ok": planted.genuine_removed_at_most_0_1,
        "operating_point": st.operating_point,
        "n_splits": planted.n_splits,
        "has_removed": bool(planted.removed),
        "planted_pass": planted.passed,
        "copy_rows": copy_rows,
        "genuine": percent(copies.genuine_flagged),
        "copies_pass": copies.passed,
        "n_images": st.n_images,
        "features": ", ".join(st.features),
        "threshold": st.threshold,
        "images_used": st.data.images_used if st.data else None,
        "sets": None if sets is None else _set_level(sets),
    }
    return Section("selftest", "QC self-test", True, content, summary)


def _set_level(sets: SetLevelCheck) -> dict:
    """Part (d): per set-level defect the share of splits each global test detects, the MMD's null rejections, dedup."""
    dedup, null = sets.dedup or DedupCheck(), sets.null or SetLevelNull()
    rows = [
        {"name": name.replace("_", " ") + ("" if d.judged else " (recorded, not judged)"), "mmd": percent(d.mmd_detected), "c2st": percent(d.c2st_detected), "judged": d.judged}
        for name, d in sets.defects.items()
    ]
    return {
        "rows": rows,
        "n_repeats": sets.n_repeats,
        "n_distinct": sets.n_distinct,
        "set_size": sets.set_size,
        "mmd_permutations": sets.mmd_permutations,
        "c2st_permutations": sets.c2st_permutations,
        "null": percent(null.mmd_rejected),
        "detected_ok": sets.detected_at_least_0_9,
        "null_ok": sets.null_rejected_at_most_0_2,
        "dedup_flagged": ", ".join(f"{kind} {percent(v)}" for kind, v in dedup.flagged.items()),
        "dedup_genuine": percent(dedup.genuine_flagged),
        "dedup_threshold": dedup.threshold,
        "dedup_pass": dedup.passed,
        "pass": sets.passed,
    }
