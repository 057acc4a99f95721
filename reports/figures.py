"""The report's figures, drawn from numbers the stages saved (never recomputed).

Each function takes plain tables/dicts read from the run directory and returns
a PNG data URI in the shared style (:mod:`reports.style`): Okabe–Ito colours,
axis labels with units, sized to be read at 100 % zoom.
"""

from __future__ import annotations

import math

import numpy as np

from ctqc.numbers import finite as _num
from reports.style import FLOOR, KEPT, REJECTED, SYNTHETIC, THRESHOLD, colour, figure_data_uri, new_figure

# ----------------------------------------------------------------------------- GAN training


def gan_losses(units: dict[str, tuple[list[float], list[dict]]]) -> str | None:
    """Loss curves and D's mean outputs; ``units``: name → (fractional epochs, stats.jsonl loss records)."""
    units = {k: v for k, v in units.items() if v[1]}
    if not units:
        return None
    fig, axes = new_figure(2, width=10, height=3.4)
    ax_loss, ax_d = axes[0]
    for i, (name, (epoch, records)) in enumerate(units.items()):
        for key, style, label in (("loss_d", "-", "D"), ("loss_g", "--", "G")):
            y = [r.get(key) for r in records]
            if any(v is not None for v in y):
                ax_loss.plot(epoch, _floats(y), style, color=colour(i), lw=1.3, label=f"{name}: {label} loss")
        for key, style, label in (("d_real", "-", "real"), ("d_fake", ":", "fake")):
            y = [r.get(key) for r in records]
            if any(v is not None for v in y):
                ax_d.plot(epoch, _floats(y), style, color=colour(i), lw=1.3, label=f"{name}: D(x) on {label}")
    ax_loss.set(title="Losses (mean per logging interval)", xlabel="epoch", ylabel="loss (dimensionless)")
    ax_d.set(title="Discriminator outputs", xlabel="epoch", ylabel="mean D(x) (probability real)", ylim=(-0.02, 1.02))
    ax_loss.legend(ncol=2, fontsize=8)
    ax_d.legend(ncol=2, fontsize=8)
    return figure_data_uri(fig)


def gan_quality(units: dict[str, list[dict]], collapse_ratio: float = 0.3) -> str | None:
    """The trainer's quality signal over epochs: KID and NN distance to validation images, diversity."""
    units = {k: v for k, v in units.items() if v}
    if not units:
        return None
    panels = [
        ("kid_val", "KID to validation images (lower = better)", "KID × 1000 (dimensionless)"),
        ("nn_val", "Validation → nearest sample", "mean distance (feature units)"),
        ("diversity", "Sample diversity vs real", "ratio synthetic / real (1 = as diverse)"),
    ]
    panels = [p for p in panels if any(r.get(p[0]) is not None for recs in units.values() for r in recs)]
    if not panels:
        return None
    fig, axes = new_figure(len(panels), width=3.7 * len(panels), height=3.3)
    for ax, (key, title, ylabel) in zip(axes[0], panels):
        for i, (name, records) in enumerate(units.items()):
            pts = [(r.get("epoch"), r.get(key)) for r in records if r.get(key) is not None and r.get("epoch") is not None]
            if pts:
                x, y = zip(*pts)
                ax.plot(x, _floats(y), "o-", color=colour(i), ms=3, lw=1.3, label=name)
        if key == "diversity":
            ax.axhline(collapse_ratio, color=THRESHOLD, ls="--", lw=1, label=f"collapse warning ({collapse_ratio})")
            ax.set_ylim(bottom=0)
        ax.set(title=title, xlabel="epoch", ylabel=ylabel)
        ax.legend(fontsize=8)
    return figure_data_uri(fig)


def epoch_axis(losses: list[dict], quality: list[dict]) -> list[float]:
    """Fractional epochs for loss lines (logged every N steps): step / steps per epoch.

    Steps per epoch come from a quality record (completed epochs and total steps
    at that point); failing that, from the last loss line (0-based epoch).
    """
    per_epoch = None
    for r in quality:
        if _num(r.get("epoch")) and _num(r.get("step")):
            per_epoch = float(r["step"]) / float(r["epoch"])
            break
    if per_epoch is None and losses:
        last = losses[-1]
        per_epoch = max(1.0, float(last.get("step", 1)) / (float(last.get("epoch", 0)) + 1.0))
    return [float(r.get("step", 0)) / (per_epoch or 1.0) for r in losses]


# ----------------------------------------------------------------------------- distribution metrics

METRIC_LABELS = {
    "fid": ("FID", "FID (squared feature distance)\nlower = closer to real"),
    "kid": ("KID", "KID (MMD², feature units)\nlower = closer to real"),
    "precision": ("Precision", "precision (fraction, 0–1)\nhigher = more realistic"),
    "recall": ("Recall", "recall (fraction, 0–1)\nhigher = more diverse"),
}
TABLE_LABELS = {  # metrics shown in tables only (the figure keeps the four above)
    **{m: label for m, (label, _) in METRIC_LABELS.items()},
    "rbf_mmd": "RBF-MMD",  # "CMMD" on CLIP ViT-L/14-336 (reports.sections.distribution.metric_label)
    "alpha_precision": "α-precision (IPα)",
    "beta_recall": "β-recall (IRβ)",
    "authenticity": "Authenticity",
}


def distribution_metrics(scopes: dict[str, dict]) -> str | None:
    """Per metric a panel: each scope's synthetic-vs-real value with its CI next to the real-vs-real floor."""
    metrics = [m for m in METRIC_LABELS if any((s.get(m) or {}).get("value") is not None for s in scopes.values())]
    if not metrics:
        return None
    names = list(scopes)
    fig, axes = new_figure(len(metrics), width=max(6.0, 3.0 * len(metrics)), height=1.9 + 0.45 * len(names))
    for ax, metric in zip(axes[0], metrics):
        for j, name in enumerate(names):
            entry = scopes[name].get(metric) or {}
            for offset, key, lo, hi, col, marker, label in (
                (-0.13, "value", "ci_low", "ci_high", SYNTHETIC, "o", "synthetic vs real"),
                (0.13, "floor", "floor_ci_low", "floor_ci_high", FLOOR, "s", "real vs real (floor)"),
            ):
                v = _num(entry.get(key))
                if v is None:
                    continue
                l, h = _num(entry.get(lo)), _num(entry.get(hi))
                err = None if l is None or h is None else [[max(0.0, v - l)], [max(0.0, h - v)]]
                ax.errorbar([v], [j + offset], xerr=err, fmt=marker, color=col, ms=6, capsize=3, lw=1.4, label=label if j == 0 else None)
            matched = _num(entry.get("matched"))
            if matched is not None and matched != _num(entry.get("value")):
                ax.plot([matched], [j], "o", mfc="white", mec=SYNTHETIC, ms=6, mew=1.4, label="synthetic at the floor's n" if j == 0 else None)
        ax.set_yticks(range(len(names)), names)
        ax.set_ylim(len(names) - 0.5, -0.5)
        ax.set(title=METRIC_LABELS[metric][0], xlabel=METRIC_LABELS[metric][1])
        if metric in ("precision", "recall"):
            ax.set_xlim(-0.02, 1.02)
    handles: dict = {}
    for ax in axes[0]:
        for h, l in zip(*ax.get_legend_handles_labels()):
            handles.setdefault(l, h)
    fig.legend(list(handles.values()), list(handles), loc="outside lower center", ncol=3, fontsize=8)
    return figure_data_uri(fig)


# ----------------------------------------------------------------------------- C2ST


def c2st_histogram(scores, threshold: float | None) -> str | None:
    """Histogram of each synthetic image's out-of-fold p(synthetic), per class, with the filter threshold."""
    if scores is None or scores.empty or "c2st_score" not in scores:
        return None
    scores = scores[np.isfinite(scores["c2st_score"].astype(float))]
    if scores.empty:
        return None
    classes = list(dict.fromkeys(scores["class"]))
    fig, axes = new_figure(len(classes), width=max(5.0, 4.2 * len(classes)), height=3.2, sharey=True)
    bins = np.linspace(0, 1, 21)
    for i, (ax, name) in enumerate(zip(axes[0], classes)):
        part = scores[scores["class"] == name]["c2st_score"].astype(float)
        ax.hist(part, bins=bins, color=colour(i), alpha=0.85, edgecolor="white")
        if threshold is not None:
            ax.axvline(threshold, color=THRESHOLD, ls="--", lw=1.4, label=f"threshold {threshold:g}")
            ax.legend(fontsize=8, loc="upper left")
        ax.axvline(0.5, color=FLOOR, ls=":", lw=1)
        ax.set(title=f"{name} (n = {len(part)})", xlabel="p(synthetic), balanced prior (0.5 = indistinguishable)", ylabel="synthetic images (count)", xlim=(0, 1))
    return figure_data_uri(fig)


def c2st_calibration(scores, n_bins: int = 10) -> str | None:
    """Reliability diagram of the per-image p(synthetic) over real and synthetic images.

    The scores are posteriors under *equal* priors, so each bin's observed
    fraction synthetic is computed with real and synthetic images weighted
    1/n_real and 1/n_synthetic (the balanced mix the score refers to).
    """
    if scores is None or scores.empty:
        return None
    classes = list(dict.fromkeys(scores["class"])) if "class" in scores else ["all"]
    fig, axes = new_figure(2, width=9.5, height=3.6)
    ax, ax_n = axes[0]
    edges = np.linspace(0, 1, n_bins + 1)
    ax.plot([0, 1], [0, 1], color=FLOOR, ls="--", lw=1, label="perfectly calibrated")
    for i, name in enumerate(classes):
        part = scores if name == "all" else scores[scores["class"] == name]
        p = part["score"].to_numpy(float)
        y = part["is_synthetic"].to_numpy(bool)
        if y.all() or not y.any():
            continue
        w = np.where(y, 1.0 / y.sum(), 1.0 / (~y).sum())
        which = np.clip(np.digitize(p, edges) - 1, 0, n_bins - 1)
        xs, ys, ns = [], [], []
        for b in range(n_bins):
            m = which == b
            if m.any():
                xs.append(p[m].mean())
                ys.append(w[m & y].sum() / w[m].sum())
                ns.append(int(m.sum()))
        ax.plot(xs, ys, "o-", color=colour(i), ms=4, lw=1.3, label=name)
        ax_n.bar(edges[:-1] + (i + 0.5) * (1 / n_bins) / max(1, len(classes)), np.bincount(which, minlength=n_bins), width=(1 / n_bins) / max(1, len(classes)), color=colour(i), label=name)
    ax.set(title="Calibration", xlabel="mean predicted p(synthetic) in bin", ylabel="observed fraction synthetic (balanced)", xlim=(0, 1), ylim=(0, 1))
    ax.legend(fontsize=8)
    ax_n.set(title="Images per bin", xlabel="p(synthetic)", ylabel="images (count)", xlim=(0, 1))
    ax_n.legend(fontsize=8)
    return figure_data_uri(fig)


# ----------------------------------------------------------------------------- classification


def classification_dots(results, arms_summary: dict, metrics: list[str], paper: dict | None = None) -> str | None:
    """Per metric: every fold × seed result as a dot per arm, the mean with its 95 % CI, the paper's value."""
    if results is None or results.empty or "arm" not in results:
        return None
    metrics = [m for m in metrics if m in results.columns and results[m].notna().any()]
    if not metrics:
        return None
    arms = list(dict.fromkeys(list(arms_summary or {}) + list(dict.fromkeys(results["arm"]))))
    arms = [a for a in arms if (results["arm"] == a).any()]
    rng = np.random.default_rng(0)  # horizontal jitter only, for legibility
    ncols = min(2, len(metrics))
    nrows = math.ceil(len(metrics) / ncols)
    fig, axes = new_figure(ncols, nrows, width=min(11.5, ncols * (0.8 * len(arms) + 1.6)), height=3.7 * nrows)
    for ax in axes.flat[len(metrics) :]:
        ax.set_visible(False)
    for ax, metric in zip(axes.flat, metrics):
        for j, arm in enumerate(arms):
            vals = results.loc[results["arm"] == arm, metric].astype(float).dropna().to_numpy()
            ax.scatter(j + rng.uniform(-0.15, 0.15, len(vals)), vals, s=16, color=colour(j), alpha=0.65, edgecolor="none", zorder=2)
            s = ((arms_summary or {}).get(arm) or {}).get(metric) or {}
            mean, lo, hi = _num(s.get("mean")), _num(s.get("ci_low")), _num(s.get("ci_high"))
            if mean is not None:
                err = None if lo is None or hi is None else [[max(0.0, mean - lo)], [max(0.0, hi - mean)]]
                ax.errorbar([j + 0.3], [mean], yerr=err, fmt="o", color="black", ms=5, capsize=3, lw=1.3, zorder=3, label="mean, 95 % CI" if j == 0 else None)
            ref = ((paper or {}).get(arm) or {}).get(metric)
            if _num(ref) is not None:
                ax.scatter(
                    [j + 0.3],
                    [float(ref)],
                    marker="D",
                    s=36,
                    facecolor="white",
                    edgecolor=THRESHOLD,
                    lw=1.3,
                    zorder=4,
                    label="paper (Table 1)" if "paper (Table 1)" not in ax.get_legend_handles_labels()[1] else None,
                )
        ax.set_xticks(range(len(arms)), arms, rotation=30, ha="right")
        ax.set(title=metric.replace("_", " "), ylabel=f"{metric.replace('_', ' ')} (fraction, test split)", ylim=(-0.02, 1.02))
        handles, labels = ax.get_legend_handles_labels()
        if handles:
            ax.legend(fontsize=8, loc="lower left")
    return figure_data_uri(fig)


def dose_response(points: list[dict], metric: str) -> str | None:
    """A metric's estimate with its 95 % interval against the synthetic-to-real ratio (``original`` at 0).

    ``points``: dicts with ``ratio``, ``estimate``, ``low``, ``high`` (fractions; None: no interval) and
    ``extended`` (the pool was extended from the generator for this ratio: an open marker).
    """
    points = sorted((p for p in points if _num(p.get("estimate")) is not None), key=lambda p: float(p["ratio"]))
    if not points:
        return None
    fig, axes = new_figure(1, width=6.4, height=3.4)
    ax = axes[0][0]
    x = [float(p["ratio"]) for p in points]
    y = [float(p["estimate"]) * 100 for p in points]
    ax.plot(x, y, "-", color=colour(0), lw=1, alpha=0.6, zorder=1)
    for p, xi, yi in zip(points, x, y):
        lo, hi = _num(p.get("low")), _num(p.get("high"))
        err = None if lo is None or hi is None else [[max(0.0, yi - lo * 100)], [max(0.0, hi * 100 - yi)]]
        face = "white" if p.get("extended") else (THRESHOLD if xi == 0 else colour(0))
        ax.errorbar([xi], [yi], yerr=err, fmt="o", ms=6, mfc=face, mec=THRESHOLD if xi == 0 else colour(0), color=THRESHOLD if xi == 0 else colour(0), capsize=3, lw=1.3, zorder=2)
    if any(p.get("extended") for p in points):
        ax.plot([], [], "o", mfc="white", mec=colour(0), label="pool extended from the generator")
        ax.legend(fontsize=8, loc="lower right")
    ax.set_xticks(x, ["0\n(original)" if v == 0 else f"{v:g}" for v in x])
    ax.set(title=f"Dose-response: {metric}", xlabel="synthetic images per real training image", ylabel=f"{metric} (%, test split)")
    return figure_data_uri(fig)


# ----------------------------------------------------------------------------- filter


def filter_scores(kept, rejected, threshold: float | None) -> str | None:
    """Strip plot of p(synthetic) per class, kept vs rejected, with the threshold."""
    import pandas as pd

    parts = [t.assign(status=s) for t, s in ((kept, "kept"), (rejected, "rejected")) if t is not None and not t.empty]
    if not parts:
        return None
    table = pd.concat(parts, ignore_index=True)
    table = table[np.isfinite(table["c2st_score"].astype(float))]
    if table.empty:
        return None
    classes = list(dict.fromkeys(table["class"]))
    fig, axes = new_figure(1, width=7.5, height=1.2 + 0.55 * len(classes))
    ax = axes[0][0]
    rng = np.random.default_rng(0)
    for status, col, marker in (("kept", KEPT, "o"), ("rejected", REJECTED, "x")):
        part = table[table["status"] == status]
        y = part["class"].map({c: i for i, c in enumerate(classes)}).to_numpy(float) + rng.uniform(-0.18, 0.18, len(part))
        ax.scatter(part["c2st_score"].astype(float), y, s=18, color=col, marker=marker, alpha=0.8, label=f"{status} ({len(part)})")
    if threshold is not None:
        ax.axvline(threshold, color=THRESHOLD, ls="--", lw=1.2, label=f"threshold {threshold:g}")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_ylim(len(classes) - 0.5, -0.5)
    ax.set(xlabel="p(synthetic), balanced prior", xlim=(0, 1), title="Filter decisions")
    ax.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5))
    return figure_data_uri(fig)


# ----------------------------------------------------------------------------- helpers


def _floats(values) -> list[float]:
    return [float("nan") if _num(v) is None else float(v) for v in values]
