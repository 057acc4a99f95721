"""Render the report: section context → one self-contained HTML page.

Jinja2 with autoescaping forced on (the template's ``.j2`` suffix would
otherwise defeat extension-based autoescape selection): file names, class
names and config values come from the user and are always escaped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ctqc import __version__
from reports.sections import build

TEMPLATES = Path(__file__).resolve().parent / "templates"
TEMPLATE = "report.html.j2"


@dataclass(frozen=True)
class Report:
    html: str
    summary: dict


def environment():
    from jinja2 import Environment, FileSystemLoader, StrictUndefined

    return Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=False,
        lstrip_blocks=False,
        keep_trailing_newline=True,
    )


def render_html(context: dict) -> str:
    template = environment().get_template(TEMPLATE)
    return template.render(ctqc_version=__version__, generated=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"), **context)


def build_report(run_path: str | Path, real_images: Mapping[str, np.ndarray] | None = None, real_images_note: str | None = None) -> Report:
    """Read the run directory at ``run_path`` and render its report (nothing is written).

    ``real_images``: id → uint8 H×W array of the run's real images (for
    examples and nearest-training-image pairs); ``real_images_note`` says why
    they are absent when ``None``.
    """
    context, summary = build(Path(run_path), real_images, real_images_note)
    return Report(html=render_html(context), summary=summary)
