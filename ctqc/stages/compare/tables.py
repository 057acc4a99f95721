"""The comparison as tables: the paper's Table 1 layout as text (``table.txt``) and on the console.

Figures are percent: the image-level estimate and its 95 % interval ``[low, high]``
(class-stratified bootstrap over test images, seeds averaged per image; see
:mod:`classify.verdicts`), or ``mean ± half-width`` of the t-interval over
trainings where no image-level figure exists (ROC AUC, older runs). Differences
are percentage points, one verdict line per comparison written by
:func:`classify.decisions.describe` from the same numbers as ``summary.json`` (one
decision rule everywhere). ``degen.`` counts trainings that predicted one class for
every validation or test image. The paper's own figures (from ``summary["paper"]``,
i.e. :data:`ctqc.paper.TABLE1`) are shown beside ours.
"""

from __future__ import annotations

import math

from rich.table import Table

from classify.decisions import describe
from ctqc.config import Config

HEADLINE = "balanced_accuracy"


def arm_label(arm: str, cfg: Config) -> str:
    """``"<architecture> (<arm>)"``, e.g. ``"ResNet-50 (original)"``."""
    arch = {"resnet50": "ResNet-50", "resnet18": "ResNet-18"}[cfg.classifier.arch]
    return f"{arch} ({arm})"


def _fmt_ci(stat: dict, scale: float = 100.0) -> str:
    """``"estimate [low, high]"`` of an image-level figure, else ``"mean ± half-width"`` of a t-interval, scaled (default: percent)."""
    mean = stat["mean"]
    if mean is None or not math.isfinite(mean):
        return "n/a"
    if stat.get("ci_low") is None or not math.isfinite(stat["ci_low"]):
        return f"{mean * scale:.1f}"
    if "n_images" in stat:
        return f"{mean * scale:.1f} [{stat['ci_low'] * scale:.0f}, {stat['ci_high'] * scale:.0f}]"
    return f"{mean * scale:.1f} ± {(stat['ci_high'] - mean) * scale:.1f}"


def verdict_lines(summary: dict) -> list[str]:
    """The headline metric's comparisons, primary first, one :func:`classify.decisions.describe` line each."""
    comps = [c for c in summary["comparisons"] if c["metric"] == HEADLINE]
    order = [tuple(p) for p in summary.get("primary", [])]
    comps.sort(key=lambda c: order.index((c["arm"], c["reference"])) if (c["arm"], c["reference"]) in order else len(order))
    return [c.get("line") or describe(c) for c in comps]


def _design(summary: dict) -> str:
    """What the intervals include and the design they come from."""
    stat = next((s[HEADLINE] for s in summary["arms"].values() if "n_images" in s.get(HEADLINE, {})), None)
    if stat is None:
        return "no per-image predictions: intervals are t-intervals over trainings (optimisation noise only)"
    return f"{stat['n_images']} test images × {stat['n_replicates']} replicate(s) (seeds, or k-fold repeats × seeds with out-of-fold predictions pooled)"


def format_table(summary: dict, cfg: Config) -> str:
    """The paper's Table 1 layout as plain text (percent, mean ± 95 % CI half-width), with the paper's figures."""
    cols = ("accuracy", "sensitivity", "specificity")
    n_runs = len(summary["folds"]) * len(summary["seeds"])
    lines = [
        f"Table 1 layout: {cfg.classifier.arch} ({cfg.classifier.stem} stem), {len(summary['folds'])} fold(s) × {len(summary['seeds'])} seed(s) "
        f"= {n_runs} training(s) per arm; real test images only; {_design(summary)}",
        f"estimand: {summary.get('estimand', 'n/a')}",
        f"in %: estimate [95 % interval]: {summary['ci']}; the paper's figures on the right (one run each)",
        "",
    ]
    header = f"{'':34s}{'Accuracy':>19s}{'Sensitivity':>19s}{'Specificity':>19s}{'Bal. acc.':>19s}{'ROC AUC':>15s}{'degen.':>8s}   |{'paper: Acc':>11s}{'Sens':>8s}{'Spec':>8s}"
    lines += [header, "-" * len(header)]
    for arm, stats in summary["arms"].items():
        paper = summary["paper"].get(arm)
        right = "".join(f"{paper[c] * 100:>{w}.2f}" for c, w in zip(cols, (11, 8, 8))) if paper else ""
        cells = "".join(f"{_fmt_ci(stats[m]):>19s}" for m in (*cols, "balanced_accuracy")) + f"{_fmt_ci(stats['roc_auc']):>15s}"
        lines.append(f"{arm_label(arm, cfg):34s}{cells}{summary.get('degenerate_trainings', {}).get(arm, 0):>8d}   |{right}")
    for arm, why in summary["skipped"].items():
        lines.append(f"{arm_label(arm, cfg):34s}  skipped: {why}")
    verdicts = verdict_lines(summary)
    if verdicts:
        lines += ["", f"Differences in balanced accuracy (percentage points; {summary['test']}; primary: fixed sequence at α = {summary.get('alpha', 0.05)}, secondary: Holm):"]
        lines += [f"  {line}" for line in verdicts]
    lines += ["", *(f"note: {n}" for n in summary["notes"]), "all metrics and comparisons: summary.json; per-training rows: results.csv"]
    return "\n".join(lines) + "\n"


def print_table(summary: dict, cfg: Config, console) -> None:
    """The same table as a rich table on ``console``, then the paired differences in balanced accuracy."""
    cols = ("accuracy", "sensitivity", "specificity", "balanced_accuracy", "roc_auc")
    n_runs = len(summary["folds"]) * len(summary["seeds"])
    arch = arm_label("", cfg).split(" ")[0]
    table = Table(title=f"{arch} ({cfg.classifier.stem} stem): %, estimate [95 % interval over test images and seeds], {n_runs} training(s) per arm, real test images")
    table.add_column("arm", no_wrap=True)  # values wrap in a narrow terminal, arm names never do
    for name in ("Acc.", "Sens.", "Spec.", "Bal. acc.", "AUC"):
        table.add_column(name, justify="right", overflow="fold")
    table.add_column("degen.", justify="right")
    table.add_column("paper Acc / Sens / Spec", overflow="fold")
    for arm, stats in summary["arms"].items():
        paper = summary["paper"].get(arm)
        ref = " / ".join(f"{paper[c] * 100:.2f}" for c in cols[:3]) if paper else ""
        table.add_row(arm, *(_fmt_ci(stats[m]) for m in cols), str(summary.get("degenerate_trainings", {}).get(arm, 0)), ref)
    for arm in summary["skipped"]:
        table.add_row(arm, "skipped", "", "", "", "", "", "")
    console.print(table)
    console.print(f"  estimand: {summary.get('estimand', 'n/a')}; {_design(summary)}", markup=False)
    for line in verdict_lines(summary):
        console.print(f"  Δ balanced accuracy {line}", markup=False)
    for arm, why in summary["skipped"].items():
        console.print(f"  [yellow]skipped[/] {arm}: {why}")
