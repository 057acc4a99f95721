"""Per-image scores, as the C2ST, memorisation and filter sections read them.

- the filter's decision: ``filter/kept.csv`` + ``filter/rejected.csv`` (synthetic images, with reasons);
- the score stage's ``qc/scores.csv``: synthetic images and real ones, each real image with its
  role (``fit``: the C2ST's reference images, scored out of fold; ``heldout``: validation images).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from reports.rundata import RunData


def decisions(run: RunData) -> pd.DataFrame | None:
    """kept + rejected rows of the filter (one per synthetic image), or None before ``ctqc filter``."""
    parts = [t for t in (run.csv(run.layout.kept), run.csv(run.layout.rejected)) if t is not None and not t.empty]
    return pd.concat(parts, ignore_index=True) if parts else None


def stored(run: RunData) -> pd.DataFrame | None:
    """``qc/scores.csv``, or None before the score stage."""
    table = run.csv(run.layout.scores)
    return None if table is None or table.empty else table


def synthetic(scores: pd.DataFrame | None) -> pd.DataFrame | None:
    if scores is None or "source" not in scores:
        return None
    rows = scores[scores["source"] == "synthetic"]
    return None if rows.empty else rows


def calibration_table(scores: pd.DataFrame | None) -> pd.DataFrame | None:
    """Synthetic and real ``fit`` rows → columns class / score / is_synthetic; None without both groups.

    Both groups were scored out of fold by the C2ST that was fitted to tell them apart, so the
    reliability diagram asks whether its p(synthetic) reads as a probability on that balanced task.
    """
    if scores is None or not {"source", "role", "c2st_score"} <= set(scores.columns):
        return None
    rows = scores[(scores["source"] == "synthetic") | (scores["role"] == "fit")]
    is_synthetic = rows["source"] == "synthetic"
    if is_synthetic.all() or not is_synthetic.any():
        return None
    out = rows.assign(score=pd.to_numeric(rows["c2st_score"], errors="coerce").astype(float), is_synthetic=is_synthetic)
    return out[np.isfinite(out["score"])]
