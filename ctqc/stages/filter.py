"""The filter stage: a decision over stored scores — drop images a classifier calls synthetic, and copies.

The scores come from the score stage (:mod:`ctqc.stages.score`, ``qc/scores.csv``):
a calibrated, out-of-fold, prior-corrected p(synthetic) per synthetic image, fitted
against each fold's real *training* images, and the copy check against the same
images (its threshold from their leave-one-out distances; the fold's held-out
validation images only grade it). Images above the
operating point's threshold are rejected as unrealistic: ``--c2st-threshold``
(one fixed p(synthetic) threshold) or ``--max-real-rejection α`` (per fold × class,
the split-conformal threshold over the stored scores of the held-out real images,
which took no part in fitting). With memorisation checks on, flagged copies are
rejected too. Re-thresholding re-fits nothing: only the after-filter check — a
fresh C2ST (new folds) of the kept images vs the fold's held-out real images, on the
stored features — and the density/coverage view are computed again.

Per unit, filter.json reports the threshold used and the share of genuine images it
rejects (with the calibration set's size), the reliability curve and ECE of the
stored scores as they are (:func:`ctqc.qc.scoring.calibration`; the default score is
not calibrated), the two-sided after-check, and density/coverage of pool, kept set
and same-size random subsets (:func:`ctqc.qc.scoring.diversity`).

Selection strategies (:mod:`ctqc.qc.strategies`): ``realism`` (the threshold above), ``label``
(the stored ``label_prob`` — p(generated class) from a classifier fitted on the fold's real
training images — at least ``--label-threshold``) and ``both``; each also drops flagged copies.
The strategies of ``qc.filter_strategies`` run (the first is the default) plus any ``--strategy``;
the after-check, calibration and diversity views are the default strategy's.

Writes ``filter/kept.csv``, ``filter/rejected.csv`` (reasons and scores; the default strategy's),
``filter/<strategy>/kept.csv`` and ``rejected.csv`` of every strategy that ran,
``filter/filter.json`` (:class:`ctqc.artefacts.FilterSummary`; ``strategies``: what each kept
per unit) and the embedding plots (``filter/embedding_<method>.png``, kept and rejected images marked).
"""

from __future__ import annotations

import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ctqc import atomic
from ctqc.artefacts import FilterSummary, FilterUnit, Scoring, StrategySummary, StrategyUnit, read_artefact, write_artefact
from ctqc.config import FILTER_STRATEGIES, Config, QCConfig
from ctqc.errors import UserError
from ctqc.qc.calibration import conformal_expected_rejection, conformal_threshold, rejection_rate
from ctqc.qc.embeddings import plot_embedding
from ctqc.qc.inception import cache_dir
from ctqc.qc.scoring import AFTER_CHECK, FROZEN_CHECK, ScoreSet, after_check, calibration, diversity, frozen_check, load_features, score_units
from ctqc.qc.strategies import DESCRIPTIONS, decide_strategy, flags, genuine_rejection
from ctqc.qc.units import units_from_folders
from ctqc.run import Run

#: kept.csv / rejected.csv columns (the synthetic rows of the score table, plus the decision)
FILTER_COLUMNS = ["sample_id", "file", "class", "label", "fold", "c2st_score", "authentic", "label_prob", "copy_distance", "copy_ratio", "nearest_train_id", "reasons"]
BYO_HELDOUT = 0.2  # bring-your-own folders: the share of real images held out per class


@dataclass(frozen=True)
class FilterResult:
    kept: int
    rejected: int
    per_class: dict[str, FilterUnit]
    strategies: dict[str, StrategySummary] = field(default_factory=dict)


@dataclass(frozen=True)
class OperatingPoint:
    """A fixed p(synthetic) ``threshold``, or with ``max_real_rejection`` = α each unit's split-conformal threshold;
    the ``strategies`` to run (the first is the default) and the label strategy's ``label_threshold``."""

    threshold: float | None
    max_real_rejection: float | None = None
    strategies: tuple[str, ...] = ("realism",)
    label_threshold: float = 0.5

    @property
    def mode(self) -> str:
        return "threshold" if self.max_real_rejection is None else "conformal"


@dataclass(frozen=True)
class FilterOptions:
    """What ``ctqc filter`` is asked for; each ``None`` leaves it to the run's config (:func:`settings`).

    ``threshold``: ``--c2st-threshold``, a p(synthetic) in (0, 1); ``memorisation``: ``False`` for
    ``--no-memorisation``; ``max_real_rejection``: ``--max-real-rejection`` α in (0, 1); ``strategies``:
    ``--strategy`` names, run beside ``qc.filter_strategies``; ``label_threshold``: ``--label-threshold`` in (0, 1).
    """

    threshold: float | None = None
    memorisation: bool | None = None
    max_real_rejection: float | None = None
    strategies: tuple[str, ...] | None = None
    label_threshold: float | None = None


def settings(qc: QCConfig, options: FilterOptions) -> tuple[OperatingPoint, bool]:
    """The operating point (``--c2st-threshold``, default ``qc.c2st_threshold``, or ``--max-real-rejection``;
    the strategies: ``qc.filter_strategies`` plus ``--strategy``; ``--label-threshold``, default
    ``qc.label_threshold``) and whether copies are dropped. Raises :class:`UserError` on an option out of range."""
    memorisation = qc.memorisation if options.memorisation is None else options.memorisation
    unknown = [name for name in options.strategies or () if name not in FILTER_STRATEGIES]
    if unknown:
        raise UserError(f"--strategy {unknown[0]!r}: choose from {', '.join(FILTER_STRATEGIES)}")
    chosen = tuple(dict.fromkeys([*qc.filter_strategies, *(options.strategies or ())]))  # the configured default first
    label_threshold = qc.label_threshold if options.label_threshold is None else options.label_threshold
    if not 0 < label_threshold < 1:
        raise UserError(f"--label-threshold must be between 0 and 1 (got {label_threshold}); 0.5 keeps images the label classifier assigns to their class with p ≥ 0.5")
    if options.max_real_rejection is not None:
        if options.threshold is not None:
            raise UserError("give either --c2st-threshold or --max-real-rejection, not both")
        if not 0 < options.max_real_rejection < 1:
            raise UserError(f"--max-real-rejection must be between 0 and 1 (got {options.max_real_rejection}); 0.1 rejects at most about 10 % of genuine images")
        return OperatingPoint(None, options.max_real_rejection, chosen, label_threshold), memorisation
    threshold = qc.c2st_threshold if options.threshold is None else options.threshold
    if not 0 < threshold < 1:
        raise UserError(f"--c2st-threshold must be between 0 and 1 (got {threshold}); 0.6 drops images a classifier calls synthetic with > 60 % confidence")
    return OperatingPoint(threshold, None, chosen, label_threshold), memorisation


def run_filter(run: Run, options: FilterOptions = FilterOptions()) -> FilterResult:
    """Filter ``run``'s pool over its stored scores (the score stage must have run); writes ``filter/``."""
    point, memorisation = settings(run.config.qc, options)  # bad options: nothing recorded
    run.require_stage("score", "ctqc filter")
    layout = run.layout
    with run.stage("filter") as outputs:
        cfg = run.config
        scoring = read_artefact(layout.scoring, Scoring)
        scores = ScoreSet(
            table=pd.read_csv(layout.scores, dtype={"id": str, "file": str, "nearest_train_id": str, "dup_of": str}),
            units=scoring.model_dump(by_alias=True)["units"],
            features=load_features(layout.c2st_features),
        )
        tables, summary = decide_strategies(scores, cfg, point, memorisation, fitted_on=scoring.fitted_on)
        embeddings = pd.read_csv(layout.embeddings, dtype={"id": str}) if layout.embeddings.is_file() else None
        staging = layout.staging(layout.filter)
        plots = {method: layout.embedding_plot(method).name for method in cfg.qc.embeddings} if embeddings is not None else {}
        _write(staging, tables, summary, embeddings, plots)
        atomic.replace_dir(staging, layout.filter)
        outputs += [layout.rel(layout.kept), layout.rel(layout.rejected), layout.rel(layout.filter_summary)]
        outputs += [layout.rel(p) for strategy in tables for p in (layout.strategy_kept(strategy), layout.strategy_rejected(strategy))]
        outputs += [layout.rel(layout.filter / name) for name in plots.values()]
    return FilterResult(kept=summary.kept, rejected=summary.rejected, per_class=summary.per_class, strategies=summary.strategies)


def filter_folders(
    real_dir: Path,
    synthetic_dir: Path,
    out: Path,
    cfg: Config,
    options: FilterOptions = FilterOptions(),
) -> FilterResult:
    """Bring-your-own images: score and filter ``synthetic_dir`` against ``real_dir``; writes ``out/`` all at once.

    ``out`` gets kept.csv / rejected.csv (``file`` relative to ``synthetic_dir``), ``<strategy>/`` with each
    strategy's, filter.json and the embedding plots; an existing ``out`` is replaced only if it holds an earlier filter.json.
    """
    out = Path(out)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / "filter.json").is_file())):
        raise UserError(f"--out {out}: exists and is not an earlier ctqc filter output; choose a new folder")
    atomic.check_can_create(out)
    point, memorisation = settings(cfg.qc, options)
    units = units_from_folders(real_dir, synthetic_dir, cfg, heldout_fraction=BYO_HELDOUT)
    scores = score_units(units, cfg, cache_dir() / "features", memorisation=memorisation)
    held = round(100 * BYO_HELDOUT)
    fitted_on = f"a random {100 - held} % of the real images of each class in {real_dir}; copy threshold from the same images (leave-one-out); held-out scores, after-check and floor: the other {held} %"
    tables, summary = decide_strategies(scores, cfg, point, memorisation, fitted_on=fitted_on)
    summary.real, summary.synthetic = str(real_dir), str(synthetic_dir)
    staging = out.parent / f".{out.name}.new"
    plots = {method: f"embedding_{method}.png" for method in cfg.qc.embeddings} if scores.embeddings is not None else {}
    _write(staging, tables, summary, scores.embeddings, plots, embeddings_csv=True)
    atomic.replace_dir(staging, out)
    return FilterResult(kept=summary.kept, rejected=summary.rejected, per_class=summary.per_class, strategies=summary.strategies)


def decide_and_check(scores: ScoreSet, cfg: Config, point: OperatingPoint | float, memorisation: bool, fitted_on: str) -> tuple[pd.DataFrame, FilterSummary]:
    """(the default strategy's kept + rejected table with ``reasons``, filter.json): :func:`decide_strategies`."""
    tables, summary = decide_strategies(scores, cfg, point, memorisation, fitted_on)
    return tables[summary.strategy], summary


def decide_strategies(scores: ScoreSet, cfg: Config, point: OperatingPoint | float, memorisation: bool, fitted_on: str) -> tuple[dict[str, pd.DataFrame], FilterSummary]:
    """({strategy: kept + rejected table with ``reasons``}, filter.json) from stored scores; fits only the after-check C2ST.

    ``point``: a fixed threshold for every unit (a number is read as one), or per unit the
    split-conformal threshold over the stored scores of its held-out real images. Either way
    each unit reports its threshold and the genuine images it rejects (:func:`_real_rejection`).
    Every strategy of ``point.strategies`` is a decision over the same stored scores
    (:mod:`ctqc.qc.strategies`); the after-check, calibration and diversity views are the default
    strategy's (the first).
    """
    point = point if isinstance(point, OperatingPoint) else OperatingPoint(float(point))
    table = scores.table
    if "label_prob" not in table:  # scored before the label strategy existed: it has no score to decide on
        if set(point.strategies) - {"realism"}:
            raise UserError("qc/scores.csv has no label_prob column (scored by an earlier ctqc): score the pool again (a new run, or `ctqc filter --real/--synthetic`) to use --strategy label or both")
        table = table.assign(label_prob=np.nan)
    synthetic = table[table["source"] == "synthetic"]
    thresholds, rejections, notes = {}, {}, {}
    for label, unit in scores.units.items():
        held = _unit_rows(table, unit, "heldout")["c2st_score"].to_numpy(float)
        thresholds[label], rejections[label] = _real_rejection(held, point)
        if thresholds[label] is None:
            notes[label] = (
                f"{rejections[label]['n']} held-out real images are too few for a {point.max_real_rejection:g} conformal guarantee (needs ≥ {_needed(point.max_real_rejection)}): nothing rejected as c2st"
            )
    unit_of = {(u["fold"], u["label"]): label for label, u in scores.units.items()}
    row_threshold = lambda rows: [1.0 if thresholds[unit_of[fk]] is None else thresholds[unit_of[fk]] for fk in zip(rows["fold"], rows["label"])]  # noqa: E731
    rule_flags = flags(synthetic, row_threshold(synthetic), point.label_threshold, memorisation, cfg.qc.reject_inauthentic)
    decided = {strategy: decide_strategy(synthetic, strategy, rule_flags, dedup=cfg.qc.dedup) for strategy in point.strategies}
    default = point.strategies[0]
    per_class = {}
    for label, unit in scores.units.items():
        rows = decided[default][(decided[default]["fold"] == unit["fold"]) & (decided[default]["label"] == unit["label"])]
        reasons = rows["reasons"]
        kept_mask = (reasons == "").to_numpy()
        per_class[label] = FilterUnit(
            n_synthetic=len(rows),
            kept=int(kept_mask.sum()),
            rejected_c2st=int(reasons.str.contains("c2st").sum()),
            rejected_copy=int(reasons.str.contains("copy").sum()),
            rejected_label=int(reasons.str.contains("label").sum()),
            rejected_duplicate=int(reasons.str.contains("duplicate").sum()),
            mmd_before=unit.get("mmd"),
            c2st_before=unit["c2st"],
            c2st_after=after_check(scores.features[label], kept_mask, cfg.qc, cfg.seed, unit["fold"]),
            copy_threshold=unit["copy_threshold"],
            threshold=thresholds[label],
            real_rejection=rejections[label],
            calibration=calibration(table, unit, cfg.qc),
            diversity=diversity(scores.features[label], kept_mask, cfg.qc, cfg.seed, unit["fold"]),
            frozen=frozen_check(table, unit, scores.features[label], thresholds[label], memorisation, cfg.qc, cfg.seed),
            notes=[*unit.get("notes", []), *([notes[label]] if label in notes else [])],
        )
    # (older score tables: no authentic or label_prob column)
    tables = {strategy: d.rename(columns={"id": "sample_id"}).reindex(columns=FILTER_COLUMNS) for strategy, d in decided.items()}
    strategies = {strategy: _strategy_summary(strategy, out, table, scores.units, thresholds, point.label_threshold) for strategy, out in tables.items()}
    summary = FilterSummary(
        c2st_threshold=point.threshold, mode=point.mode, max_real_rejection=point.max_real_rejection, after_check=AFTER_CHECK, frozen_check=FROZEN_CHECK,
        memorisation=memorisation, features=cfg.qc.features, classifier=cfg.qc.classifier,
        kept=strategies[default].kept, rejected=strategies[default].rejected, per_class=per_class, fitted_on=fitted_on,
        strategy=default, label_threshold=point.label_threshold, strategies=strategies,
    )  # fmt: skip
    return tables, summary


def _strategy_summary(strategy: str, decided: pd.DataFrame, table: pd.DataFrame, units: dict, thresholds: dict, label_threshold: float) -> StrategySummary:
    """What ``strategy`` kept per unit, and the share of the unit's held-out real images its score rules would reject."""
    per_class = {}
    for label, unit in units.items():
        reasons = decided.loc[(decided["fold"] == unit["fold"]) & (decided["label"] == unit["label"]), "reasons"]
        held = _unit_rows(table, unit, "heldout")
        c2st_threshold = 1.0 if thresholds[label] is None else thresholds[label]
        note = (unit.get("label_classifier") or {}).get("note") if strategy != "realism" else None
        per_class[label] = StrategyUnit(
            n_synthetic=len(reasons),
            kept=int((reasons == "").sum()),
            rejected_c2st=int(reasons.str.contains("c2st").sum()),
            rejected_label=int(reasons.str.contains("label").sum()),
            rejected_copy=int(reasons.str.contains("copy").sum()),
            real_rejection=genuine_rejection(held, strategy, c2st_threshold, label_threshold),
            notes=[note] if note else [],
        )
    kept = sum(u.kept for u in per_class.values())
    return StrategySummary(description=DESCRIPTIONS[strategy], kept=kept, rejected=len(decided) - kept, per_class=per_class)


def _real_rejection(held: np.ndarray, point: OperatingPoint) -> tuple[float | None, dict]:
    """(threshold, ``RealRejection`` fields) of one unit from its held-out real images' stored scores.

    Fixed threshold: the expected share of genuine images rejected is estimated by the share of
    held-out images above it (they took no part in fitting, and the threshold did not look at
    them), with a 95 % Wilson interval. Conformal: the threshold is their ⌈(n + 1)(1 − α)⌉-th
    smallest score, and a new exchangeable genuine image exceeds it with probability exactly
    1 − k/(n + 1) ≤ α; the in-sample share above it is shown too, but is not an estimate.
    """
    held = held[np.isfinite(held)]
    if point.mode == "threshold":
        rate = rejection_rate(held, point.threshold)
        return point.threshold, {**rate, "expected": rate["rate"], "basis": f"share of the {len(held)} held-out real images above the threshold (an estimate; 95 % Wilson interval)"}
    alpha = point.max_real_rejection
    threshold = conformal_threshold(held, alpha)
    if threshold is None:
        return None, {"n": len(held), "basis": f"too few held-out real images for α = {alpha:g}"}
    expected = conformal_expected_rejection(len(held), alpha)
    basis = f"split conformal over {len(held)} held-out real images: a new genuine image is rejected with probability {expected:.3f} ≤ α = {alpha:g} (exchangeability)"
    return round(threshold, 6), {**rejection_rate(held, threshold), "expected": round(expected, 4), "guarantee": alpha, "basis": basis}


def _needed(alpha: float) -> int:
    """The fewest calibration images for which the conformal rank ⌈(n + 1)(1 − α)⌉ ≤ n."""
    return math.ceil(1 / alpha - 1 - 1e-9)


def _unit_rows(table: pd.DataFrame, unit: dict, role: str) -> pd.DataFrame:
    return table[(table["fold"] == unit["fold"]) & (table["label"] == unit["label"]) & (table["role"] == role)]


def _write(staging: Path, tables: dict[str, pd.DataFrame], summary: FilterSummary, embeddings: pd.DataFrame | None, plots: dict[str, str], embeddings_csv: bool = False) -> None:
    """kept.csv, rejected.csv (the default strategy's), ``<strategy>/kept.csv`` and ``rejected.csv`` of every
    strategy, filter.json and the embedding plots (and ``embeddings.csv``), built in ``staging``."""
    shutil.rmtree(staging, ignore_errors=True)
    table = tables[summary.strategy]
    with atomic.atomic_dir(staging) as tmp:
        for folder, decided in [(tmp, table), *((tmp / strategy, t) for strategy, t in tables.items())]:
            folder.mkdir(exist_ok=True)
            decided[decided["reasons"] == ""].to_csv(folder / "kept.csv", index=False)
            decided[decided["reasons"] != ""].to_csv(folder / "rejected.csv", index=False)
        write_artefact(tmp / "filter.json", summary)
        if embeddings is not None:
            marked = _mark_kept(embeddings, table)
            if embeddings_csv:
                marked.to_csv(tmp / "embeddings.csv", index=False)
            first = marked[marked["fold"] == marked["fold"].min()]
            fold = int(first["fold"].min()) if len(first) else 0
            warnings = {label.split("/", 1)[1]: v.diversity.warning for label, v in summary.per_class.items() if label.startswith(f"fold{fold}/") and v.diversity is not None and v.diversity.warning}
            for method, name in plots.items():
                plot_embedding(first, method, tmp / name, warnings)


def _mark_kept(embeddings: pd.DataFrame, table: pd.DataFrame) -> pd.DataFrame:
    """The embedding table with a ``kept`` column: True/False for synthetic images, None for real ones."""
    kept = dict(zip(table["sample_id"].astype(str), table["reasons"] == ""))
    out = embeddings.copy()
    out["kept"] = [kept.get(str(i)) if s == "synthetic" else None for i, s in zip(out["id"], out["source"])]
    return out
