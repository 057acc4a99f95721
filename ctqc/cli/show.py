"""What the CLI prints: tables and summaries of a command's result (rich)."""

from __future__ import annotations

import json

from ctqc.cli.options import _console


def _print_qc(metrics: dict) -> None:
    from rich.table import Table

    from ctqc.artefacts import GAP_ABOVE, GAP_BELOW, GAP_NOT_ESTIMABLE, GAP_WITHIN  # lazily: pydantic stays out of `ctqc --help`

    short = {GAP_ABOVE: "above", GAP_WITHIN: "within", GAP_BELOW: "below: copying?", GAP_NOT_ESTIMABLE: "n/a"}

    def cell(entry: dict, key: str = "value", digits: int = 3) -> str:
        value, low, high = entry.get(key), entry.get("ci_low"), entry.get("ci_high")
        text = "n/a" if value is None else f"{value:.{digits}g}"
        return text + ("" if low is None or key != "value" else f" [{low:.{digits}g}, {high:.{digits}g}]")

    def gap(entry: dict) -> str:  # synthetic − floor at the floor's n, its CI and the stored verdict
        g = entry.get("gap")
        if not g or g.get("estimate") is None:
            return "n/a (not size-matched)" if entry.get("floor") is not None else "n/a"
        ci = "" if g.get("ci_low") is None or g.get("ci_high") is None else f" [{g['ci_low']:+.3g}, {g['ci_high']:+.3g}]"
        return f"{g['estimate']:+.3g}{ci} {short.get(g.get('verdict'), g.get('verdict'))}"

    table = Table(title=f"Synthetic vs real ({metrics['extractor']} features; floor = held-out real vs the same reference, same n)")
    for column in ("scope", "n syn/real/floor", "FID", "FID at floor n", "FID floor", "FID − floor", "KID", "KID floor", "KID − floor", "precision", "recall", "C2ST AUC (p)"):
        table.add_column(column)
    for name, s in metrics["scopes"].items():
        c2st = metrics["c2st"].get(name, {})
        auc = "" if c2st.get("auc") is None else f"{c2st['auc']:.3f} ({c2st['p_value']:.2g})"
        table.add_row(
            name, f"{s['n_synthetic']}/{s['n_real']}/{s['n_floor']}", cell(s["fid"]), cell(s["fid"], "matched"), cell(s["fid"], "floor"), gap(s["fid"]),
            cell(s["kid"]), cell(s["kid"], "floor"), gap(s["kid"]), cell(s["precision"], digits=2), cell(s["recall"], digits=2), auc,
        )  # fmt: skip
    console = _console()
    console.print(table)
    for name, m in metrics["memorisation"].items():
        if m.get("c_t") is not None or m.get("n_flagged") is not None:
            console.print(f"  {name}: copies flagged {m['n_flagged']}, C_T {m['c_t']} (C_T ≪ 0: samples sit closer to training images than held-out real images do)")
    console.print("  X − floor: synthetic minus floor at the floor's n [95 % CI, shared reference]; below = closer to the training images than real images: a copying signal")
    for warning in metrics["warnings"]:
        console.print(f"  [yellow]warning[/yellow]: {warning}")


def _print_run_summary(run) -> None:
    import pandas as pd

    console = _console()
    console.print(f"[bold]run[/] {run.path.resolve()}")
    stages = run.manifest()["stages"]
    console.print("  stages: " + ", ".join(f"{k} {v['status']} ({v.get('seconds', 0):.0f} s)" for k, v in stages.items()))
    for stats in sorted(run.path.glob("gan/fold*/*/stats.jsonl")):
        warnings = [json.loads(line)["message"] for line in stats.read_text().splitlines() if '"kind": "warning"' in line]
        if warnings:
            unit = stats.parent.relative_to(run.path)
            console.print(f"  [yellow]warning:[/] {unit}: {warnings[-1]} ({len(warnings)} evaluation(s) flagged; see {stats.name})")
    index = run.path / "samples" / "index.csv"
    if index.is_file():
        counts = pd.read_csv(index)["class"].value_counts().to_dict()
        console.print(f"  synthetic pool: {index.parent.resolve()} — " + ", ".join(f"{n} {c}" for c, n in counts.items()))


def glance_lines(layout) -> list[str]:
    """The run's verdict at a glance (plain text): the filter's operating point and what it kept, the pre-specified
    primary comparisons (or, without them, every arm vs original) with interval and minimum detectable difference,
    and where the report is. ``layout``: the run's :class:`ctqc.layout.RunLayout`; missing artefacts are skipped."""
    from ctqc.artefacts import CompareSummary, FilterSummary, read_artefact

    lines = []
    if layout.filter_summary.is_file():
        f = read_artefact(layout.filter_summary, FilterSummary)
        per_class = ", ".join(f"{unit} {u.kept}/{u.n_synthetic}" for unit, u in f.per_class.items())
        if f.c2st_threshold is not None:
            point = f"at C2ST threshold {f.c2st_threshold:g} (dropped where p(synthetic) > {f.c2st_threshold:g}{' or a near-copy' if f.memorisation else ''})"
        else:
            point = f"at {f.operating_point()}{' (and near-copies dropped)' if f.memorisation else ''}"
        if f.strategy != "realism":
            point = f"by strategy {f.strategy} ({f.strategies[f.strategy].description if f.strategy in f.strategies else ''}; label threshold {f.label_threshold:g})"
        lines.append(f"filter: kept {f.kept} of {f.kept + f.rejected} synthetic images {point}; {per_class}")
        for name, s in list(f.strategies.items())[1:]:  # the further strategies (ctqc filter --strategy), the default first
            lines.append(f"filter strategy {name}: kept {s.kept} of {s.kept + s.rejected}; " + ", ".join(f"{unit} {u.kept}/{u.n_synthetic}" for unit, u in s.per_class.items()))
    if layout.compare_summary.is_file():
        c = read_artefact(layout.compare_summary, CompareSummary)
        headline = [x for x in c.comparisons if x.metric == "balanced_accuracy"]
        primary = [x for x in headline if x.role == "primary"]
        order = [tuple(p) for p in c.primary]
        primary.sort(key=lambda x: order.index((x.arm, x.reference)) if (x.arm, x.reference) in order else len(order))
        if c.estimand:
            lines.append(f"estimand: {c.estimand}")
        shown = primary or [x for x in headline if x.reference == "original"]
        if not primary:
            lines.append("no primary comparison (it needs original+filtered, original+random-subset and original+synthetic); vs original:")
        lines += [f"{'primary' if x.role == 'primary' else 'Δ'} {x.line}" for x in shown if x.line]
        if c.sensitivity is not None:
            n = sum(c.sensitivity.excluded.values())
            again = sorted((x for x in c.sensitivity.comparisons if x.role == "primary" and x.line), key=lambda x: order.index((x.arm, x.reference)))
            lines += [f"without the {n} degenerate training(s): {x.line}" for x in again]
    if layout.report_html.is_file():
        lines.append(f"report: {layout.report_html}")
    return lines


def _print_inspection(report: dict) -> None:
    from rich.table import Table

    console = _console()
    src = report["source"]
    console.print(f"[bold]{src['location']}[/] ({src['kind']}) — {report['n_images']} images, fingerprint {report['fingerprint']}")
    if src.get("images_dir"):
        console.print(f"images in {src['images_dir']}")
    classes = Table("class", "images", title="Classes")
    for name, n in report["class_counts"].items():
        classes.add_row(name, str(n))
    console.print(classes)
    shape = Table("", "min", "median", "max", title="Original size (px)")
    for axis in ("width_px", "height_px"):
        r = report[axis]
        shape.add_row(axis.split("_")[0], str(r.get("min", "-")), str(r.get("median", "-")), str(r.get("max", "-")))
    console.print(shape)
    console.print("longer side: " + ", ".join(f"{k}: {v}" for k, v in report["longer_side_px"].items() if v))
    console.print("modes: " + ", ".join(f"{k}: {v}" for k, v in report["modes"].items()) + "; formats: " + ", ".join(f"{k}: {v}" for k, v in report["formats"].items()))
    applied = report["orientation"]["applied"]
    console.print("EXIF orientation applied: " + (", ".join(f"tag {k} × {v}" for k, v in applied.items()) if applied else "none (all stored upright)"))
    console.print(f"intensity (data.intensity={report['intensity']['setting']}):")
    for how, entry in report["intensity"]["handling"].items():
        values = f"stored values {entry['min']:g}..{entry['max']:g}" if entry["min"] is not None else "values not recorded"
        console.print(f"  {how}: {entry['images']} image(s), {values}")
    split = report["split"]["fold_0"]
    names = list(report["class_counts"])
    table = Table("role", *names, "total", title=f"Split (fold 0 of {report['split']['folds']})")
    for role in ("train", "val", "test"):
        counts = [split[role].get(n, 0) for n in names]
        table.add_row(role, *map(str, counts), str(sum(counts)))
    console.print(table)
    if report["problems"]:
        console.print("[yellow]problems found:[/]")
        for p in report["problems"]:
            console.print(f"  - {p}")
    else:
        console.print("no problems found")


def _print_filter(summary, where) -> None:
    """``ctqc filter``'s report: per fold × class what was kept, the global tests, operating point, diversity and the frozen check."""
    console = _console()
    console.print(f"kept {summary.kept}, rejected {summary.rejected} → {where}")
    for unit, r in summary.per_class.items():
        fmt = lambda m: "n/a" if m.auc is None else f"AUC {m.auc:.3f}" + ("" if m.p_value is None else f" (p = {m.p_value:.3g})")
        after = lambda m: "n/a" if m.auc is None else f"AUC {m.auc:.3f}" + ("" if m.p_value_two_sided is None else f" (two-sided p = {m.p_value_two_sided:.3g})")
        console.print(
            f"  {unit}: kept {r.kept}/{r.n_synthetic} (c2st {r.rejected_c2st}, copies {r.rejected_copy}, duplicates {r.rejected_duplicate}); C2ST before {fmt(r.c2st_before)}, after (kept vs held-out real) {after(r.c2st_after)}"
        )
        if r.mmd_before is not None and r.mmd_before.mmd2 is not None:
            mmd_p = "" if r.mmd_before.p_value is None else f", p = {r.mmd_before.p_value:.3g}"
            console.print(f"    global tests before: C2ST (linear) {fmt(r.c2st_before)}; MMD (RBF) MMD² {r.mmd_before.mmd2:.4g}{mmd_p}")
        ece = "" if r.calibration is None else f"; ECE of the calibrated scores {r.calibration.ece:.3f}"
        console.print(f"    threshold {_operating_point(r)}{ece}" + "".join(f"; {note}" for note in [r.c2st_after.note, *r.notes] if note))
        if r.diversity is not None:
            d = r.diversity
            console.print(
                f"    coverage {d.coverage_before:.2f} → {d.coverage_kept:.2f} (same-size random subsets {d.coverage_random:.2f}); density {d.density_before:.2f} → {d.density_kept:.2f} ({d.density_random:.2f})"
                + (f"; warning: {d.warning}" if d.warning else "")
                + (f"; {d.note}" if d.note else "")
            )
        if r.frozen is not None:
            f = r.frozen
            console.print(f"    frozen filter on {f.n} fresh images ({f.source}): kept {f.kept}; kept fresh vs held-out real {after(f.c2st_after)}" + (f"; {f.c2st_after.note}" if f.c2st_after.note else ""))
    if len(summary.strategies) > 1:
        _print_strategies(console, summary.strategies)


def _print_strategies(console, strategies: dict) -> None:
    """One line per strategy: what it kept in all and per fold × class (the first is the default)."""
    for n, (name, s) in enumerate(strategies.items()):
        units = ", ".join(f"{unit} {u.kept}/{u.n_synthetic}" for unit, u in s.per_class.items())
        console.print(f"  strategy {name}{' (default)' if n == 0 else ''}: kept {s.kept}, rejected {s.rejected} ({units}) → {name}/kept.csv")


def _operating_point(r) -> str:
    """'0.6: rejects 8 % [3 %, 19 %] of 24 held-out real images' (plus the conformal guarantee) for one filter unit."""
    if r.threshold is None:
        return "none (nothing rejected as c2st)"
    rej, text = r.real_rejection, f"{r.threshold:.3g}"
    if rej is not None and rej.rate is not None:
        text += f": rejects {rej.rate:.0%} [{rej.ci[0]:.0%}, {rej.ci[1]:.0%}] of {rej.n} held-out real images"
    if rej is not None and rej.guarantee is not None:
        text += f"; a genuine image is rejected with probability {rej.expected:.1%} ≤ {rej.guarantee:g} (split conformal)"
    return text
