"""What every section shares: the :class:`Section` it returns, caps, number formats, the real images."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from reports import conclusion as concl
from reports.conclusion import num
from reports.images import THUMB_PX, Picture, picture_from_array

# caps that keep a default run's report well under 10 MB
MAX_REAL_EXAMPLES = 8  # per class
MAX_SAMPLES = 16  # per class
MAX_GALLERY = 24  # kept / rejected each
MAX_GRIDS = 6  # per GAN unit, evenly spaced over training
MAX_PAIRS = 8  # memorisation pairs
MAX_GAN_FIGURE_FOLDS = 1  # loss/quality figures for fold 0; a table covers every fold


@dataclass
class Section:
    """One section of the report: what the template shows, and its headline numbers.

    ``content``: the template's fields for this section. ``summary``: the section's entry in
    ``report/summary.json`` (None: none). ``hint``: the command that produces its inputs
    (None: the default for the section, see ``reports.sections.COMMANDS``).
    """

    id: str
    title: str
    ran: bool
    content: dict[str, Any] = field(default_factory=dict)
    summary: Any = None
    hint: str | None = None

    def get(self, key: str, default=None):
        return self.content.get(key, default)


class RealImages:
    """The run's real images (id → uint8 H×W), or the note saying why they are absent."""

    def __init__(self, images: Mapping[str, np.ndarray] | None, note: str | None) -> None:
        self.images = images
        self.note = note if images is None else None
        if images is None and not note:
            self.note = "the real images were not loaded for this report"

    def picture(self, image_id: str, caption: str = "", title: str = "") -> Picture | None:
        if self.images is None or image_id not in self.images:
            return None
        return picture_from_array(self.images[image_id], THUMB_PX, caption=caption, title=title)


def fmt(v, digits: int = 3) -> str:
    """A number for a table cell: ``digits`` decimals (trailing zeros dropped), or significant digits when tiny or huge."""
    f = num(v)
    if f is None:
        return "–"
    if f == 0:
        return "0"
    if abs(f) >= 1e4 or abs(f) < 10**-digits:
        return concl.sig(f, digits)
    return f"{f:.{digits}f}".rstrip("0").rstrip(".").replace("-", "\u2212")


def auc(v) -> str:
    f = num(v)
    return "–" if f is None else f"{f:.3f}"


def ci(value, low, high) -> str:
    """value [low, high] to 4 significant figures."""
    v = num(value)
    if v is None:
        return "–"
    lo, hi = num(low), num(high)
    return f"{concl.sig(v, 4)} [{concl.sig(lo, 4)}, {concl.sig(hi, 4)}]" if lo is not None and hi is not None else concl.sig(v, 4)


def pct_ci(mean, low, high) -> str:
    """mean [CI] of a fraction, in %."""
    m, lo, hi = num(mean), num(low), num(high)
    if m is None:
        return "–"
    pct = lambda f: f"{f * 100:.1f}".replace("-", "\u2212")  # noqa: E731
    if lo is None or hi is None:
        return f"{pct(m)} %"
    return f"{pct(m)} % [{pct(lo)}, {pct(hi)}]"


def percent(v) -> str:
    """A fraction as a whole-number percentage, or –."""
    f = num(v)
    return "–" if f is None else f"{f:.0%}"


def c2st_cell(result) -> str:
    """``AUC 0.912 (p = 0.005)`` of a :class:`ctqc.artefacts.C2STResult`, or its note."""
    if result is None:
        return "–"
    if result.auc is None:
        return result.note or "–"
    return f"AUC {auc(result.auc)} ({concl.fmt_p(result.p_value)})"


def duration(seconds) -> str:
    s = num(seconds)
    if s is None:
        return "–"
    if s < 60:
        return f"{s:.1f} s"
    minutes, sec = divmod(int(round(s)), 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"
