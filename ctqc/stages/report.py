"""The report stage: render a run's self-contained HTML report and its headline numbers.

Reads the run directory (through :mod:`reports`, which only reads files) and
writes ``report/report.html`` and ``report/summary.json`` atomically, recording
the stage ``report`` in the manifest. The run's real images are not stored in
the run directory, so this stage reloads them from the configured data — only
to show examples and nearest-training-image pairs — and checks the data
fingerprint first; if the data moved or changed, the report says so instead.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ctqc import atomic
from ctqc.errors import UserError
from ctqc.run import Run
from reports.render import build_report


@dataclass(frozen=True)
class ReportResult:
    html_path: Path
    summary_path: Path
    copy_path: Path | None  # the --out copy, when asked for
    summary: dict
    size_bytes: int


def real_images_for(run: Run) -> tuple[dict[str, np.ndarray] | None, str | None]:
    """The run's real images as id → uint8 H×W (preprocessed as the run saw them), or (None, why not)."""
    try:
        data = run.data()  # checks the fingerprint
    except UserError as exc:
        return None, f"the run's data could not be loaded ({exc})"
    pixels = ((data.images[:, 0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).numpy()
    return {str(i): pixels[n] for n, i in enumerate(data.ids)}, None


def make_report(run: Run, out: str | Path | None = None, html: bool = True, real_images: bool = True) -> ReportResult:
    """Render ``run``'s report into ``<run>/report/`` (and copy the HTML to ``out``).

    With ``html=False`` only ``summary.json`` is written. ``real_images=False``
    skips reloading the data (the report then shows no real images).
    """
    out_path = Path(out) if out is not None else None
    if out_path is not None:
        if not html:
            raise UserError("--out names the HTML file; it cannot be combined with --no-html")
        if out_path.is_dir():
            raise UserError(f"--out {out_path} is a folder; give a file name such as {out_path / 'report.html'}")
        if not out_path.parent.exists():
            raise UserError(f"--out {out_path}: folder {out_path.parent} does not exist")
    images, note = real_images_for(run) if real_images else (None, "real images were not requested for this report")
    report = build_report(run.path, images, note)
    html_path, summary_path = run.layout.report_html, run.layout.report_summary
    with run.stage("report") as outputs:
        if html:
            atomic.write_text(html_path, report.html)
            outputs.append(run.layout.rel(html_path))
        atomic.write_json(summary_path, report.summary)
        outputs.append(run.layout.rel(summary_path))
    if html and out_path is not None:
        with atomic.atomic_path(out_path) as tmp:
            shutil.copyfile(html_path, tmp)
    return ReportResult(
        html_path=html_path,
        summary_path=summary_path,
        copy_path=out_path if html else None,
        summary=report.summary,
        size_bytes=len(report.html.encode("utf-8")) if html else 0,
    )
