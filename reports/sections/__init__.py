"""The report's twelve sections, one module each, each built from the run-directory files of its stage.

Every module's ``build`` returns a :class:`~reports.sections.common.Section`: the
template's fields for that section and its headline numbers. :func:`build`
numbers the sections, fills in the "not run" hints, and assembles the context
and ``report/summary.json`` from what the sections returned — no section writes
into another's result. Values from the run (file names, class names, config
text) are passed through as plain strings: the template autoescapes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from reports import conclusion
from reports.rundata import RunData
from reports.sections import c2st, classification, data, distribution, embeddings, gan, glance, memorisation, overview, samples, selftest
from reports.sections import filter as filtering
from reports.sections.common import MAX_GALLERY, MAX_SAMPLES, RealImages, Section

__all__ = ["COMMANDS", "MAX_GALLERY", "MAX_SAMPLES", "SUMMARY_KEYS", "build"]

FORMAT = "ctqc-report-summary/1"

# How to produce each section's inputs (the "not run" hint).
COMMANDS = {
    "data": "ctqc data prepare",
    "gan": "ctqc train",
    "samples": "ctqc generate",
    "metrics": "ctqc qc",
    "embeddings": "ctqc filter",
    "c2st": "ctqc filter",
    "memorisation": "ctqc filter",
    "filter": "ctqc filter",
    "classification": "ctqc compare",
    "selftest": "ctqc selftest --out RUN/qc/selftest.json",
}

# section id → its key in report/summary.json (sections without headline numbers have none)
SUMMARY_KEYS = {
    "run": "run",
    "data": "data",
    "gan": "gan",
    "samples": "samples",
    "metrics": "distribution_metrics",
    "c2st": "c2st",
    "memorisation": "memorisation",
    "filter": "filter",
    "classification": "classification",
    "selftest": "selftest",
}


def build(path: Path, real_images: Mapping[str, np.ndarray] | None = None, real_images_note: str | None = None) -> tuple[dict, dict]:
    """(template context, summary) for the run at ``path``.

    ``real_images`` maps real image ids to uint8 H×W arrays (the preprocessed
    images the run saw); the caller loads them. Without it, example and
    nearest-training images are replaced by ``real_images_note``.
    """
    run = RunData(Path(path))
    real = RealImages(real_images, real_images_note)
    sections = [
        overview.build(run),
        data.build(run, real),
        gan.build(run),
        samples.build(run),
        distribution.build(run),
        embeddings.build(run),
        c2st.build(run),
        memorisation.build(run, real),
        filtering.build(run),
        classification.build(run),
        selftest.build(run),
    ]
    headlines = {SUMMARY_KEYS[s.id]: s.summary for s in sections if s.id in SUMMARY_KEYS and (s.ran or s.id == "run")}
    lines = conclusion.paragraphs({s.id: s for s in sections}, headlines)
    sections.append(Section("conclusion", "Conclusion", True, {"paragraphs": lines}, [line for _, group in lines for line in group]))
    summary: dict[str, Any] = {"format": FORMAT, **headlines, "conclusions": sections[-1].summary}
    summary["sections"] = {s.id: ("ran" if s.ran else "not run") for s in sections}
    summary["problems"] = list(dict.fromkeys(run.problems))
    manifest = run.manifest()
    context = {
        "glance": glance.facts(sections, headlines),
        "title": f"ctqc report — {(manifest.name if manifest else None) or run.path.name}",
        "run_name": run.path.name,
        "run_path": str(run.path),
        "sections": [_context(n, s, run.path) for n, s in enumerate(sections, 1)],
        "problems": summary["problems"],
    }
    return context, summary


def _context(number: int, section: Section, run_path: Path) -> dict:
    """The template's view of one section: its fields, number, title and "not run" hint."""
    hint = section.hint or (None if section.id in ("run", "conclusion") else COMMANDS.get(section.id))
    return {
        "id": section.id,
        "title": section.title,
        "ran": section.ran,
        "number": number,
        "hint": hint.replace("RUN", str(run_path)) if hint else None,
        **section.content,
    }
