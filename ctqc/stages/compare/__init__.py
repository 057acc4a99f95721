"""The compare stage: does synthetic data help the downstream classifier? (Table 1 of the paper, with CIs.)

Each arm (:mod:`.arms`) is trained on its own training set and evaluated on the
same real validation and test images of each fold; test images come from
:meth:`~ctqc.splits.Splits.held_out_test` and are used only to evaluate.

Every (arm, fold, seed) is a training job (:mod:`.jobs`) whose result is written
atomically to ``compare/units/<arm>__f<fold>__s<seed>.json`` with a signature of
its inputs, so a re-run after an interruption skips completed units (and redoes
a unit whose inputs changed, e.g. after re-filtering). Jobs run in ``jobs``
spawned processes with ``cores // jobs`` torch threads each (:mod:`.executor`).

Outputs: ``compare/results.csv`` (one row per unit), ``compare/predictions/<unit>.csv``,
``compare/summary.json`` (image-level estimates, intervals, sign-flip tests, minimum
detectable differences and verdicts, primary/secondary, from the per-image predictions;
the per-training summaries beside them; the paper's figures; :mod:`.statistics`) and ``compare/table.txt`` (the paper's Table 1 layout; :mod:`.tables`).
This module only orchestrates.
"""

from __future__ import annotations

import contextlib
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from pydantic import ValidationError

from classify.models import check_pretrained_available
from ctqc import atomic
from ctqc import distributed as ddp
from ctqc.artefacts import CompareSummary, write_artefact
from ctqc.config import ARMS, FILTER_ARMS, FILTER_STRATEGIES, CompareConfig, Config, arm_strategy, ratio_arm, strategy_arm
from ctqc.device import resolve_device
from ctqc.errors import UserError
from ctqc.pool import affinity_cores, available_cores, split_cores
from ctqc.run import Run
from ctqc.stages.compare import dose
from ctqc.stages.compare.arms import NEEDS_FILTER, ArmData, FoldData, arm_order, build_arm, class_keys
from ctqc.stages.compare.executor import execute, load_unit
from ctqc.stages.compare.jobs import METRICS, RESULT_COLUMNS, TrainingJob, is_degenerate, make_job, same_training_record, train_unit, training_seed, unit_key
from ctqc.stages.compare.statistics import comparisons_for, summarise
from ctqc.stages.compare.tables import arm_label, format_table, print_table

__all__ = [
    "ARMS", "METRICS", "NEEDS_FILTER", "RESULT_COLUMNS", "ArmData", "CompareResult", "FoldData", "TrainingJob",
    "arm_label", "available_cores", "build_arm", "class_keys", "compare", "comparisons_for", "format_table",
    "make_job", "print_table", "summarise", "train_unit", "training_seed", "unit_key",
]  # fmt: skip


@dataclass(frozen=True)
class CompareResult:
    """What one ``compare`` call produced (also written under ``folder``)."""

    folder: Path
    results: pd.DataFrame  # one row per arm × fold × seed
    summary: dict
    table: str
    trained: int  # units trained by this call
    reused: int  # units found complete from an earlier call
    config: Config


def compare(
    run: Run,
    *,
    seeds: int | None = None,
    jobs: int | None = None,
    arms: list[str] | None = None,
    ratios: list[float] | None = None,
    progress: bool = True,
    console=None,
) -> CompareResult:
    """Train and evaluate every arm × fold × seed of ``run``; write ``compare/``. See the module docstring.

    ``ratios`` (synthetic images per real image) replaces ``compare.synthetic_ratios``
    for this call: one dose-response arm each (:mod:`.dose`), added to ``arms``.
    """
    cfg = run.config
    given = ratios is not None
    ratios = _checked_ratios(cfg, ratios) if given else cfg.compare.synthetic_ratios
    ratio_arms = [ratio_arm(r) for r in ratios]
    _check_arguments(seeds, jobs, arms, ratio_arms)
    run.require_stage("generate", "ctqc train")
    seeds = cfg.compare.seeds if seeds is None else seeds
    jobs = cfg.compare.jobs if jobs is None else jobs
    # the dose-response arms join the configured arms, and any --arm list when the ratios are given explicitly
    arms = list(cfg.compare.arms if arms is None else arms) + (ratio_arms if arms is None or given else [])
    # each further filter strategy that ran brings its own filtered arm and random control (ctqc filter --strategy)
    ran = filtered_strategies(run)
    arms += [strategy_arm(base, strategy) for base in FILTER_ARMS if base in arms for strategy in ran]
    arms = sorted(dict.fromkeys(arms), key=arm_order)  # canonical order, no duplicates
    dose_points, extension = dose.plan(run, [r for r, a in zip(ratios, ratio_arms) if a in arms])
    skipped: dict[str, str] = {p["arm"]: p["skipped"] for p in dose_points if p["skipped"]}
    skipped.update(_strategy_arms_not_filtered(arms, ran, cfg.qc.default_strategy))
    arms = [a for a in arms if a not in skipped]
    fold_data = _fold_loader(run, extension)  # loads the data, the pool and (once filtered) the kept list
    if run.stage_status("filter") != "done":
        for arm in NEEDS_FILTER:
            if arm in arms:
                skipped[arm] = "ctqc filter has not run on this run: run `ctqc filter` to add this arm"
        arms = [a for a in arms if a not in skipped]
        if not arms:
            raise UserError(f"arm(s) {', '.join(skipped)} need the filter's output: run `ctqc filter` first, or choose other arms with --arm")
    if not arms:  # e.g. only strategy arms whose strategy has not run
        raise UserError(f"no arm left to train: {'; '.join(f'{a}: {why}' for a, why in skipped.items())}")
    if cfg.classifier.pretrained:
        check_pretrained_available(cfg.classifier.arch)  # fail before any training starts
    keys = class_keys(cfg)
    folds, seed_list = run.splits.folds, list(range(seeds))
    folder, units_dir = run.layout.compare, run.layout.compare_units

    cores = available_cores()
    n_units = len(arms) * len(folds) * len(seed_list)
    parallel, threads = split_cores(jobs, cores)  # threads follow the requested parallelism, so a resumed unit gives the same numbers
    world = ddp.init(ddp.local_device(resolve_device(cfg.device)))
    if world.enabled:  # under torchrun every training is data-parallel over the ranks, one after another
        parallel, threads = 1, max(1, affinity_cores() // world.local_world_size)  # not OMP_NUM_THREADS, which torchrun sets to 1
    print_ = console.print if console is not None else (lambda *a, **k: None)
    if jobs > cores:
        print_(f"[yellow]note:[/] --jobs {jobs} > {cores} CPU cores: running {parallel} at a time to avoid oversubscription")
    for arm, why in skipped.items():
        print_(f"[yellow]skipped[/] {arm}: {why}")

    cache: dict[int, FoldData] = {}

    def job(fold: int, arm: str, seed: int) -> TrainingJob:
        """Built when needed (units come fold by fold, so one fold's images are held at a time)."""
        if fold not in cache:
            cache.clear()
            cache[fold] = fold_data(fold)
        return make_job(cfg, cache[fold], arm, seed, keys, units_dir, threads)

    records: dict[str, dict] = {}
    trained = reused = 0
    start = time.perf_counter()
    with run.stage("compare") if world.is_main else contextlib.nullcontext([]) as outputs:
        pending, first_of, same_as = [], {}, {}  # same_as: a pending unit → the unit that trains the identical model
        for fold in folds:
            for arm in arms:
                for seed in seed_list:
                    j = job(fold, arm, seed)
                    done = load_unit(j.out, j.signature)
                    if done is not None:
                        records[j.key] = done
                        reused += 1
                        first_of.setdefault(j.training, j.key)
                    elif j.training in first_of:  # e.g. original+filtered with nothing kept: the original arm's training
                        same_as[(fold, arm, seed)] = first_of[j.training]
                    else:
                        first_of[j.training] = j.key
                        pending.append((fold, arm, seed))
        pending = ddp.broadcast_object(pending)  # rank 0's view of what is left
        if reused:
            print_(f"{reused} of {n_units} trainings already complete (compare/units/); {len(pending)} to go")
        workers = max(1, min(parallel, len(pending)))
        jobs_iter = (job(*item) for item in pending)
        for record in execute(jobs_iter, len(pending), workers, threads, progress and console is not None, console, n_units, reused):
            records[record["key"]] = record
            trained += 1
        for item, key in same_as.items():  # identical trainings are trained once and filed under every arm that asked
            records[unit_key(item[1], item[0], item[2])] = same_training_record(records[key], job(*item))
        if same_as:
            print_(f"{len(same_as)} training(s) identical to another arm's (same images, seed and settings): trained once, recorded under both arms")
        results = _results_table(records)
        summary = summarise(results, cfg, arms, skipped, seed_list, folds, {k: r["predictions"] for k, r in records.items()})
        summary["dose_response"] = dose_points
        summary["wall_seconds"] = round(time.perf_counter() - start, 1)
        summary["processes"], summary["threads_per_process"] = workers, threads
        summary["torchrun_processes"] = world.world_size
        table = format_table(summary, cfg)
        if world.is_main:
            atomic.write_text(folder / "results.csv", results.to_csv(index=False))
            _write_predictions(folder, [records[k] for k in sorted(records)])
            write_artefact(run.layout.compare_summary, CompareSummary.model_validate(atomic.jsonable(summary)))
            atomic.write_text(folder / "table.txt", table)
        outputs += ["compare/results.csv", "compare/summary.json", "compare/table.txt", "compare/predictions"]
    return CompareResult(folder=folder, results=results, summary=summary, table=table, trained=trained, reused=reused, config=cfg)


def _checked_ratios(cfg: Config, ratios: list[float]) -> list[float]:
    """``ratios`` validated as ``compare.synthetic_ratios`` is (sorted, unique, each in (0, 20])."""
    try:
        return CompareConfig.model_validate({**cfg.compare.model_dump(), "synthetic_ratios": ratios}).synthetic_ratios
    except ValidationError as exc:
        raise UserError(f"--ratio: {exc.errors()[0]['msg'].removeprefix('Value error, ')}") from None


def _check_arguments(seeds: int | None, jobs: int | None, arms: list[str] | None, ratio_arms: list[str]) -> None:
    if seeds is not None and seeds < 1:
        raise UserError(f"--seeds must be at least 1 (got {seeds})")
    if jobs is not None and jobs < 0:
        raise UserError(f"--jobs must be at least 1, or 0 for one per CPU core (got {jobs})")
    unknown = [a for a in (arms or []) if a not in ARMS and a not in ratio_arms and arm_strategy(a) is None]
    if unknown or arms == []:
        choices = ", ".join([*ARMS, *ratio_arms, strategy_arm("original+filtered", "<strategy>"), strategy_arm("original+random-subset", "<strategy>")])
        raise UserError(f"unknown arm {unknown[0]!r}: choose from {choices}" if unknown else "no arms to compare: name at least one with --arm")


def filtered_strategies(run: Run) -> list[str]:
    """The filter strategies besides the run's default whose decisions ``filter/<strategy>/kept.csv`` holds."""
    if run.stage_status("filter") != "done":
        return []
    default = run.config.qc.default_strategy
    return [s for s in FILTER_STRATEGIES if s != default and run.layout.strategy_kept(s).is_file()]


def _strategy_arms_not_filtered(arms: list[str], ran: list[str], default: str) -> dict[str, str]:
    """Strategy arms asked for (``--arm``) whose strategy did not run, or that are the default strategy's plain arm."""
    skipped = {}
    for arm in arms:
        base, strategy = arm_strategy(arm) or (None, None)
        if strategy == default:
            skipped[arm] = f"{strategy} is the default strategy: its arm is {base}"
        elif strategy is not None and strategy not in ran:
            skipped[arm] = f"strategy {strategy} has not run: run `ctqc filter --strategy {strategy}` to add this arm"
    return skipped


def _fold_loader(run: Run, extension: dict[tuple[int, int], int]) -> Callable[[int], FoldData]:
    """A function giving each fold's :class:`FoldData` (real images from the run's data, its GAN pool, the filter's
    choice, and ``extension[(fold, key)]`` images per class drawn from the generator beyond the pool)."""
    cfg, data, splits = run.config, run.data(), run.splits
    index = run.pool()
    kept_table = run.kept() if run.stage_status("filter") == "done" else None
    strategy_tables = {strategy: run.kept(strategy) for strategy in filtered_strategies(run)}
    keys = class_keys(cfg)

    def fold_data(fold: int) -> FoldData:
        dev = splits.development(data, fold)
        pool = index[index["fold"] == fold].reset_index(drop=True)
        if pool.empty:
            raise UserError(f"samples/index.csv has no synthetic images for fold {fold}: run `ctqc train --resume` (or `ctqc generate`)")
        bad = sorted(set(pool["label"]) - set(keys))
        if bad:
            raise UserError(f"samples/index.csv: label {bad[0]} is not a configured class ({keys})")
        pool_images = run.pool_images(pool["file"])
        if pool_images.shape[-1] != data.images.shape[-1]:
            raise UserError(f"synthetic images are {pool_images.shape[-1]} px but the data are {data.images.shape[-1]} px: run `ctqc generate` again")
        kept = None if kept_table is None else frozenset(kept_table.loc[kept_table["fold"] == fold, "sample_id"])
        strategy_kept = {strategy: frozenset(t.loc[t["fold"] == fold, "sample_id"]) for strategy, t in strategy_tables.items()}
        extra = {key: dose.extension_images(run, fold, key, n) for (f, key), n in extension.items() if f == fold}
        return FoldData(fold, dev.train, dev.val, splits.held_out_test(data, fold), pool, pool_images, kept, extra, strategy_kept)

    return fold_data


def _results_table(records: dict[str, dict]) -> pd.DataFrame:
    """results.csv: the records' rows in arm, fold, seed order, the fixed columns first."""
    # units written before the flag existed are judged from their test predictions alone
    rows = [{**r["row"], "degenerate": r["row"].get("degenerate", is_degenerate(r["predictions"]["pred"]))} for r in records.values()]
    results = pd.DataFrame(sorted(rows, key=lambda row: (arm_order(row["arm"]), row["fold"], row["seed"])))
    results = results[RESULT_COLUMNS + [c for c in results.columns if c not in RESULT_COLUMNS]]
    for metric in METRICS:  # NaN is stored as null in the unit files
        results[metric] = pd.to_numeric(results[metric], errors="coerce").astype(float)
    results["degenerate"] = results["degenerate"].astype(bool)
    return results


def _write_predictions(folder: Path, records: list[dict]) -> None:
    """``compare/predictions/<unit>.csv`` (per test image: id, label, pred, prob), swapped in as a whole."""
    staging = folder / ".predictions.new"
    shutil.rmtree(staging, ignore_errors=True)
    with atomic.atomic_dir(staging) as tmp:
        for record in records:
            pd.DataFrame(record["predictions"]).to_csv(tmp / f"{record['key']}.csv", index=False)
    atomic.replace_dir(staging, folder / "predictions")
