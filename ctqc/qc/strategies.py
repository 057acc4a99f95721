"""The filter's selection strategies as decisions over stored scores (no fitting here).

- ``realism``: reject an image whose p(synthetic) (``c2st_score``) is above its unit's threshold;
- ``label``: reject an image whose p(generated class) (``label_prob``, :mod:`ctqc.qc.label_scores`) is
  below the label threshold;
- ``both``: reject what either rule rejects, so its kept set is the intersection of the other two.

With memorisation checks on, every strategy also rejects flagged copies (``copy``), and with
``qc.reject_inauthentic`` images whose per-sample authenticity is False (``inauthentic``, Alaa et
al. 2022; :mod:`ctqc.qc.fidelity_metrics`). A missing score
(too few images to fit) rejects nothing under its rule, as for the C2ST. The strategy names live in
:data:`ctqc.config.FILTER_STRATEGIES`.
"""

from __future__ import annotations

import numpy as np

from ctqc.config import FILTER_STRATEGIES
from ctqc.qc.calibration import rejection_rate
from ctqc.qc.dedup import duplicate_reasons

#: The rules each strategy applies, in the order its ``reasons`` name them.
RULES = {"realism": ("c2st", "copy", "inauthentic"), "label": ("label", "copy", "inauthentic"), "both": ("c2st", "label", "copy", "inauthentic")}
#: Each strategy in words (filter.json, the report).
DESCRIPTIONS = {
    "realism": "drop images the C2ST calls synthetic (p(synthetic) above the threshold)",
    "label": "drop images a classifier fitted on the fold's real training images does not assign to their generated class (p < the label threshold)",
    "both": "drop images that fail either rule: the kept set is what realism and label both keep",
}
assert tuple(RULES) == FILTER_STRATEGIES == tuple(DESCRIPTIONS)


def flags(rows, c2st_threshold, label_threshold: float, memorisation: bool, inauthentic: bool = False) -> dict[str, np.ndarray]:
    """Per rule, which of ``rows`` (score-table rows) it rejects; ``c2st_threshold``: one number or one per row.

    ``inauthentic``: reject rows whose ``authentic`` column is False (score tables written before
    issue 18 have no such column: nothing is rejected by that rule).
    """
    c2st = rows["c2st_score"].to_numpy(float) > np.asarray(c2st_threshold, dtype=float)
    label_prob = rows["label_prob"].to_numpy(float) if "label_prob" in rows else np.full(len(rows), np.nan)
    label = label_prob < label_threshold  # NaN (no classifier) compares False: not rejected
    copied = _true(rows["copy_flagged"]) if memorisation and "copy_flagged" in rows else np.zeros(len(rows), bool)
    flagged = inauthentic and "authentic" in rows
    unauthentic = (~_true(rows["authentic"]) & rows["authentic"].notna().to_numpy()) if flagged else np.zeros(len(rows), bool)
    return {"c2st": c2st, "label": label, "copy": copied, "inauthentic": unauthentic}


def _true(column) -> np.ndarray:
    """(n,) bool of a flag column as stored or read back from CSV (True/False, "True"/"False", 1/0); missing = False."""
    return column.map(lambda v: str(v) in ("True", "true", "1", "1.0")).to_numpy(bool)


def decide_strategy(synthetic, strategy: str, rule_flags: dict[str, np.ndarray], dedup: bool = False):
    """A copy of ``synthetic`` with ``reasons`` ('' = kept; rules joined with ``+``) under ``strategy``.

    With ``dedup``, every duplicate group then keeps one image and rejects the rest as ``duplicate``
    (:func:`ctqc.qc.dedup.duplicate_reasons`: the first member no other rule rejects).
    """
    out = synthetic.copy()
    rules = RULES[strategy]
    out["reasons"] = ["+".join(r for r in rules if rule_flags[r][i]) for i in range(len(out))]
    if dedup:
        out["reasons"] = ["+".join(r for r in (before, "duplicate" if hit else "") if r) for before, hit in zip(out["reasons"], duplicate_reasons(out))]
    return out


def genuine_rejection(heldout, strategy: str, c2st_threshold, label_threshold: float) -> dict:
    """The share of held-out real images (``heldout`` score rows) the strategy's score rules would reject.

    They took no part in fitting either score. An image counts when it has every score the strategy
    reads; the copy rule is left out (it compares synthetic images with training images). A 95 %
    Wilson interval comes with the share (:func:`ctqc.qc.calibration.rejection_rate`).
    """
    rule = flags(heldout, c2st_threshold, label_threshold, memorisation=False)
    columns = {"c2st": "c2st_score", "label": "label_prob"}
    used = [r for r in RULES[strategy] if r in columns]
    scored = np.all([np.isfinite(heldout[columns[r]].to_numpy(float)) if columns[r] in heldout else np.zeros(len(heldout), bool) for r in used], axis=0)
    rejected = np.any([rule[r] for r in used], axis=0)
    rate = rejection_rate(np.where(scored, rejected.astype(float), np.nan), 0.5)
    return {**rate, "expected": rate["rate"], "basis": f"share of the {rate['n']} held-out real images the {strategy} rule(s) reject (an estimate; 95 % Wilson interval)"}
