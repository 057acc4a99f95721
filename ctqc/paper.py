"""The paper ctqc reproduces, as data: its Table 1, defined once (fractions in [0, 1]).

Source: "Data augmentation using generative adversarial networks for head CT
hemorrhage classification" (DCGAN + ResNet-50 on the Kaggle head-CT slices),
Table 1. Keys are ctqc's arm names; ``compare`` prints it beside its own results
and ``reports`` shows it, both from here.
"""

from __future__ import annotations

METRICS = ("accuracy", "sensitivity", "specificity")

#: Table 1 of the paper, fractions, keyed by ctqc's arm names.
TABLE1: dict[str, dict[str, float | str]] = {
    "original": {"label": "ResNet-50 (original)", "accuracy": 0.7651, "sensitivity": 0.7237, "specificity": 0.8304},
    "synthetic-only": {"label": "ResNet-50 (only DA)", "accuracy": 0.6061, "sensitivity": 0.9315, "specificity": 0.6848},
    "original+synthetic": {"label": "ResNet-50 (original + DA)", "accuracy": 0.7865, "sensitivity": 0.7314, "specificity": 0.8660},
}

NOTE = (
    "paper, 'only DA' row: its accuracy (60.61 %) lies outside [specificity, sensitivity] = [68.48 %, 93.15 %], "
    "which no class mix allows; shown as printed"
)
