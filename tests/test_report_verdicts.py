"""The report's classification section shows the comparison as a statistician would (issue 16).

A hand-made ``compare/summary.json`` (the :class:`ctqc.artefacts.CompareSummary` fields the
compare stage writes) in an otherwise empty run directory: primary (fixed sequence) and
secondary (Holm) comparisons with verdicts and MDEs, a not-estimable one, degenerate
trainings with a sensitivity block, the duplicate-real arm, ratio arms with dose-response
points. The report must state the estimand and what the intervals include, label primary
and secondary, show the MDEs, the sensitivity lines, the duplicate-real control and the
dose-response figure; an older summary without these fields still renders.
"""

from __future__ import annotations

import base64
import io
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from ctqc.arms import ARMS
from ctqc.artefacts import CompareSummary
from reports.render import build_report
from tests.conftest import t_test_summary

ESTIMAND = "balanced accuracy of the trained pipeline on images like these, averaged over training seeds"
INTERVAL = "95 % percentile bootstrap over test images (stratified by class; the same resample for every arm, so differences are paired)"
CONFIGURED = list(ARMS)  # the default compare.arms, in their order
STEP1 = "fixed sequence, step 1, tested at α = 0.05"
STOPPED = "fixed sequence stopped at original+filtered − original+random-subset: not tested"
HOLM = "Holm over 6 secondary comparisons"


def _arm(mean: float, with_auc: bool = True) -> dict:
    out = {
        m: {"mean": mean, "ci_low": mean - 0.05, "ci_high": mean + 0.05, "n": 3, "n_images": 60, "n_replicates": 3, "interval": INTERVAL, "estimand": ESTIMAND}
        for m in ("accuracy", "balanced_accuracy")
    }
    if with_auc:
        out["roc_auc"] = {"mean": mean + 0.1, "ci_low": mean + 0.05, "ci_high": mean + 0.15, "n": 3, "interval": "over trainings only (folds × seeds): test images are not resampled"}
    return out


def _cmp(arm: str, ref: str, est, lo, hi, p, padj, mdd, verdict: str, role: str, adjustment: str, **extra) -> dict:
    return {
        "arm": arm, "reference": ref, "metric": "balanced_accuracy", "estimate": est, "mean_diff": est, "ci_low": lo, "ci_high": hi,
        "p_value": p, "p_adjusted": padj, "mdd": mdd, "verdict": verdict, "role": role, "adjustment": adjustment, "alpha": 0.05,
        "estimand": ESTIMAND, "interval": INTERVAL, "n_images": 60, "n_replicates": 3, "n_pairs": 3,
        "over_trainings": {"mean_diff": est, "ci_low": lo - 0.02, "ci_high": hi + 0.02, "p_value": 0.25, "test": "wilcoxon", "n_pairs": 3} if est == est else None,
        **extra,
    }  # fmt: skip


def new_summary() -> dict:
    nan = float("nan")
    comparisons = [
        # stored out of testing order: the report orders the primary comparisons by summary["primary"]
        _cmp("original+filtered", "original+synthetic", -0.004, -0.036, 0.028, 0.81, 0.81, 0.049, "no evidence of a difference", "primary", STOPPED),
        _cmp("original+filtered", "original+random-subset", 0.012, -0.020, 0.044, 0.31, 0.31, 0.051, "no evidence of a difference", "primary", STEP1),
        _cmp("original+synthetic", "original", 0.050, 0.010, 0.090, 0.004, 0.02, 0.046, "evidence of an improvement", "secondary", HOLM),
        _cmp("synthetic-only", "original", -0.160, -0.220, -0.100, 0.0002, 0.0012, 0.052, "evidence of a decrease", "secondary", HOLM),
        _cmp("original+synthetic", "original+duplicated", 0.031, 0.004, 0.058, 0.02, 0.08, 0.044, "no evidence of a difference", "secondary", HOLM),
        _cmp("original+classical", "original", nan, nan, nan, nan, nan, nan, "not estimable", "secondary", HOLM, why="zero-width interval (the arms' per-image predictions do not differ)"),
        _cmp("original+synthetic-x0.5", "original", 0.02, -0.01, 0.05, 0.2, 0.6, 0.05, "no evidence of a difference", "secondary", HOLM),
        _cmp("original+synthetic-x2", "original", 0.04, 0.00, 0.08, 0.06, 0.24, 0.05, "no evidence of a difference", "secondary", HOLM, note="one seed: the interval leaves out seed-to-seed variation"),
        {
            "arm": "original+filtered", "reference": "original", "metric": "roc_auc", "verdict": "not estimable", "role": "secondary",
            "why": "no image-level method for ROC AUC yet: see over_trainings",
            "over_trainings": {"mean_diff": 0.03, "ci_low": -0.01, "ci_high": 0.07, "p_value": 0.5, "test": "wilcoxon", "n_pairs": 3},
        },
    ]  # fmt: skip
    arms = {  # deliberately not in the configured order: ratio arms and the control first
        "original+synthetic-x2": _arm(0.79),
        "original+duplicated": _arm(0.745),
        "original+synthetic-x0.5": _arm(0.77),
        **{a: _arm(0.70 + 0.01 * i) for i, a in enumerate(CONFIGURED) if a != "original+duplicated"},
    }
    return {
        "metrics": ["accuracy", "balanced_accuracy", "roc_auc"],
        "arms": arms,
        "degenerate_trainings": {a: {"original+filtered": 2, "original+random-subset": 1}.get(a, 0) for a in arms},
        "comparisons": comparisons,
        "skipped": {},
        "seeds": [0, 1, 2],
        "folds": [0],
        "config": {"compare": {"arms": CONFIGURED, "seeds": 3}},
        "ci": INTERVAL + "; ROC AUC and over_trainings: 95 % two-sided t-interval of the mean over folds × seeds",
        "estimand": ESTIMAND,
        "primary": [["original+filtered", "original+random-subset"], ["original+filtered", "original+synthetic"]],
        "alpha": 0.05,
        "replicates": "one per seed (holdout) or per (repeat, seed) with the folds' out-of-fold predictions pooled (k-fold)",
        "test": "paired sign-flip permutation over images (seed-averaged per-image differences)",
        "sensitivity": {
            "excluded": {"original+filtered": 2, "original+random-subset": 1},
            "rule": "a replicate is left out when any training of either arm in it predicted one class for every image",
            "comparisons": [
                _cmp("original+filtered", "original+random-subset", 0.018, -0.015, 0.051, 0.27, 0.27, 0.053, "no evidence of a difference", "primary", STEP1),
                _cmp("original+filtered", "original+synthetic", 0.001, -0.030, 0.032, 0.95, 0.95, 0.050, "no evidence of a difference", "primary", STOPPED),
            ],
        },
        "dose_response": [
            {"arm": "original+synthetic-x2", "ratio": 2.0, "n_synthetic": 46.0, "extended": 240},
            {"arm": "original+synthetic-x0.5", "ratio": 0.5, "n_synthetic": 11.5, "extended": 0},
            {"arm": "original+synthetic-x4", "ratio": 4.0, "n_synthetic": None, "extended": 0, "skipped": "the generator checkpoint is missing"},
        ],
    }


def old_summary() -> dict:
    """A summary.json written before issue 16: per-training means, no roles, verdicts, MDEs or the new fields."""
    stat = lambda m: {"mean": m, "ci_low": m - 0.08, "ci_high": m + 0.08, "n": 5}  # noqa: E731
    arms = {a: {"accuracy": stat(0.7 + 0.02 * i), "balanced_accuracy": stat(0.7 + 0.02 * i)} for i, a in enumerate(["original", "original+synthetic", "original+filtered"])}
    return t_test_summary(["accuracy", "balanced_accuracy"], arms)


# ----------------------------------------------------------------------------- helpers


class _Text(HTMLParser):
    """Text of each <section> by id, of the at-a-glance box, and every <img> with its attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, str] = {}
        self.glance = ""
        self.images: list[dict] = []
        self._where: str | None = None
        self._depth = 0
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append({**attrs, "section": self._where})
        if tag == "section" or (tag == "div" and attrs.get("class") == "glance"):
            self._where, self._text = (attrs.get("id") if tag == "section" else "glance"), []
        elif tag in ("tr", "p", "h3", "li") and self._where:
            self._text.append("\n")

    def handle_endtag(self, tag):
        if self._where and (tag == "section" or (tag == "div" and self._where == "glance")):
            text = "\n".join(" ".join(line.split()) for line in "".join(self._text).split("\n") if line.strip())
            if self._where == "glance":
                self.glance = text
            else:
                self.sections[self._where] = text
            self._where = None

    def handle_data(self, data):
        if self._where:
            self._text.append(data + " ")


def render(tmp_path: Path, summary: dict):
    (tmp_path / "compare").mkdir(parents=True)
    (tmp_path / "compare" / "summary.json").write_text(json.dumps(summary))
    report = build_report(tmp_path)
    doc = _Text()
    doc.feed(report.html)
    return report, doc


@pytest.fixture(scope="module")
def new_report(tmp_path_factory):
    return render(tmp_path_factory.mktemp("verdicts"), new_summary())


def test_the_hand_made_summary_follows_the_artefact_model():
    summary = CompareSummary.model_validate(new_summary())
    assert summary.sensitivity is not None and len(summary.dose_response) == 3
    assert CompareSummary.model_validate(old_summary()).sensitivity is None


# ----------------------------------------------------------------------------- tests


def test_estimand_and_intervals_are_stated_above_the_tables(new_report):
    report, doc = new_report
    text = doc.sections["classification"]
    assert f"Estimand {ESTIMAND}" in text
    assert f"Intervals include {INTERVAL}" in text and "Significance level α = 0.05" in text
    assert text.index("Estimand") < text.index("degenerate trainings") < text.index("Primary (fixed sequence")
    assert report.summary["classification"]["estimand"] == ESTIMAND


def test_primary_and_secondary_comparisons_are_labelled_with_p_adjusted_p_mde_and_verdict(new_report):
    _, doc = new_report
    text = doc.sections["classification"]
    primary = text[text.index("Primary (fixed sequence, α = 0.05)") : text.index("Secondary (Holm-adjusted)")]
    secondary = text[text.index("Secondary (Holm-adjusted)") :]
    # primary: in the fixed testing order, whatever order summary.json stores them in
    step1 = "original+filtered − original+random-subset +1.2 −2.0 to +4.4 0.31 0.31 could detect ≥ 5.1 points no evidence of a difference 60 images × 3"
    assert step1 in primary
    assert primary.index("original+random-subset +1.2") < primary.index("original+filtered − original+synthetic −0.4")
    assert f"no evidence of a difference ({STOPPED})" in primary
    # secondary: Holm-adjusted p, the verdict on it, MDE; the not-estimable row says why
    assert HOLM in secondary
    assert "original+synthetic − original +5.0 +1.0 to +9.0 0.004 0.02 could detect ≥ 4.6 points evidence of an improvement" in secondary
    assert "synthetic-only − original −16.0 −22.0 to −10.0 < 0.001 0.0012 could detect ≥ 5.2 points evidence of a decrease" in secondary
    assert "original+classical − original – – – – – not estimable: zero-width interval (the arms' per-image predictions do not differ)" in secondary
    assert "[1] one seed: the interval leaves out seed-to-seed variation" in text
    # other metrics and the per-training display are secondary and say what they are
    assert "not estimable: no image-level method for ROC AUC yet" in text
    assert "Per-training t-interval (optimisation noise only: test images not resampled; a secondary display)" in text
    assert "roc auc: over trainings only (folds × seeds): test images are not resampled" in text


def test_degenerate_trainings_per_arm_and_the_sensitivity_line(new_report):
    report, doc = new_report
    text = doc.sections["classification"]
    table = text[text.index("n degenerate trainings") : text.index("Degenerate training:")]
    rows = {line.split(" ")[0]: line for line in table.splitlines()[1:]}
    assert rows["original+filtered"].endswith(" 3 2") and rows["original+random-subset"].endswith(" 3 1") and rows["original"].endswith(" 3 0")
    line = "↳ Without the 3 degenerate trainings (original+filtered 2, original+random-subset 1): +1.8 points (95 % CI −1.5 to +5.1; p = 0.27): no evidence of a difference; could detect ≥ 5.3 points"
    assert line in text
    # next to the main result: right after the primary row it belongs to
    assert text.index("original+filtered − original+random-subset +1.2") < text.index(line) < text.index("original+filtered − original+synthetic −0.4")
    assert "Sensitivity analysis: 3 degenerate training(s) left out" in text
    summary = report.summary["classification"]
    assert summary["degenerate_trainings"]["original+filtered"] == 2
    assert summary["sensitivity_lines"][0].startswith("original+filtered − original+random-subset: without the 3 degenerate trainings")
    assert "Sensitivity, original+filtered − original+random-subset: without the 3 degenerate trainings" in doc.sections["conclusion"]


def test_the_duplicate_real_arm_is_explained_with_its_comparison(new_report):
    _, doc = new_report
    text = doc.sections["classification"]
    assert "‘original+duplicated’ trains on the real training images repeated until there are as many as ‘original+synthetic’ trains on" in text
    assert "separates the effect of new images from that of more images" in text
    assert (
        "original+synthetic − original+duplicated (balanced accuracy, secondary): +3.1 points (95 % CI +0.4 to +5.8; p = 0.02, adjusted p = 0.08): no evidence of a difference; could detect ≥ 4.4 points"
        in text
    )


def test_dose_response_figure_and_notes(new_report):
    _, doc = new_report
    text = doc.sections["classification"]
    figures = [im for im in doc.images if im["section"] == "classification" and im.get("alt", "").startswith("Dose-response")]
    assert len(figures) == 1
    with Image.open(io.BytesIO(base64.b64decode(figures[0]["src"].split(",", 1)[1]))) as im:
        assert im.format == "PNG" and im.size[0] > 300
    assert "×0.5 original+synthetic-x0.5 12 0 77.0 % [72.0, 82.0]" in text  # sorted by ratio
    assert "×2 original+synthetic-x2 46 240 79.0 % [74.0, 84.0]" in text
    assert "The pool was extended from the generator at ×2 (240 images beyond the pool, summed over folds)." in text
    assert "Not trained: ×4 (the generator checkpoint is missing)." in text


def test_arms_in_the_configured_order_ratio_arms_after(new_report):
    _, doc = new_report
    text = doc.sections["classification"]
    table = text[text.index("degenerate trainings") : text.index("Degenerate training:")]
    order = [line.split(" ")[0] for line in table.splitlines()[1:]]
    assert order == [*CONFIGURED, "original+synthetic-x0.5", "original+synthetic-x2"]


def test_at_a_glance_shows_the_primary_verdicts_with_interval_and_mde(new_report):
    _, doc = new_report
    assert "Primary comparison 1 of 2 (balanced accuracy): original+filtered − original+random-subset" in doc.glance
    assert "+1.2 points (95 % CI −2.0 to +4.4; p = 0.31): no evidence of a difference; could detect ≥ 5.1 points" in doc.glance
    assert doc.glance.index("1 of 2") < doc.glance.index("2 of 2") and STOPPED in doc.glance
    # the conclusion opens with the primary comparisons, in their testing order
    conclusion = doc.sections["conclusion"]
    assert conclusion.index("primary comparison: ‘original+filtered’") < conclusion.index("secondary comparison:")


def test_an_older_summary_without_the_new_fields_renders(tmp_path):
    report, doc = render(tmp_path, old_summary())
    text = doc.sections["classification"]
    assert report.summary["sections"]["classification"] == "ran"
    assert "Primary" not in text and "Secondary" not in text and "Estimand" not in text and "degenerate trainings" not in text
    assert "mean [95 % CI] over 1 fold(s) (0) × 5 seed(s)" in text and "ci: 95 % two-sided t-interval" in text
    assert "Paired differences" in text
    # without a stored verdict, the same rule from interval and p-value
    assert "original+filtered − original +2.1 −3.0 to +7.2 0.41 – – no evidence of a difference 5 pairs" in text
    assert "original+synthetic − original +5.0 +1.0 to +9.0 0.02 – – evidence of an improvement 5 pairs" in text
    assert "Dose-response" not in report.html and "original+duplicated" not in text
    assert "Augmentation ‘original+synthetic’ changed balanced accuracy" in doc.glance or "Augmentation ‘original+filtered’" in doc.glance


def test_no_degenerate_training_is_said_so(tmp_path):
    summary = new_summary()
    summary.pop("sensitivity")
    summary["degenerate_trainings"] = {a: 0 for a in summary["arms"]}
    _, doc = render(tmp_path, summary)
    text = doc.sections["classification"]
    assert "Sensitivity: no degenerate trainings" in text and "Without the" not in text
    assert re.search(r"original\+filtered [^\n]* 3 0$", text, flags=re.M)
