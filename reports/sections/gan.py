"""3 GAN training: per-unit table (stats.jsonl), loss and quality figures and grids of the first fold."""

from __future__ import annotations

import re

import numpy as np

from ctqc.layout import class_slug
from reports import figures
from reports.images import GRID_PX, picture_from_file
from reports.rundata import RunData
from reports.sections.common import MAX_GAN_FIGURE_FOLDS, MAX_GRIDS, Section, fmt

SETTINGS = ("mode", "architecture", "width", "epochs", "batch_size", "loss", "lr", "beta1", "beta2", "diffaugment", "ema_decay")


def class_order(run: RunData, names: list[str]) -> list[str]:
    """GAN unit names (class slugs) in class-key order; unknown names last, alphabetically."""
    order = {class_slug(c, k): i for i, (c, k) in enumerate(run.class_keys().items())}
    return sorted(names, key=lambda n: (order.get(n, len(order)), n))


def build(run: RunData) -> Section:
    units = run.gan_units()
    if not units and not run.stage_done("train"):
        return Section("gan", "GAN training", False)
    gan_cfg = run.settings("gan")
    rows, figs, grids, warnings, notes = [], [], [], [], []
    per_fold: dict[int, dict[str, tuple[list[dict], list[dict]]]] = {}
    names = class_order(run, list(dict.fromkeys(u[1] for u in units)))
    units = sorted(units, key=lambda u: (u[0], names.index(u[1])))
    summary = {}
    for fold, name, d in units:
        records = run.jsonl(d / "stats.jsonl") or []
        losses = [r for r in records if r.get("kind") == "loss"]
        quality = [r for r in records if r.get("kind") == "quality"]
        warns = [r for r in records if r.get("kind") == "warning"]
        per_fold.setdefault(fold, {})[name] = (losses, quality)
        last_q, last_l, first_q = (quality[-1] if quality else {}), (losses[-1] if losses else {}), (quality[0] if quality else {})
        ckpts = sorted((d / "checkpoints").glob("*.pt")) if (d / "checkpoints").is_dir() else []
        epochs = max([int(r.get("epoch", 0)) for r in quality] + [int(r.get("epoch", -1)) + 1 for r in losses] + [0])
        rows.append(
            {
                "unit": f"fold {fold} / {name}",
                "epochs": epochs or "–",
                "steps": last_l.get("step", last_q.get("step", "–")),
                "loss_d": fmt(last_l.get("loss_d")),
                "loss_g": fmt(last_l.get("loss_g")),
                "kid": f"{fmt(first_q.get('kid_val'))} → {fmt(last_q.get('kid_val'))}" if quality else "–",
                "diversity": fmt(last_q.get("diversity")),
                "warnings": len(warns),
                "checkpoints": ", ".join(f"{p.name} ({p.stat().st_size / 1e6:.1f} MB)" for p in ckpts) or "none",
            }
        )
        for w in warns[-1:]:
            warnings.append(f"fold {fold} / {name}, epoch {w.get('epoch', '?')}: {w.get('message', '')} ({len(warns)} evaluation(s) flagged)")
        summary[f"fold{fold}/{name}"] = {
            "epochs": epochs,
            "final_quality": {k: last_q.get(k) for k in ("kid_val", "nn_val", "diversity") if k in last_q},
            "warnings": len(warns),
        }
        if fold == units[0][0]:
            grids.append({"unit": f"fold {fold} / {name}", "pictures": _grids(d)})
    for fold in sorted(per_fold)[:MAX_GAN_FIGURE_FOLDS]:
        parts = per_fold[fold]
        loss_fig = figures.gan_losses({n: (figures.epoch_axis(l, q), l) for n, (l, q) in parts.items()})
        quality_fig = figures.gan_quality({n: q for n, (l, q) in parts.items()})
        if not loss_fig:
            notes.append(f"Fold {fold}: no loss lines in stats.jsonl (training ran fewer steps than gan.log_every = {gan_cfg.get('log_every', '?')}).")
        for fig, caption in (
            (loss_fig, f"Fold {fold}: discriminator (solid) and generator (dashed) losses per class GAN, and D's mean output on real (solid) and generated (dotted) batches."),
            (quality_fig, f"Fold {fold}: the trainer's quality signal on the EMA generator's fixed samples against held-out validation images (fixed random-conv features); diversity below the dashed line warns of mode collapse."),
        ):
            if fig:
                figs.append({"uri": fig, "caption": caption})
    settings = [(k, gan_cfg.get(k)) for k in SETTINGS if k in gan_cfg]
    content = {"rows": rows, "figures": figs, "notes": notes, "grids": grids, "warnings": warnings, "settings": settings, "n_folds": len(per_fold)}
    return Section("gan", "GAN training", True, content, summary)


def _grids(unit_dir) -> list:
    """Up to MAX_GRIDS training grids of one GAN, evenly spaced over its epochs."""
    shots = sorted((unit_dir / "grids").glob("epoch_*.png")) if (unit_dir / "grids").is_dir() else []
    picked = [shots[i] for i in sorted({round(x) for x in np.linspace(0, len(shots) - 1, min(MAX_GRIDS, len(shots)))})] if shots else []
    pics = []
    for p in picked:
        m = re.search(r"epoch_(\d+)", p.name)
        pic = picture_from_file(p, GRID_PX, caption=f"epoch {int(m.group(1))}" if m else p.name)
        if pic:
            pics.append(pic)
    return pics
