"""The comparison as tables: the paper's Table 1 layout as text (``table.txt``) and on the console.

Figures are percent: mean ± half-width of the 95 % CI over folds × seeds; paired
differences in percentage points. The paper's own figures (from ``summary["paper"]``,
i.e. :data:`ctqc.paper.TABLE1`) are shown beside ours.
"""

from __future__ import annotations

import math

from rich.table import Table

from ctqc.config import Config


def arm_label(arm: str, cfg: Config) -> str:
    """``"<architecture> (<arm>)"``, e.g. ``"ResNet-50 (original)"``."""
    arch = {"resnet50": "ResNet-50", "resnet18": "ResNet-18"}[cfg.classifier.arch]
    return f"{arch} ({arm})"


def _fmt_ci(stat: dict, scale: float = 100.0) -> str:
    """``"mean ± half-width"`` of a :func:`classify.stats.mean_ci` result, scaled (default: percent)."""
    mean = stat["mean"]
    if not math.isfinite(mean):
        return "n/a"
    if not math.isfinite(stat["ci_low"]):
        return f"{mean * scale:.1f}"
    return f"{mean * scale:.1f} ± {(stat['ci_high'] - mean) * scale:.1f}"


def _fmt_difference(c: dict) -> tuple[str, str]:
    """A paired comparison's CI (``" [low, high]"`` in percentage points, or ``""``) and p-value."""
    ci = "" if not math.isfinite(c["ci_low"]) else f" [{c['ci_low'] * 100:+.1f}, {c['ci_high'] * 100:+.1f}]"
    p = "n/a" if not math.isfinite(c["p_value"]) else f"{c['p_value']:.3g}"
    return ci, p


def format_table(summary: dict, cfg: Config) -> str:
    """The paper's Table 1 layout as plain text (percent, mean ± 95 % CI half-width), with the paper's figures."""
    cols = ("accuracy", "sensitivity", "specificity")
    n_runs = len(summary["folds"]) * len(summary["seeds"])
    lines = [
        f"Table 1 layout: {cfg.classifier.arch} ({cfg.classifier.stem} stem), {len(summary['folds'])} fold(s) × {len(summary['seeds'])} seed(s) "
        f"= {n_runs} training(s) per arm; real test images only",
        "mean ± 95 % CI half-width (t over folds × seeds), in %; the paper's figures on the right (one run each)",
        "",
    ]
    header = f"{'':34s}{'Accuracy':>15s}{'Sensitivity':>15s}{'Specificity':>15s}{'Bal. acc.':>15s}{'ROC AUC':>15s}   |{'paper: Acc':>11s}{'Sens':>8s}{'Spec':>8s}"
    lines += [header, "-" * len(header)]
    for arm, stats in summary["arms"].items():
        paper = summary["paper"].get(arm)
        right = "".join(f"{paper[c] * 100:>{w}.2f}" for c, w in zip(cols, (11, 8, 8))) if paper else ""
        cells = "".join(f"{_fmt_ci(stats[m]):>15s}" for m in (*cols, "balanced_accuracy", "roc_auc"))
        lines.append(f"{arm_label(arm, cfg):34s}{cells}   |{right}")
    for arm, why in summary["skipped"].items():
        lines.append(f"{arm_label(arm, cfg):34s}  skipped: {why}")
    comps = [c for c in summary["comparisons"] if c["metric"] == "balanced_accuracy"]
    if comps:
        lines += ["", f"Paired differences in balanced accuracy (percentage points; pairs share fold and seed; {summary['test']} test):"]
        for c in comps:
            ci, p = _fmt_difference(c)
            lines.append(f"  {c['arm']:>24s} − {c['reference']:<24s} {c['mean_diff'] * 100:+6.1f}{ci}  p = {p}  ({c['n_pairs']} pairs)")
        small = {c.get("note") for c in comps if c.get("note")}
        lines += [f"  note: {n}" for n in sorted(small)]
    lines += ["", *(f"note: {n}" for n in summary["notes"]), "all metrics and comparisons: summary.json; per-training rows: results.csv"]
    return "\n".join(lines) + "\n"


def print_table(summary: dict, cfg: Config, console) -> None:
    """The same table as a rich table on ``console``, then the paired differences in balanced accuracy."""
    cols = ("accuracy", "sensitivity", "specificity", "balanced_accuracy", "roc_auc")
    n_runs = len(summary["folds"]) * len(summary["seeds"])
    arch = arm_label("", cfg).split(" ")[0]
    table = Table(title=f"{arch} ({cfg.classifier.stem} stem): %, mean ± 95 % CI over {n_runs} training(s) per arm, real test images")
    table.add_column("arm", no_wrap=True)  # values wrap in a narrow terminal, arm names never do
    for name in ("Acc.", "Sens.", "Spec.", "Bal. acc.", "AUC"):
        table.add_column(name, justify="right", overflow="fold")
    table.add_column("paper Acc / Sens / Spec", overflow="fold")
    for arm, stats in summary["arms"].items():
        paper = summary["paper"].get(arm)
        ref = " / ".join(f"{paper[c] * 100:.2f}" for c in cols[:3]) if paper else ""
        table.add_row(arm, *(_fmt_ci(stats[m]) for m in cols), ref)
    for arm in summary["skipped"]:
        table.add_row(arm, "skipped", "", "", "", "", "")
    console.print(table)
    for c in summary["comparisons"]:
        if c["metric"] != "balanced_accuracy":
            continue
        ci, p = _fmt_difference(c)
        console.print(f"  Δ balanced accuracy {c['arm']} − {c['reference']}: {c['mean_diff'] * 100:+.1f} pp{ci}, p = {p} ({c['test']}, {c['n_pairs']} pairs)")
    notes = {c["note"] for c in summary["comparisons"] if c.get("note")}
    for note in sorted(notes):
        console.print(f"  note: {note}")
    for arm, why in summary["skipped"].items():
        console.print(f"  [yellow]skipped[/] {arm}: {why}")
