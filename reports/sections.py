"""The report's twelve sections, each built from the run-directory files of its stage.

:func:`build` returns the template context (one dict per section, figures and
thumbnails already embedded as data URIs) and the headline numbers for
``report/summary.json``. A section whose stage has not run carries
``ran=False`` and the command that would produce it. Values from the run
(file names, class names, config text) are passed through as plain strings:
the template autoescapes them.
"""

from __future__ import annotations

import importlib.metadata
import platform
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from reports import conclusion as concl
from reports import figures
from reports.conclusion import num
from reports.images import GRID_PX, THUMB_PX, Picture, picture_from_array, picture_from_file
from reports.rundata import RunData

# caps that keep a default run's report well under 10 MB
MAX_REAL_EXAMPLES = 8  # per class
MAX_SAMPLES = 16  # per class
MAX_GALLERY = 24  # kept / rejected each
MAX_GRIDS = 6  # per GAN unit, evenly spaced over training
MAX_PAIRS = 8  # memorisation pairs
MAX_GAN_FIGURE_FOLDS = 1  # loss/quality figures for fold 0; a table covers every fold

# The paper's Table 1 (papers/dcgan-da-head-ct.txt), in %,
# shown for reference when compare/summary.json carries no "paper" entry.
PAPER_TABLE1 = {
    "original": {"accuracy": 76.51, "sensitivity": 72.37, "specificity": 83.04},
    "synthetic-only": {"accuracy": 60.61, "sensitivity": 93.15, "specificity": 68.48},
    "original+synthetic": {"accuracy": 78.65, "sensitivity": 73.14, "specificity": 86.60},
}
PAPER_LABELS = {"original": "ResNet-50 (original)", "synthetic-only": "ResNet-50 (only DA)", "original+synthetic": "ResNet-50 (original + DA)"}
TABLE1_METRICS = ["accuracy", "sensitivity", "specificity"]
EXTRA_METRICS = ["balanced_accuracy", "roc_auc"]
VERSION_PACKAGES = ["torch", "torchvision", "torch-fidelity", "scikit-learn", "umap-learn", "numpy", "pandas", "matplotlib", "seaborn", "Jinja2"]

# How to produce each section's inputs (the "not run" hint).
COMMANDS = {
    "data": "ctqc data prepare",
    "gan": "ctqc train",
    "samples": "ctqc generate",
    "metrics": "ctqc qc",
    "embeddings": "ctqc filter",
    "c2st": "ctqc filter",
    "memorisation": "ctqc filter",
    "filter": "ctqc filter",
    "classification": "ctqc compare",
    "selftest": "ctqc selftest --out RUN/qc/selftest.json",
}


def build(path: Path, real_images: Mapping[str, np.ndarray] | None = None, real_images_note: str | None = None) -> tuple[dict, dict]:
    """(template context, summary) for the run at ``path``.

    ``real_images`` maps real image ids to uint8 H×W arrays (the preprocessed
    images the run saw); the caller loads them. Without it, example and
    nearest-training images are replaced by ``real_images_note``.
    """
    run = RunData(Path(path))
    real = _RealImages(real_images, real_images_note)
    summary: dict[str, Any] = {"format": "ctqc-report-summary/1"}
    sections = [
        _run_summary(run, summary),
        _data(run, real, summary),
        _gan(run, summary),
        _samples(run, summary),
        _metrics(run, summary),
        _embeddings(run, summary),
        _c2st(run, summary),
        _memorisation(run, real, summary),
        _filter(run, summary),
        _classification(run, summary),
        _selftest(run, summary),
    ]
    sections.append(_conclusion(sections, summary))
    for n, s in enumerate(sections, 1):
        s["number"] = n
        s.setdefault("hint", COMMANDS.get(s["id"]))
        if s.get("hint"):
            s["hint"] = s["hint"].replace("RUN", str(run.path))
    summary["sections"] = {s["id"]: ("ran" if s["ran"] else "not run") for s in sections}
    summary["problems"] = list(dict.fromkeys(run.problems))
    manifest = run.manifest()
    context = {
        "glance": _glance(sections, summary),
        "title": f"ctqc report — {manifest.get('name') or run.path.name}",
        "run_name": run.path.name,
        "run_path": str(run.path),
        "sections": sections,
        "problems": summary["problems"],
    }
    return context, summary


class _RealImages:
    def __init__(self, images: Mapping[str, np.ndarray] | None, note: str | None) -> None:
        self.images = images
        self.note = note if images is None else None
        if images is None and not note:
            self.note = "the real images were not loaded for this report"

    def picture(self, image_id: str, caption: str = "", title: str = "") -> Picture | None:
        if self.images is None or image_id not in self.images:
            return None
        return picture_from_array(self.images[image_id], THUMB_PX, caption=caption, title=title)


def _section(sid: str, title: str, ran: bool, **content) -> dict:
    return {"id": sid, "title": title, "ran": ran, **content}


def _fmt(v, digits: int = 3) -> str:
    """A number for a table cell: ``digits`` decimals (trailing zeros dropped), or significant digits when tiny or huge."""
    f = num(v)
    if f is None:
        return "–"
    if f == 0:
        return "0"
    if abs(f) >= 1e4 or abs(f) < 10 ** -digits:
        return concl.sig(f, digits)
    return f"{f:.{digits}f}".rstrip("0").rstrip(".").replace("-", "\u2212")


def _auc(v) -> str:
    f = num(v)
    return "–" if f is None else f"{f:.3f}"


def _ci(entry: Mapping, value="value", lo="ci_low", hi="ci_high") -> str:
    """value [low, high] to 4 significant figures."""
    v = num(entry.get(value))
    if v is None:
        return "–"
    l, h = num(entry.get(lo)), num(entry.get(hi))
    return f"{concl.sig(v, 4)} [{concl.sig(l, 4)}, {concl.sig(h, 4)}]" if l is not None and h is not None else concl.sig(v, 4)


def _pct_ci(entry: Mapping) -> str:
    """mean [CI] of a fraction, in %."""
    m, l, h = num(entry.get("mean")), num(entry.get("ci_low")), num(entry.get("ci_high"))
    if m is None:
        return "–"
    pct = lambda f: f"{f * 100:.1f}".replace("-", "\u2212")  # noqa: E731
    if l is None or h is None:
        return f"{pct(m)} %"
    return f"{pct(m)} % [{pct(l)}, {pct(h)}]"


# ============================================================================ 1 run summary


def _run_summary(run: RunData, summary: dict) -> dict:
    m = run.manifest()
    data = m.get("data") if isinstance(m.get("data"), dict) else {}
    stages = []
    recorded = {k: v for k, v in run.stages().items() if k != "report"}  # "report" would describe an earlier rendering
    for name, entry in recorded.items():
        entry = entry if isinstance(entry, dict) else {}
        stages.append(
            {
                "name": name,
                "status": entry.get("status", "?"),
                "started": entry.get("started") or "–",
                "finished": entry.get("finished") or "–",
                "seconds": _duration(entry.get("seconds")),
                "outputs": len(entry.get("outputs") or []),
                "error": entry.get("error"),
            }
        )
    total = sum(num(e.get("seconds")) or 0 for e in recorded.values() if isinstance(e, dict))
    versions = []
    for pkg in VERSION_PACKAGES:
        try:
            versions.append((pkg, importlib.metadata.version(pkg)))
        except importlib.metadata.PackageNotFoundError:
            continue
    facts = [
        ("run", m.get("name") or run.path.name),
        ("created", m.get("created", "–")),
        ("ctqc version (run)", m.get("ctqc_version", "–")),
        ("git commit (run)", m.get("git_commit") or "not recorded (not a git checkout)"),
        ("config hash", m.get("config_hash", "–")),
        ("data", f"{data.get('location', '–')} ({data.get('kind', '?')})"),
        ("data fingerprint", data.get("fingerprint", "–")),
        ("content hash", data.get("content_hash", "–")),
        ("images", f"{data.get('n_images', '–')} at {data.get('image_size', '?')}×{data.get('image_size', '?')} px"),
    ]
    summary["run"] = {
        "path": str(run.path),
        "name": m.get("name"),
        "created": m.get("created"),
        "ctqc_version": m.get("ctqc_version"),
        "git_commit": m.get("git_commit"),
        "config_hash": m.get("config_hash"),
        "data_fingerprint": data.get("fingerprint"),
        "stages": {k: {"status": v.get("status"), "seconds": num(v.get("seconds"))} for k, v in recorded.items() if isinstance(v, dict)},
    }
    return _section(
        "run",
        "Run summary",
        bool(m),
        hint=None,
        facts=facts,
        data_warnings=[str(w) for w in data.get("warnings") or []],
        config_text=run.config_text(),
        versions=versions,
        python=platform.python_version(),
        stages=stages,
        total_seconds=_duration(total),
    )


def _duration(seconds) -> str:
    s = num(seconds)
    if s is None:
        return "–"
    if s < 60:
        return f"{s:.1f} s"
    minutes, sec = divmod(int(round(s)), 60)
    if minutes < 60:
        return f"{minutes} min {sec:02d} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"


# ============================================================================ 2 data


def _data(run: RunData, real: _RealImages, summary: dict) -> dict:
    m = run.manifest()
    counts = (m.get("data") or {}).get("class_counts") or {}
    splits = run.csv("splits.csv")
    ran = splits is not None or run.stage_done("data")
    if not ran:
        return _section("data", "Data", False)
    classes = run.class_names() or list(counts)
    split_tables, fold_sizes, examples = [], [], []
    if splits is not None and {"fold", "role", "class"} <= set(splits.columns):
        folds = sorted(splits["fold"].unique())
        for fold in folds:
            part = splits[splits["fold"] == fold]
            row = {r: int((part["role"] == r).sum()) for r in ("train", "val", "test")}
            fold_sizes.append({"fold": int(fold), **row})
        part = splits[splits["fold"] == folds[0]]
        split_classes = list(dict.fromkeys(classes + [c for c in part["class"].unique() if c not in classes]))
        for role in ("train", "val", "test"):
            cells = [int(((part["role"] == role) & (part["class"] == c)).sum()) for c in split_classes]
            split_tables.append({"role": role, "counts": cells, "total": sum(cells)})
        train = part[part["role"] == "train"]
        for c in split_classes:
            ids = train.loc[train["class"] == c, "id"].astype(str).tolist()[:MAX_REAL_EXAMPLES]
            pics = [p for p in (real.picture(i, caption=i, title=f"real {c}: {i}") for i in ids) if p]
            examples.append({"class": c, "pictures": pics})
    else:
        split_classes = classes
    summary["data"] = {
        "class_counts": counts,
        "n_images": (m.get("data") or {}).get("n_images"),
        "folds": len(fold_sizes),
        "split_sizes": fold_sizes[0] if fold_sizes else None,
    }
    return _section(
        "data",
        "Data",
        True,
        class_counts=list(counts.items()),
        split_classes=split_classes,
        split_rows=split_tables,
        fold_sizes=fold_sizes if len(fold_sizes) > 1 else [],
        examples=examples,
        real_note=real.note,
        scheme=(run.config().get("split") or {}).get("scheme"),
    )


# ============================================================================ 3 GAN training


def _class_order(run: RunData, names: list[str]) -> list[str]:
    order = {re.sub(r"[^A-Za-z0-9_-]+", "-", c).strip("-"): i for i, c in enumerate(run.class_names())}
    return sorted(names, key=lambda n: (order.get(n, len(order)), n))


def _gan(run: RunData, summary: dict) -> dict:
    units = run.gan_units()
    if not units and not run.stage_done("train"):
        return _section("gan", "GAN training", False)
    gan_cfg = run.config().get("gan") or {}
    rows, figs, grids, warnings, notes = [], [], [], [], []
    per_fold: dict[int, dict[str, tuple[list[dict], list[dict]]]] = {}
    names = _class_order(run, list(dict.fromkeys(u[1] for u in units)))
    units = sorted(units, key=lambda u: (u[0], names.index(u[1])))
    summary_units = {}
    for fold, name, d in units:
        records = run.jsonl(str((d / "stats.jsonl").relative_to(run.path))) or []
        losses = [r for r in records if r.get("kind") == "loss"]
        quality = [r for r in records if r.get("kind") == "quality"]
        warns = [r for r in records if r.get("kind") == "warning"]
        per_fold.setdefault(fold, {})[name] = (losses, quality)
        last_q = quality[-1] if quality else {}
        last_l = losses[-1] if losses else {}
        first_q = quality[0] if quality else {}
        ckpts = sorted((d / "checkpoints").glob("*.pt")) if (d / "checkpoints").is_dir() else []
        epochs = max([int(r.get("epoch", 0)) for r in quality] + [int(r.get("epoch", -1)) + 1 for r in losses] + [0])
        rows.append(
            {
                "unit": f"fold {fold} / {name}",
                "epochs": epochs or "–",
                "steps": last_l.get("step", last_q.get("step", "–")),
                "loss_d": _fmt(last_l.get("loss_d")),
                "loss_g": _fmt(last_l.get("loss_g")),
                "kid": f"{_fmt(first_q.get('kid_val'))} → {_fmt(last_q.get('kid_val'))}" if quality else "–",
                "diversity": _fmt(last_q.get("diversity")),
                "warnings": len(warns),
                "checkpoints": ", ".join(f"{p.name} ({p.stat().st_size / 1e6:.1f} MB)" for p in ckpts) or "none",
            }
        )
        for w in warns[-1:]:
            warnings.append(f"fold {fold} / {name}, epoch {w.get('epoch', '?')}: {w.get('message', '')} ({len(warns)} evaluation(s) flagged)")
        summary_units[f"fold{fold}/{name}"] = {
            "epochs": epochs,
            "final_quality": {k: last_q.get(k) for k in ("kid_val", "nn_val", "diversity") if k in last_q},
            "warnings": len(warns),
        }
        if fold == units[0][0]:
            shots = sorted((d / "grids").glob("epoch_*.png")) if (d / "grids").is_dir() else []
            picked = [shots[i] for i in sorted({round(x) for x in np.linspace(0, len(shots) - 1, min(MAX_GRIDS, len(shots)))})] if shots else []
            pics = []
            for p in picked:
                m = re.search(r"epoch_(\d+)", p.name)
                pic = picture_from_file(p, GRID_PX, caption=f"epoch {int(m.group(1))}" if m else p.name)
                if pic:
                    pics.append(pic)
            grids.append({"unit": f"fold {fold} / {name}", "pictures": pics})
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
    summary["gan"] = summary_units
    settings = [(k, gan_cfg.get(k)) for k in ("mode", "architecture", "width", "epochs", "batch_size", "loss", "lr", "diffaugment", "ema_decay") if k in gan_cfg]
    return _section("gan", "GAN training", True, rows=rows, figures=figs, notes=notes, grids=grids, warnings=warnings, settings=settings, n_folds=len(per_fold))


# ============================================================================ 4 synthetic samples


def _samples(run: RunData, summary: dict) -> dict:
    index = run.csv("samples/index.csv")
    if index is None:
        return _section("samples", "Synthetic samples", False, hint="ctqc generate" if run.gan_units() else "ctqc train")
    classes = list(dict.fromkeys(run.class_names() + [c for c in index.get("class", []) if isinstance(c, str)]))
    per_class = []
    for c in classes:
        part = index[index["class"] == c] if "class" in index else index.iloc[:0]
        if part.empty:
            continue
        if "fold" in part:
            part = part.sort_values("fold", kind="stable")
        pics = [p for p in (picture_from_file(run.file(f"samples/{f}"), THUMB_PX, title=f"synthetic {c}: {f}") for f in part["file"].astype(str).tolist()[:MAX_SAMPLES]) if p]
        per_class.append({"class": c, "n": int(len(part)), "pictures": pics})
    summary["samples"] = {row["class"]: row["n"] for row in per_class}
    return _section("samples", "Synthetic samples", True, per_class=per_class, total=int(len(index)), max_shown=MAX_SAMPLES)


# ============================================================================ 5 distribution metrics


DISTRIBUTION_METRICS = ("fid", "kid", "precision", "recall")


def _metric_rows(scopes: dict[str, dict]) -> list[dict]:
    """Long format: one row per scope × metric, with the value, its size-matched value and the floor."""
    rows = []
    for name, s in scopes.items():
        for metric in DISTRIBUTION_METRICS:
            e = s.get(metric) if isinstance(s.get(metric), dict) else None
            if not e or num(e.get("value")) is None:
                continue
            rows.append(
                {
                    "scope": name,
                    "metric": figures.METRIC_LABELS[metric][0],
                    "value": _ci(e),
                    "matched": concl.sig(num(e.get("matched")), 4) if num(e.get("matched")) is not None else "–",
                    "floor": _ci(e, "floor", "floor_ci_low", "floor_ci_high"),
                    "n": f"{s.get('n_synthetic', '–')} / {s.get('n_real', '–')} / {s.get('n_floor', '–')}",
                }
            )
    return rows


def _metrics(run: RunData, summary: dict) -> dict:
    metrics = run.json("qc/metrics.json")
    scopes = metrics.get("scopes") if isinstance(metrics, dict) else None
    if not isinstance(scopes, dict) or not scopes:
        return _section("metrics", "Distribution metrics", False)
    scopes = {str(k): v for k, v in scopes.items() if isinstance(v, dict)}
    sentences = []
    for name, s in scopes.items():
        for metric in ("fid", "kid"):
            sentence = concl.distribution_sentence(name, metric, s.get(metric) if isinstance(s.get(metric), dict) else {})
            if sentence:
                sentences.append(sentence)
    summary["distribution_metrics"] = {
        "extractor": metrics.get("extractor"),
        "scopes": {name: {m: s[m] for m in DISTRIBUTION_METRICS if isinstance(s.get(m), dict)} for name, s in scopes.items()},
    }
    return _section(
        "metrics",
        "Distribution metrics",
        True,
        extractor=metrics.get("extractor"),
        n_bootstrap=metrics.get("n_bootstrap"),
        reference=metrics.get("reference"),
        warnings=[str(w) for w in metrics.get("warnings") or []],
        rows=_metric_rows(scopes),
        figure=figures.distribution_metrics(scopes),
        sentences=sentences,
    )


# ============================================================================ 6 embeddings


def _embeddings(run: RunData, summary: dict) -> dict:
    pics = []
    for method, label in (("tsne", "t-SNE"), ("umap", "UMAP")):
        pic = picture_from_file(run.file(f"qc/embedding_{method}.png"), 1000, caption=label)
        if pic:
            pics.append(pic)
    table = run.csv("qc/embeddings.csv")
    if not pics and table is None:
        return _section("embeddings", "Embeddings", False)
    counts = []
    if table is not None and {"class", "source"} <= set(table.columns):
        for c in dict.fromkeys(table["class"]):
            part = table[table["class"] == c]
            syn = part[part["source"] == "synthetic"]
            kept = syn["kept"].map(lambda v: str(v).lower() in ("true", "1", "1.0")) if "kept" in syn else None
            counts.append(
                {
                    "class": c,
                    "real": int((part["source"] == "real").sum()),
                    "synthetic": int(len(syn)),
                    "kept": "–" if kept is None else int(kept.sum()),
                    "rejected": "–" if kept is None else int((~kept).sum()),
                    "folds": int(part["fold"].nunique()) if "fold" in part else 1,
                }
            )
    methods = [c[:-2] for c in (table.columns if table is not None else []) if c.endswith("_x")]
    return _section("embeddings", "Embeddings", True, pictures=pics, counts=counts, methods=methods)


# ============================================================================ 7 C2ST


def _filter_scores(run: RunData):
    import pandas as pd

    parts = [t for t in (run.csv("filter/kept.csv"), run.csv("filter/rejected.csv")) if t is not None]
    parts = [t for t in parts if not t.empty]
    return pd.concat(parts, ignore_index=True) if parts else None


def _qc_scores(run: RunData):
    """qc/c2st_scores.csv (written by ``ctqc qc``), or None."""
    table = run.csv("qc/c2st_scores.csv")
    return None if table is None or table.empty else table


def _calibration_table(scores):
    """Real and synthetic out-of-fold scores → columns class / score / is_synthetic; None without real rows.

    A reliability diagram needs both groups; a file of synthetic scores only
    (``sample_id, file, class, fold, c2st_score``) cannot give one.
    """
    if scores is None:
        return None
    score = next((c for c in ("p_synthetic", "c2st_score", "score") if c in scores), None)
    if score is None:
        return None
    if "source" in scores:
        synthetic = scores["source"].astype(str).str.lower().eq("synthetic")
    elif "is_synthetic" in scores:
        synthetic = scores["is_synthetic"].astype(str).str.lower().isin(("1", "true", "1.0"))
    else:
        return None
    if synthetic.all() or not synthetic.any():
        return None
    out = scores.assign(score=_to_float(scores[score]), is_synthetic=synthetic)
    if "class" not in out:
        out["class"] = "all"
    return out[np.isfinite(out["score"])]


def _to_float(column):
    import pandas as pd

    return pd.to_numeric(column, errors="coerce").astype(float)


def _c2st(run: RunData, summary: dict) -> dict:
    metrics = run.json("qc/metrics.json")
    metrics = metrics if isinstance(metrics, dict) else {}
    c2st = metrics.get("c2st") if isinstance(metrics.get("c2st"), dict) else {}
    filt = run.json("filter/filter.json")
    per_unit = filt.get("per_class") if isinstance(filt, dict) and isinstance(filt.get("per_class"), dict) else {}
    scores = _filter_scores(run)
    qc_scores = _qc_scores(run)
    if scores is None and qc_scores is not None and "c2st_score" in qc_scores:
        scores = qc_scores
    calibration = _calibration_table(qc_scores)
    if not c2st and not per_unit and scores is None:
        return _section("c2st", "Classifier two-sample test (C2ST)", False, hint="ctqc filter")
    qc_rows = [
        {"class": str(k), "auc": _auc(v.get("auc")) if v.get("auc") is not None else v.get("note") or "–", "accuracy": _auc(v.get("accuracy")), "p": concl.fmt_p(v.get("p_value")), "n_real": v.get("n_real", "–"), "n_synthetic": v.get("n_synthetic", "–")}
        for k, v in c2st.items()
        if isinstance(v, dict)
    ]
    filter_rows = [
        {"unit": str(k), "auc": _auc((v.get("c2st_before") or {}).get("auc")), "p": concl.fmt_p((v.get("c2st_before") or {}).get("p_value")), "note": (v.get("c2st_before") or {}).get("note"), "n_synthetic": v.get("n_synthetic", "–")}
        for k, v in per_unit.items()
        if isinstance(v, dict)
    ]
    threshold = num(filt.get("c2st_threshold")) if isinstance(filt, dict) else num((run.config().get("qc") or {}).get("c2st_threshold"))
    scores_source = "filter/kept.csv + filter/rejected.csv" if scores is not None and scores is not qc_scores else "qc/c2st_scores.csv"
    sentences = [s for s in (concl.c2st_sentence(str(k), v) for k, v in c2st.items() if isinstance(v, dict)) if s]
    if not sentences:
        sentences = [s for s in (concl.c2st_sentence(str(k), v.get("c2st_before") or {}) for k, v in per_unit.items() if isinstance(v, dict)) if s]
    summary["c2st"] = {
        "qc": {str(k): {f: v.get(f) for f in ("auc", "accuracy", "p_value", "n_real", "n_synthetic")} for k, v in c2st.items() if isinstance(v, dict)},
        "filter": {str(k): v.get("c2st_before") for k, v in per_unit.items() if isinstance(v, dict)},
    }
    return _section(
        "c2st",
        "Classifier two-sample test (C2ST)",
        True,
        qc_rows=qc_rows,
        filter_rows=filter_rows,
        histogram=figures.c2st_histogram(scores, threshold),
        calibration=figures.c2st_calibration(calibration) if calibration is not None else None,
        scores_source=scores_source,
        qc_scores_exist=qc_scores is not None,
        threshold=threshold,
        features=", ".join(filt.get("features") or []) if isinstance(filt, dict) else ", ".join(metrics.get("c2st_features") or []),
        classifier=filt.get("classifier") if isinstance(filt, dict) else metrics.get("c2st_classifier"),
        sentences=sentences,
    )


# ============================================================================ 8 memorisation


def _memorisation(run: RunData, real: _RealImages, summary: dict) -> dict:
    metrics = run.json("qc/metrics.json")
    mem = metrics.get("memorisation") if isinstance(metrics, dict) and isinstance(metrics.get("memorisation"), dict) else {}
    mem = {str(k): v for k, v in mem.items() if isinstance(v, dict)}
    scores = _filter_scores(run)
    has_copy = scores is not None and "copy_ratio" in scores and scores["copy_ratio"].notna().any()
    if not mem and not has_copy:
        return _section("memorisation", "Memorisation", False, hint="ctqc filter")
    ct_rows, sentences = [], []
    by_class: dict[str, list[dict]] = {}
    for name, entry in mem.items():
        ct_rows.append({"class": name, "c_t": _fmt(entry.get("c_t")) if entry.get("c_t") is not None else entry.get("note") or "–", "n_flagged": entry.get("n_flagged", "–"), "threshold": _fmt(entry.get("copy_threshold"))})
        s = concl.ct_sentence(name, entry.get("c_t"))
        if s:
            sentences.append(s)
        for p in entry.get("pairs") or []:
            if isinstance(p, dict):
                corr = num(p.get("correlation"))
                by_class.setdefault(name, []).append(
                    {"class": name, "file": str(p.get("file") or f"{p.get('sample_id')}.png"), "train_id": str(p.get("train_id")), "correlation": corr, "ratio": num(p.get("ratio")), "flagged": p.get("flagged")}
                )
    source = "qc/metrics.json"
    if not by_class and has_copy:  # the filter's copy check: same distances, every image
        source = "filter/kept.csv + filter/rejected.csv"
        for _, r in scores[scores["copy_ratio"].notna()].iterrows():
            d = num(r.get("copy_distance"))
            by_class.setdefault(str(r.get("class")), []).append(
                {"class": str(r.get("class")), "file": str(r.get("file")), "train_id": str(r.get("nearest_train_id")), "correlation": None if d is None else 1 - d, "ratio": num(r.get("copy_ratio")), "flagged": "copy" in str(r.get("reasons", ""))}
            )
    per_class = max(1, -(-MAX_PAIRS // max(1, len(by_class))))  # the most suspicious of every class, MAX_PAIRS in all
    pairs = []
    for name, items in by_class.items():
        items.sort(key=lambda c: (c["ratio"] is None, c["ratio"] if c["ratio"] is not None else 0))
        for c in items[:per_class]:
            pairs.append(
                {
                    **c,
                    "synthetic": picture_from_file(run.file(f"samples/{c['file']}"), THUMB_PX, title=f"synthetic: {c['file']}"),
                    "real": real.picture(c["train_id"], title=f"nearest training image: {c['train_id']}"),
                    "ratio_text": _fmt(c["ratio"]),
                    "correlation_text": _fmt(c["correlation"]),
                }
            )
    n_copies = int(scores["reasons"].str.contains("copy").sum()) if scores is not None and "reasons" in scores else None
    if n_copies is not None and has_copy:
        sentences.append(f"The filter's copy check flagged {n_copies} of {len(scores)} synthetic images as near-copies of a training image.")
    summary["memorisation"] = {
        "c_t": {name: num(e.get("c_t")) for name, e in mem.items()},
        "n_flagged": {name: e.get("n_flagged") for name, e in mem.items()},
        "copies_flagged_by_filter": n_copies if has_copy else None,
    }
    return _section("memorisation", "Memorisation", True, ct_rows=ct_rows, pairs=pairs, pairs_source=source, sentences=sentences, real_note=real.note)


# ============================================================================ 9 filter


def _filter(run: RunData, summary: dict) -> dict:
    filt = run.json("filter/filter.json")
    if not isinstance(filt, dict):
        return _section("filter", "Filter", False)
    kept, rejected = run.csv("filter/kept.csv"), run.csv("filter/rejected.csv")
    rows = []
    for unit, v in (filt.get("per_class") or {}).items():
        if not isinstance(v, dict):
            continue
        before, after = v.get("c2st_before") or {}, v.get("c2st_after") or {}
        rows.append(
            {
                "unit": str(unit),
                "n": v.get("n_synthetic", "–"),
                "kept": v.get("kept", "–"),
                "rejected_c2st": v.get("rejected_c2st", "–"),
                "rejected_copy": v.get("rejected_copy", "–"),
                "before": f"AUC {_auc(before.get('auc'))} ({concl.fmt_p(before.get('p_value'))})" if before.get("auc") is not None else before.get("note") or "–",
                "after": f"AUC {_auc(after.get('auc'))} ({concl.fmt_p(after.get('p_value'))})" if after.get("auc") is not None else after.get("note") or "–",
                "copy_threshold": _fmt(v.get("copy_threshold")),
            }
        )
    metrics = run.json("qc/metrics.json")
    before_scopes = metrics.get("scopes") if isinstance(metrics, dict) and isinstance(metrics.get("scopes"), dict) else {}
    after_scopes = ((metrics.get("after_filter") or {}).get("scopes") if isinstance(metrics, dict) and isinstance(metrics.get("after_filter"), dict) else None) or {}
    before_after = []
    for name, after_entry in after_scopes.items():
        if not isinstance(after_entry, dict):
            continue
        for metric in DISTRIBUTION_METRICS:
            a = after_entry.get(metric) if isinstance(after_entry.get(metric), dict) else None
            b = (before_scopes.get(name) or {}).get(metric) if isinstance((before_scopes.get(name) or {}).get(metric), dict) else {}
            if a and num(a.get("value")) is not None:
                before_after.append({"scope": str(name), "metric": figures.METRIC_LABELS[metric][0], "before": _ci(b), "after": _ci(a), "floor": _ci(a, "floor", "floor_ci_low", "floor_ci_high"), "n": f"{(before_scopes.get(name) or {}).get('n_synthetic', '–')} → {after_entry.get('n_synthetic', '–')}"})

    def gallery(table, ascending: bool) -> list[Picture]:
        if table is None or table.empty:
            return []
        table = table.sort_values("c2st_score", ascending=ascending, kind="stable", na_position="last")
        pics = []
        for _, r in table.head(MAX_GALLERY).iterrows():
            reasons = str(r.get("reasons") or "")
            caption = f"p {_fmt(r.get('c2st_score'), 2)}" + (f" · {reasons}" if reasons else "")
            pic = picture_from_file(run.file(f"samples/{r['file']}"), THUMB_PX, caption=caption, title=f"{r.get('class')}: {r['file']} — p(synthetic) {_fmt(r.get('c2st_score'))}" + (f", rejected: {reasons}" if reasons else ""))
            if pic:
                pics.append(pic)
        return pics

    n_kept, n_rej = filt.get("kept"), filt.get("rejected")
    summary["filter"] = {
        "c2st_threshold": filt.get("c2st_threshold"),
        "memorisation": filt.get("memorisation"),
        "kept": n_kept,
        "rejected": n_rej,
        "per_class": {r["unit"]: {k: (filt["per_class"][r["unit"]] or {}).get(k) for k in ("n_synthetic", "kept", "rejected_c2st", "rejected_copy", "c2st_before", "c2st_after")} for r in rows},
        "distribution_metrics_after": {str(k): {m: v[m] for m in DISTRIBUTION_METRICS if isinstance(v.get(m), dict)} for k, v in after_scopes.items() if isinstance(v, dict)},
    }
    return _section(
        "filter",
        "Filter",
        True,
        threshold=filt.get("c2st_threshold"),
        memorisation=filt.get("memorisation"),
        features=", ".join(filt.get("features") or []),
        classifier=filt.get("classifier"),
        fitted_on=filt.get("fitted_on"),
        kept=n_kept,
        rejected=n_rej,
        rows=rows,
        before_after=before_after,
        metrics_ran=bool(before_scopes),
        figure=figures.filter_scores(kept, rejected, num(filt.get("c2st_threshold"))),
        kept_pictures=gallery(kept, True),
        rejected_pictures=gallery(rejected, False),
        n_kept_total=0 if kept is None else len(kept),
        n_rejected_total=0 if rejected is None else len(rejected),
    )


# ============================================================================ 10 classification


def _classification(run: RunData, summary: dict) -> dict:
    comp = run.json("compare/summary.json")
    results = run.csv("compare/results.csv")
    if not isinstance(comp, dict) and results is None:
        return _section("classification", "Classification", False)
    comp = comp if isinstance(comp, dict) else {}
    arms = comp.get("arms") if isinstance(comp.get("arms"), dict) else {}
    arm_names = list(arms) + ([a for a in dict.fromkeys(results["arm"]) if a not in arms] if results is not None and "arm" in results else [])
    metric_cols = [m for m in TABLE1_METRICS + EXTRA_METRICS if any(isinstance((arms.get(a) or {}).get(m), dict) for a in arm_names)]
    table = []
    for a in arm_names:
        entry = arms.get(a) or {}
        ns = [e.get("n") for e in entry.values() if isinstance(e, dict) and e.get("n") is not None]
        n_results = int((results["arm"] == a).sum()) if results is not None and "arm" in results else None
        table.append({"arm": a, "cells": [_pct_ci(entry.get(m) or {}) for m in metric_cols], "n": ns[0] if ns else (n_results if n_results is not None else "–")})
    comparisons, footnotes = [], []
    for c in comp.get("comparisons") or []:
        if not isinstance(c, dict):
            continue
        if c.get("note") and str(c["note"]) not in footnotes:
            footnotes.append(str(c["note"]))
        diff, lo, hi = num(c.get("mean_diff")), num(c.get("ci_low")), num(c.get("ci_high"))
        comparisons.append(
            {
                "arm": str(c.get("arm")),
                "reference": str(c.get("reference")),
                "metric": str(c.get("metric", "")).replace("_", " "),
                "diff": "–" if diff is None else concl.points(diff),
                "ci": "–" if lo is None or hi is None else f"{concl.points(lo)} to {concl.points(hi)}",
                "p": concl.fmt_p(c.get("p_value")),
                "test": c.get("test", "–"),
                "n_pairs": c.get("n_pairs", "–"),
                "includes_zero": concl.ci_includes_zero(lo, hi),
                "note": footnotes.index(str(c["note"])) + 1 if c.get("note") else None,
                "headline": c.get("metric") == concl.HEADLINE_METRIC,
            }
        )
    if not any(c["headline"] for c in comparisons):  # no balanced accuracy: every metric is "headline"
        for c in comparisons:
            c["headline"] = True
    paper_raw = comp.get("paper") if isinstance(comp.get("paper"), dict) and comp.get("paper") else None
    paper_source = "compare/summary.json" if paper_raw else "the paper's Table 1 (papers/dcgan-da-head-ct.txt)"
    paper = paper_raw or PAPER_TABLE1
    paper_rows = [
        {"arm": str(v.get("label") or a) if paper_raw else PAPER_LABELS.get(a, a), "cells": [_paper_cell(v.get(m)) for m in TABLE1_METRICS]}
        for a, v in paper.items()
        if isinstance(v, dict)
    ]
    plot_metrics = [m for m in ["balanced_accuracy", *TABLE1_METRICS, "roc_auc"] if results is not None and m in results]
    dots = figures.classification_dots(results, arms, plot_metrics[:4], paper)
    skipped = [(str(k), str(v)) for k, v in (comp.get("skipped") or {}).items()] if isinstance(comp.get("skipped"), dict) else []
    summary["classification"] = {
        "arms": {a: {m: (arms.get(a) or {}).get(m) for m in metric_cols if (arms.get(a) or {}).get(m) is not None} for a in arm_names},
        "comparisons": [c for c in comp.get("comparisons") or [] if isinstance(c, dict)],
        "skipped": dict(skipped),
        "seeds": comp.get("seeds"),
        "folds": comp.get("folds"),
    }
    return _section(
        "classification",
        "Classification",
        True,
        metric_cols=[m.replace("_", " ") for m in metric_cols],
        table=table,
        comparisons=[c for c in comparisons if c["headline"]],
        other_comparisons=[c for c in comparisons if not c["headline"]],
        footnotes=footnotes,
        paper_rows=paper_rows,
        paper_source=paper_source,
        figure=dots,
        skipped=skipped,
        method=[(k, comp.get(k)) for k in ("ci", "test", "paired_by", "positive_class", "evaluated_on") if comp.get(k)],
        notes=[str(n) for n in comp.get("notes") or []] if isinstance(comp.get("notes"), list) else [],
        seeds_text=_count_text(comp.get("seeds"), results, "seed"),
        folds_text=_count_text(comp.get("folds"), results, "fold"),
        n_results=None if results is None else len(results),
    )


def _count_text(value, results, column: str) -> str:
    """"3 seeds (0, 1, 2)" from a list or a count in summary.json, else from results.csv."""
    if isinstance(value, list):
        items = value
    elif num(value) is not None:
        return f"{int(num(value))} {column}(s)"
    elif results is not None and column in results:
        items = sorted(results[column].dropna().unique().tolist())
    else:
        return f"{column}s"
    shown = ", ".join(str(v) for v in items[:10]) + (", …" if len(items) > 10 else "")
    return f"{len(items)} {column}(s) ({shown})"


def _paper_cell(v) -> str:
    f = num(v)
    if f is None:
        return "–"
    return f"{f:.2f} %" if f > 1 else f"{f * 100:.2f} %"


# ============================================================================ 11 self-test


def _selftest(run: RunData, summary: dict) -> dict:
    st = run.json("qc/selftest.json")
    if not isinstance(st, dict):
        return _section("selftest", "QC self-test", False)
    null = st.get("null") if isinstance(st.get("null"), dict) else {}
    planted = st.get("planted") if isinstance(st.get("planted"), dict) else {}
    copies = st.get("copies") if isinstance(st.get("copies"), dict) else {}
    aucs = [num(a) for a in null.get("auc") or [] if num(a) is not None]
    pvals = [num(a) for a in null.get("p_values") or [] if num(a) is not None]
    disc = [num(a) for a in null.get("discarded_fraction") or [] if num(a) is not None]
    null_row = {
        "auc": f"{np.mean(aucs):.3f} ({min(aucs):.3f}–{max(aucs):.3f} over {len(aucs)} splits)" if aucs else "–",
        "p": f"{min(pvals):.2g}–{max(pvals):.2g}" if pvals else "–",
        "discarded": f"≤ {max(disc):.0%}" if disc else "–",
        "pass": null.get("pass"),
    }
    auroc = planted.get("auroc") if isinstance(planted.get("auroc"), dict) else {}
    strengths = ["low", "medium", "high"]
    planted_rows = [{"name": str(k).replace("_", " "), "cells": [_auc((v or {}).get(s)) for s in strengths]} for k, v in auroc.items() if isinstance(v, dict)]
    flagged = copies.get("flagged") if isinstance(copies.get("flagged"), dict) else {}
    copy_rows = [(str(k).replace("_", " "), f"{num(v):.0%}" if num(v) is not None else "–") for k, v in flagged.items()]
    summary["selftest"] = {"pass": st.get("pass"), "null_pass": null.get("pass"), "planted_pass": planted.get("pass"), "copies_pass": copies.get("pass")}
    return _section(
        "selftest",
        "QC self-test",
        True,
        overall=st.get("pass"),
        null=null_row,
        planted_rows=planted_rows,
        strengths=strengths,
        rising=planted.get("rising_with_strength"),
        medium_ok=planted.get("medium_at_least_0.9"),
        planted_pass=planted.get("pass"),
        copy_rows=copy_rows,
        genuine=f"{num(copies.get('genuine_flagged')):.0%}" if num(copies.get("genuine_flagged")) is not None else "–",
        copies_pass=copies.get("pass"),
        n_images=st.get("n_images"),
        features=", ".join(st.get("features") or []) if isinstance(st.get("features"), list) else st.get("features"),
        threshold=st.get("threshold"),
        images_used=(st.get("data") or {}).get("images_used") if isinstance(st.get("data"), dict) else None,
    )


# ============================================================================ 12 conclusion


def _conclusion(sections: list[dict], summary: dict) -> dict:
    by_id = {s["id"]: s for s in sections}
    paragraphs: list[tuple[str, list[str]]] = []
    cls = summary.get("classification")
    if cls:
        lines = concl.classification_sentences({"comparisons": cls.get("comparisons"), "skipped": cls.get("skipped")})
        if not lines:
            lines = ["The comparison ran, but its summary holds no paired comparisons, so no difference between arms can be stated."]
        paragraphs.append(("Does augmentation help?", lines))
    realism = list(by_id["c2st"].get("sentences") or []) + list(by_id["metrics"].get("sentences") or [])
    if realism:
        paragraphs.append(("Are the synthetic images realistic?", realism))
    filt = summary.get("filter")
    if filt:
        lines = [f"The filter (threshold {filt.get('c2st_threshold')}) kept {filt.get('kept')} of {(filt.get('kept') or 0) + (filt.get('rejected') or 0)} synthetic images."]
        for unit, v in (filt.get("per_class") or {}).items():
            after = concl.c2st_sentence(unit, (v or {}).get("c2st_after") or {})
            if after:
                lines.append(f"After filtering — {after}")
        paragraphs.append(("Filtering", lines))
    mem = by_id["memorisation"].get("sentences") or []
    if mem:
        paragraphs.append(("Copies of training images?", list(mem)))
    gan = by_id["gan"]
    if gan["ran"] and gan.get("warnings"):
        paragraphs.append(("GAN training", [f"The trainer warned: {w}." for w in gan["warnings"]]))
    st = summary.get("selftest")
    if st:
        verdict = "passed" if st.get("pass") else "did not pass every check"
        paragraphs.append(("Can the QC be trusted?", [f"The planted-defect self-test {verdict} (null: {_passfail(st.get('null_pass'))}, planted artifacts: {_passfail(st.get('planted_pass'))}, copies: {_passfail(st.get('copies_pass'))})."]))
    missing = [s for s in sections if not s["ran"] and s["id"] != "conclusion"]
    if missing:
        paragraphs.append(("Not covered", [f"No conclusion is drawn about: {', '.join(s['title'] for s in missing)} (not run)."]))
    summary["conclusions"] = [line for _, lines in paragraphs for line in lines]
    return _section("conclusion", "Conclusion", True, hint=None, paragraphs=paragraphs)


def _passfail(v) -> str:
    return "pass" if v is True else "fail" if v is False else "not recorded"


# ============================================================================ at a glance


def _glance(sections: list[dict], summary: dict) -> list[tuple[str, str]]:
    """Short headline facts for the top of the page (each with its uncertainty where it has one)."""
    out: list[tuple[str, str]] = []
    data = summary.get("data") or {}
    if data.get("class_counts"):
        sizes = data.get("split_sizes") or {}
        split = f"; split {sizes.get('train')} / {sizes.get('val')} / {sizes.get('test')} train / val / test" if sizes else ""
        out.append(("Data", f"{data.get('n_images')} images — " + ", ".join(f"{n} {c}" for c, n in data["class_counts"].items()) + split))
    gan = summary.get("gan") or {}
    if gan:
        warned = sum(1 for u in gan.values() if u.get("warnings"))
        out.append(("GAN", f"{len(gan)} GAN(s) trained" + (f"; {warned} with trainer warnings" if warned else "")))
    c2st = summary.get("c2st") or {}
    source = c2st.get("qc") or c2st.get("filter") or {}
    parts = [f"{k} AUC {_auc((v or {}).get('auc'))} ({concl.fmt_p((v or {}).get('p_value'))})" for k, v in source.items() if num((v or {}).get("auc")) is not None]
    if parts:
        out.append(("Realism (C2ST, 0.5 = indistinguishable)", "; ".join(parts)))
    dm = (summary.get("distribution_metrics") or {}).get("scopes") or {}
    fid = [(k, v.get("fid")) for k, v in dm.items() if isinstance(v.get("fid"), dict) and num(v["fid"].get("value")) is not None]
    if fid:
        out.append(("FID vs real-vs-real floor", "; ".join(f"{k} {_ci(e)} vs {_ci(e, 'floor', 'floor_ci_low', 'floor_ci_high')}" for k, e in fid)))
    filt = summary.get("filter")
    if filt:
        total = (filt.get("kept") or 0) + (filt.get("rejected") or 0)
        out.append(("Filter", f"kept {filt.get('kept')} of {total} synthetic images (threshold {filt.get('c2st_threshold')})"))
    cls = summary.get("classification")
    if cls:
        lines = concl.classification_sentences({"comparisons": cls.get("comparisons")})
        out.append(("Augmentation", lines[0] if lines else "no paired comparisons in compare/summary.json"))
    st = summary.get("selftest")
    if st:
        out.append(("QC self-test", "passed" if st.get("pass") else "did not pass every check"))
    missing = [s["title"] for s in sections if not s["ran"]]
    if missing:
        out.append(("Not run", ", ".join(missing)))
    return out
