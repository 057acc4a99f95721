"""One figure style for the whole report: Okabe–Ito colours, readable at 100 % zoom.

Every figure goes through :func:`new_figure` / :func:`figure_data_uri`, so all of
them share the palette, font sizes and resolution, and end up as PNG data URIs
(the report must open offline, from a single file).
"""

from __future__ import annotations

import base64
import io

# Okabe & Ito (2008), "Color Universal Design": distinguishable with every common colour-vision deficiency.
OKABE_ITO = {
    "blue": "#0072B2",
    "orange": "#E69F00",
    "green": "#009E73",
    "vermillion": "#D55E00",
    "sky": "#56B4E9",
    "purple": "#CC79A7",
    "yellow": "#F0E442",
    "black": "#000000",
    "grey": "#999999",
}
# the order series are coloured in (yellow last: weak on white)
CYCLE = [OKABE_ITO[k] for k in ("blue", "orange", "green", "vermillion", "purple", "sky", "black", "yellow")]
REAL, SYNTHETIC, FLOOR = OKABE_ITO["blue"], OKABE_ITO["orange"], OKABE_ITO["grey"]
KEPT, REJECTED, THRESHOLD = OKABE_ITO["green"], OKABE_ITO["vermillion"], OKABE_ITO["black"]
DPI = 100  # figures are sized in inches at this dpi, so 1 figure px = 1 screen px at 100 % zoom

_applied = False


def colour(i: int) -> str:
    return CYCLE[i % len(CYCLE)]


def apply_style() -> None:
    """Select the Agg backend and set the shared theme (idempotent)."""
    global _applied
    if _applied:
        return
    import matplotlib

    matplotlib.use("Agg")
    import seaborn as sns

    sns.set_theme(
        context="notebook",
        style="whitegrid",
        palette=CYCLE,
        font_scale=0.85,
        rc={
            "figure.dpi": DPI,
            "savefig.dpi": DPI,
            "axes.titlesize": 11,
            "axes.titleweight": "bold",
            "axes.labelsize": 10,
            "legend.fontsize": 9,
            "legend.frameon": False,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "font.family": "DejaVu Sans",
            "svg.fonttype": "none",
        },
    )
    _applied = True


def new_figure(ncols: int = 1, nrows: int = 1, width: float = 9.0, height: float = 3.2, **kwargs):
    """A constrained-layout figure with ``nrows × ncols`` axes (always a 2-D array)."""
    apply_style()
    import matplotlib.pyplot as plt

    return plt.subplots(nrows, ncols, figsize=(width, height), squeeze=False, constrained_layout=True, **kwargs)


def figure_data_uri(fig) -> str:
    """Render ``fig`` to a PNG data URI and close it."""
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
    plt.close(fig)
    return png_uri(buffer.getvalue())


def png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")
