"""The compare stage: does synthetic data help the downstream classifier? (Table 1 of the paper, with CIs.)

Arms — each trained on its own training set and evaluated on the **same real
validation and test images** of each fold:

1. ``original``               the fold's real training images;
2. ``original+classical``     the same with classical augmentation;
3. ``synthetic-only``         the fold's GAN pool only;
4. ``original+synthetic``     real + the whole pool (unfiltered);
5. ``original+filtered``      real + the images ``ctqc filter`` kept (skipped when the filter has not run);
6. ``original+random-subset`` real + a random subset of the pool with the filtered set's per-class sizes
                              (a control: does the filter beat chance selection?).

Synthetic images of fold f come only from fold f's GAN (trained on fold f's
training part). Validation images select the epoch; test images come from
:meth:`~ctqc.splits.Splits.held_out_test` and are used only to evaluate.

Every (arm, fold, seed) is a unit written atomically to
``compare/units/<arm>__f<fold>__s<seed>.json`` with a signature of its
inputs, so a re-run after an interruption skips completed units (and redoes a
unit whose inputs changed, e.g. after re-filtering). A seed fixes the initial
weights, dropout and batch order, and is shared by all arms of a fold
(common random numbers, so paired differences compare like with like).

Units run in ``jobs`` spawned processes with ``cores // jobs`` torch threads
each (never more threads than cores). Outputs: ``compare/results.csv`` (one
row per unit), ``compare/predictions/<unit>.csv``, ``compare/summary.json``
(per-arm mean and 95 % t-interval over folds × seeds, paired comparisons with
a Wilcoxon or paired-bootstrap test, the paper's figures) and
``compare/table.txt`` (the paper's Table 1 layout).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ctqc import atomic
from ctqc import distributed as ddp
from ctqc.config import ARMS, ClassifierConfig, Config
from ctqc.errors import UserError
from ctqc.run import Run

UNIT_FORMAT = 1
METRICS = ("accuracy", "sensitivity", "specificity", "balanced_accuracy", "roc_auc")
RESULT_COLUMNS = [
    "arm", "fold", "seed", "n_train_real", "n_train_synthetic", "n_val", "n_test",
    "accuracy", "sensitivity", "specificity", "balanced_accuracy", "roc_auc",
    "best_epoch", "epochs_run", "seconds",
]  # fmt: skip
#: Table 1 of the paper (fractions), keyed by our arm names.
PAPER_TABLE1 = {
    "original": {"label": "ResNet-50 (original)", "accuracy": 0.7651, "sensitivity": 0.7237, "specificity": 0.8304},
    "synthetic-only": {"label": "ResNet-50 (only DA)", "accuracy": 0.6061, "sensitivity": 0.9315, "specificity": 0.6848},
    "original+synthetic": {"label": "ResNet-50 (original + DA)", "accuracy": 0.7865, "sensitivity": 0.7314, "specificity": 0.8660},
}
PAPER_NOTE = (
    "paper, 'only DA' row: its accuracy (60.61 %) lies outside [specificity, sensitivity] = [68.48 %, 93.15 %], "
    "which no class mix allows; shown as printed"
)
#: Comparisons beyond "every arm vs original": does filtering beat no filtering, and beat a random subset?
EXTRA_COMPARISONS = (("original+filtered", "original+synthetic"), ("original+filtered", "original+random-subset"))
NEEDS_FILTER = ("original+filtered", "original+random-subset")


@dataclass(frozen=True)
class CompareResult:
    folder: Path
    results: object  # pandas.DataFrame, one row per arm × fold × seed
    summary: dict
    table: str
    trained: int  # units trained by this call
    reused: int  # units found complete from an earlier call
    config: Config


@dataclass(frozen=True)
class FoldData:
    """What one fold offers the arms. ``test`` is used only for evaluation."""

    fold: int
    train: object  # LabelledImages: real training images
    val: object  # LabelledImages: real validation images
    test: object  # LabelledImages: real held-out test images
    pool: object  # pandas.DataFrame: this fold's rows of samples/index.csv
    pool_images: object  # torch.Tensor N×1×S×S, aligned with ``pool``
    kept: frozenset[str] | None  # sample_ids kept by ctqc filter; None when the filter has not run


@dataclass(frozen=True)
class ArmData:
    """The training set of one arm in one fold (and seed, for the random subset)."""

    images: object  # torch.Tensor N×1×S×S
    targets: np.ndarray  # class indices 0..K-1
    ids: tuple[str, ...]  # real image ids and synthetic sample_ids
    n_real: int
    n_synthetic: int
    augment: bool


# ----------------------------------------------------------------------------- arms


def class_keys(cfg: Config) -> list[int]:
    return sorted(cfg.data.classes)


def training_seed(base_seed: int, fold: int, seed: int) -> int:
    """The torch seed of (fold, seed): shared by all arms (common random numbers)."""
    return int(np.random.SeedSequence([base_seed, fold, seed, 0xC1A5]).generate_state(1)[0] & 0x7FFFFFFF)


def build_arm(arm: str, fold_data: FoldData, seed: int, keys: list[int], base_seed: int = 0, augment_all: bool = False) -> ArmData:
    """The training set of ``arm`` for ``fold_data`` and ``seed`` (see the module docstring)."""
    import torch

    real, pool = fold_data.train, fold_data.pool
    real_targets = np.searchsorted(np.array(keys), real.labels).astype(np.int64)
    use_real = arm != "synthetic-only"
    if arm in ("original", "original+classical"):
        chosen = np.zeros(len(pool), dtype=bool)
    elif arm in ("synthetic-only", "original+synthetic"):
        chosen = np.ones(len(pool), dtype=bool)
    elif arm in NEEDS_FILTER:
        if fold_data.kept is None:
            raise UserError(f"arm {arm} needs the filter's output: run `ctqc filter` first")
        kept = pool["sample_id"].isin(fold_data.kept).to_numpy()
        if arm == "original+filtered":
            chosen = kept
        else:  # same per-class sizes as the filtered set, drawn at random from the whole pool
            rng = np.random.default_rng([base_seed, fold_data.fold, seed, 6])
            chosen = np.zeros(len(pool), dtype=bool)
            labels = pool["label"].to_numpy()
            for key in keys:
                members = np.flatnonzero(labels == key)
                n = int((kept & (labels == key)).sum())
                chosen[rng.choice(members, size=n, replace=False)] = True
    else:
        raise UserError(f"unknown arm {arm!r}; choose from {', '.join(ARMS)}")
    index = np.flatnonzero(chosen)
    syn_images = fold_data.pool_images[torch.from_numpy(index)]
    syn_targets = np.searchsorted(np.array(keys), pool["label"].to_numpy()[index]).astype(np.int64)
    syn_ids = tuple(str(s) for s in pool["sample_id"].to_numpy()[index])
    if use_real:
        images = torch.cat([real.images, syn_images]) if len(index) else real.images
        targets = np.concatenate([real_targets, syn_targets])
        ids = tuple(real.ids) + syn_ids
    else:
        images, targets, ids = syn_images, syn_targets, syn_ids
    return ArmData(
        images=images,
        targets=targets,
        ids=ids,
        n_real=len(real) if use_real else 0,
        n_synthetic=len(index),
        augment=augment_all or arm == "original+classical",
    )


# ----------------------------------------------------------------------------- the stage


def compare(
    run: Run,
    *,
    seeds: int | None = None,
    jobs: int | None = None,
    arms: list[str] | None = None,
    progress: bool = True,
    console=None,
) -> CompareResult:
    """Train and evaluate every arm × fold × seed of ``run``; write ``compare/``. See the module docstring."""
    import pandas as pd

    if seeds is not None and seeds < 1:
        raise UserError(f"--seeds must be at least 1 (got {seeds})")
    if jobs is not None and jobs < 0:
        raise UserError(f"--jobs must be at least 1, or 0 for one per CPU core (got {jobs})")
    unknown = [a for a in (arms or []) if a not in ARMS]
    if unknown or arms == []:
        raise UserError(f"unknown arm {unknown[0]!r}: choose from {', '.join(ARMS)}" if unknown else "no arms to compare: name at least one with --arm")
    run.require_stage("generate", "ctqc train")
    cfg, data, splits = run.config, run.data(), run.splits
    seeds = cfg.compare.seeds if seeds is None else seeds
    jobs = cfg.compare.jobs if jobs is None else jobs
    arms = list(cfg.compare.arms if arms is None else arms)
    arms = [a for a in ARMS if a in arms]  # canonical order, no duplicates

    index = run.pool()
    skipped: dict[str, str] = {}
    kept_table = None
    if run.stage_status("filter") == "done":
        kept_table = run.kept()
    else:
        for arm in NEEDS_FILTER:
            if arm in arms:
                skipped[arm] = "ctqc filter has not run on this run: run `ctqc filter` to add this arm"
        arms = [a for a in arms if a not in skipped]
        if not arms:
            raise UserError(f"arm(s) {', '.join(skipped)} need the filter's output: run `ctqc filter` first, or choose other arms with --arm")

    if cfg.classifier.pretrained:
        from classify.models import check_pretrained_available

        check_pretrained_available(cfg.classifier.arch)  # fail before any training starts
    keys = class_keys(cfg)
    folds = splits.folds
    seed_list = list(range(seeds))
    folder = run.layout.compare
    units_dir = run.layout.compare_units

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
        return FoldData(fold, dev.train, dev.val, splits.held_out_test(data, fold), pool, pool_images, kept)

    cores = available_cores()
    n_units = len(arms) * len(folds) * len(seed_list)
    # Threads follow the requested parallelism, not the units left, so that a resumed
    # unit runs with the same thread count (and gives the same numbers) as in one go.
    parallel = min(jobs or cores, cores)
    threads = max(1, cores // parallel)
    from ctqc.device import resolve_device

    world = ddp.init(ddp.local_device(resolve_device(cfg.device)))
    if world.enabled:  # under torchrun every training is data-parallel over the ranks, one after another
        parallel, threads = 1, max(1, cores // world.local_world_size)
    print_ = console.print if console is not None else (lambda *a, **k: None)
    if jobs > cores:
        print_(f"[yellow]note:[/] --jobs {jobs} > {cores} CPU cores: running {parallel} at a time to avoid oversubscription")
    for arm, why in skipped.items():
        print_(f"[yellow]skipped[/] {arm}: {why}")

    cache: dict[int, FoldData] = {}

    def payload(fold: int, arm: str, seed: int) -> dict:
        """Built when needed (units come fold by fold, so one fold's images are held at a time)."""
        if fold not in cache:
            cache.clear()
            cache[fold] = fold_data(fold)
        return _unit_payload(cfg, cache[fold], arm, seed, keys, units_dir, threads)

    records: dict[str, dict] = {}
    trained = reused = 0
    start = time.perf_counter()
    with run.stage("compare") if world.is_main else contextlib.nullcontext([]) as outputs:
        pending = []
        for fold in folds:
            for arm in arms:
                for seed in seed_list:
                    p = payload(fold, arm, seed)
                    done = _load_unit(units_dir / f"{p['key']}.json", p["signature"])
                    if done is not None:
                        records[p["key"]] = done
                        reused += 1
                    else:
                        pending.append((fold, arm, seed))
        pending = ddp.broadcast_object(pending)  # rank 0's view of what is left
        if reused:
            print_(f"{reused} of {n_units} trainings already complete (compare/units/); {len(pending)} to go")
        workers = max(1, min(parallel, len(pending)))
        jobs_iter = (payload(*item) for item in pending)
        for record in _execute(jobs_iter, len(pending), workers, threads, progress and console is not None, console, n_units, reused):
            records[record["key"]] = record
            trained += 1
        results = pd.DataFrame([records[k]["row"] for k in sorted(records, key=lambda k: _order(records[k]["row"]))])
        results = results[RESULT_COLUMNS + [c for c in results.columns if c not in RESULT_COLUMNS]]
        for metric in METRICS:  # NaN is stored as null in the unit files
            results[metric] = pd.to_numeric(results[metric], errors="coerce").astype(float)
        summary = summarise(results, cfg, arms, skipped, seed_list, folds)
        summary["wall_seconds"] = round(time.perf_counter() - start, 1)
        summary["processes"], summary["threads_per_process"] = workers, threads
        summary["torchrun_processes"] = world.world_size
        table = format_table(summary, cfg)
        if world.is_main:
            atomic.write_text(folder / "results.csv", results.to_csv(index=False))
            _write_predictions(folder, [records[k] for k in sorted(records)])
            atomic.write_json(folder / "summary.json", _json_safe(summary))
            atomic.write_text(folder / "table.txt", table)
        outputs += ["compare/results.csv", "compare/summary.json", "compare/table.txt", "compare/predictions"]
    return CompareResult(folder=folder, results=results, summary=summary, table=table, trained=trained, reused=reused, config=cfg)


def available_cores() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _order(row: dict) -> tuple:
    return (ARMS.index(row["arm"]), row["fold"], row["seed"])


def unit_key(arm: str, fold: int, seed: int) -> str:
    return f"{arm}__f{fold}__s{seed}"


def _unit_payload(cfg: Config, fd: FoldData, arm: str, seed: int, keys: list[int], units_dir: Path, threads: int) -> dict:
    """Everything one training needs, as plain picklable data (sent to a worker process)."""
    arm_data = build_arm(arm, fd, seed, keys, cfg.seed, cfg.classifier.augment)
    leaked = set(arm_data.ids) & (set(fd.val.ids) | set(fd.test.ids))
    if leaked:  # cannot happen by construction; refuse loudly if it ever does
        raise RuntimeError(f"arm {arm}, fold {fd.fold}: validation/test image {sorted(leaked)[0]} in the training set")
    train_x = arm_data.images.float().numpy()
    val_y = np.searchsorted(np.array(keys), fd.val.labels).astype(np.int64)
    test_y = np.searchsorted(np.array(keys), fd.test.labels).astype(np.int64)
    torch_seed = training_seed(cfg.seed, fd.fold, seed)
    clf = cfg.classifier.model_dump(mode="json")
    digest = hashlib.sha256()
    digest.update(json.dumps([UNIT_FORMAT, arm, fd.fold, seed, torch_seed, arm_data.augment, clf, cfg.device, list(fd.val.ids), list(fd.test.ids)]).encode())
    for arr in (train_x, arm_data.targets, fd.val.images.numpy(), fd.test.images.numpy()):
        digest.update(np.ascontiguousarray(arr).tobytes())
    key = unit_key(arm, fd.fold, seed)
    return {
        "key": key,
        "arm": arm,
        "fold": int(fd.fold),
        "seed": int(seed),
        "torch_seed": torch_seed,
        "augment": arm_data.augment,
        "train_ids": list(arm_data.ids),
        "train_x": train_x,
        "train_y": arm_data.targets,
        "n_real": arm_data.n_real,
        "n_synthetic": arm_data.n_synthetic,
        "val_x": fd.val.images.numpy(),
        "val_y": val_y,
        "test_x": fd.test.images.numpy(),
        "test_y": test_y,
        "test_ids": list(fd.test.ids),
        "class_keys": keys,
        "class_names": [fd.train.class_names[k] for k in keys],
        "classifier": clf,
        "device": cfg.device,
        "signature": digest.hexdigest()[:24],
        "out": str(units_dir / f"{key}.json"),
        "threads": threads,
    }


def _load_unit(path: Path, signature: str) -> dict | None:
    """A completed unit's record, or None when absent, unreadable or made from other inputs."""
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if record.get("format") != UNIT_FORMAT or record.get("signature") != signature:
        return None
    return record


def train_unit(payload: dict) -> dict:
    """Train and evaluate one (arm, fold, seed); write its record atomically and return it.

    Runs in a worker process (or in-process with one job).
    """
    import torch

    from classify.metrics import classification_metrics
    from classify.training import fit_classifier, predict_proba

    torch.set_num_threads(payload["threads"])
    start = time.perf_counter()
    cfg = ClassifierConfig(**payload["classifier"])
    n_classes = len(payload["class_keys"])
    fit = fit_classifier(
        torch.from_numpy(payload["train_x"]),
        torch.from_numpy(payload["train_y"]),
        torch.from_numpy(payload["val_x"]),
        torch.from_numpy(payload["val_y"]),
        cfg,
        n_classes=n_classes,
        seed=payload["torch_seed"],
        device=payload["device"],
        augment=payload["augment"],
        on_epoch=payload.get("on_epoch"),
    )
    probs = predict_proba(fit.model, torch.from_numpy(payload["test_x"]), precision=cfg.precision)
    metrics = classification_metrics(payload["test_y"], probs)
    keys = np.array(payload["class_keys"])
    row = {
        "arm": payload["arm"],
        "fold": payload["fold"],
        "seed": payload["seed"],
        "n_train_real": payload["n_real"],
        "n_train_synthetic": payload["n_synthetic"],
        "n_val": int(len(payload["val_y"])),
        "n_test": int(len(payload["test_y"])),
        **{m: metrics[m] for m in METRICS},
        "best_epoch": fit.best_epoch,
        "epochs_run": fit.epochs_run,
        "seconds": round(time.perf_counter() - start, 2),
        **{f"recall_{name}": r for name, r in zip(payload["class_names"], metrics["per_class_recall"])},
        "augment": fit.augment,
        "balanced_sampling": fit.balanced,
        "bf16": fit.bf16,
        "train_images_per_second": round(fit.images_per_second, 1),
        "threads": payload["threads"],
        "torch_seed": payload["torch_seed"],
    }
    pred = probs.argmax(axis=1)
    predictions = {
        "id": payload["test_ids"],
        "label": keys[payload["test_y"]].tolist(),
        "pred": keys[pred].tolist(),
        "prob": (probs[:, 1] if n_classes == 2 else probs.max(axis=1)).tolist(),
    }
    if n_classes > 2:
        predictions.update({f"prob_{k}": probs[:, i].tolist() for i, k in enumerate(keys.tolist())})
    record = {
        "format": UNIT_FORMAT,
        "key": payload["key"],
        "signature": payload["signature"],
        "row": row,
        "confusion_matrix": metrics["confusion_matrix"],
        "predictions": predictions,
        "train_ids": payload["train_ids"],
        "history": fit.history,
    }
    if ddp.is_main():  # under torchrun rank 0 alone writes
        atomic.write_json(payload["out"], _json_safe(record))
    return record


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _execute(pending: Iterator[dict], n_pending: int, workers: int, threads: int, progress: bool, console, total: int, already: int) -> Iterator[dict]:
    """Run the ``n_pending`` payloads of ``pending``, ``workers`` at a time; yield each record as it completes."""
    if not n_pending:
        return
    bar = task = None
    if progress:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), TimeRemainingColumn(), console=console)
        task = bar.add_task(f"compare ({workers} process{'es' if workers > 1 else ''})", total=total, completed=already)
    with bar if bar is not None else contextlib.nullcontext():
        if workers == 1:
            import torch

            before = torch.get_num_threads()
            try:
                for payload in pending:
                    if bar is not None:
                        label = f"{payload['arm']} fold {payload['fold']} seed {payload['seed']}"
                        payload = dict(payload, on_epoch=lambda r, label=label: bar.update(task, description=f"{label}: epoch {r['epoch']}, val loss {r['val_loss']:.3f}"))
                    record = train_unit(payload)
                    if bar is not None:
                        bar.advance(task)
                    yield record
            finally:
                torch.set_num_threads(before)
            return
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

        queue = pending
        with ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"), initializer=_init_worker, initargs=(threads,)) as pool:
            running = {}
            try:
                for payload in queue:
                    running[pool.submit(train_unit, payload)] = payload["key"]
                    if len(running) >= workers + 1:
                        break
                while running:
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        key = running.pop(future)
                        record = future.result()
                        if bar is not None:
                            bar.update(task, advance=1, description=f"compare ({workers} processes): {key} done")
                        yield record
                        nxt = next(queue, None)
                        if nxt is not None:
                            running[pool.submit(train_unit, nxt)] = nxt["key"]
            except BaseException:
                for future in running:
                    future.cancel()
                pool.shutdown(wait=True, cancel_futures=True)
                raise


def _write_predictions(folder: Path, records: list[dict]) -> None:
    import pandas as pd

    staging = folder / ".predictions.new"
    shutil.rmtree(staging, ignore_errors=True)
    with atomic.atomic_dir(staging) as tmp:
        for record in records:
            pd.DataFrame(record["predictions"]).to_csv(tmp / f"{record['key']}.csv", index=False)
    atomic.replace_dir(staging, folder / "predictions")


# ----------------------------------------------------------------------------- statistics and the table


def comparisons_for(arms: list[str]) -> list[tuple[str, str]]:
    """(arm, reference) pairs: every arm vs original, and the filtered arm vs its two controls."""
    pairs = [(arm, "original") for arm in arms if arm != "original" and "original" in arms]
    pairs += [(a, b) for a, b in EXTRA_COMPARISONS if a in arms and b in arms]
    return pairs


def summarise(results, cfg: Config, arms: list[str], skipped: dict, seeds: list[int], folds: list[int]) -> dict:
    """summary.json's content from the results table (see the module docstring)."""
    from classify.stats import mean_ci, paired_difference

    arm_stats = {}
    for arm in arms:
        rows = results[results["arm"] == arm]
        arm_stats[arm] = {m: mean_ci(rows[m].to_numpy()) for m in METRICS}
    comparisons = []
    for arm, ref in comparisons_for(arms):
        a = results[results["arm"] == arm].set_index(["fold", "seed"])
        b = results[results["arm"] == ref].set_index(["fold", "seed"])
        common = a.index.intersection(b.index).sort_values()
        for metric in METRICS:
            test = paired_difference(
                a.loc[common, metric].to_numpy(), b.loc[common, metric].to_numpy(), cfg.compare.test, n_bootstrap=cfg.compare.n_bootstrap, seed=cfg.seed
            )
            comparisons.append({"arm": arm, "reference": ref, "metric": metric, **test})
    notes = [PAPER_NOTE]
    n_runs = len(folds) * len(seeds)
    if n_runs == 1:
        notes.append("one fold × one seed: no confidence intervals or tests possible; use --seeds 3 or more")
    return {
        "metrics": list(METRICS),
        "arms": arm_stats,
        "comparisons": comparisons,
        "skipped": skipped,
        "paper": {arm: dict(v) for arm, v in PAPER_TABLE1.items()},
        "seeds": seeds,
        "folds": folds,
        "config": {"classifier": cfg.classifier.model_dump(mode="json"), "compare": cfg.compare.model_dump(mode="json")},
        "ci": "95 % two-sided t-interval of the mean over folds × seeds",
        "paired_by": ["fold", "seed"],
        "test": cfg.compare.test,
        "positive_class": cfg.data.classes[class_keys(cfg)[-1]] if len(cfg.data.classes) == 2 else None,
        "evaluated_on": "each fold's real held-out test images; epochs chosen on its real validation images",
        "notes": notes,
    }


def arm_label(arm: str, cfg: Config) -> str:
    arch = {"resnet50": "ResNet-50", "resnet18": "ResNet-18"}[cfg.classifier.arch]
    return f"{arch} ({arm})"


def _fmt_ci(stat: dict, scale: float = 100.0) -> str:
    mean = stat["mean"]
    if not math.isfinite(mean):
        return "n/a"
    if not math.isfinite(stat["ci_low"]):
        return f"{mean * scale:.1f}"
    return f"{mean * scale:.1f} ± {(stat['ci_high'] - mean) * scale:.1f}"


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
            ci = "" if not math.isfinite(c["ci_low"]) else f" [{c['ci_low'] * 100:+.1f}, {c['ci_high'] * 100:+.1f}]"
            p = "n/a" if not math.isfinite(c["p_value"]) else f"{c['p_value']:.3g}"
            lines.append(f"  {c['arm']:>24s} − {c['reference']:<24s} {c['mean_diff'] * 100:+6.1f}{ci}  p = {p}  ({c['n_pairs']} pairs)")
        small = {c.get("note") for c in comps if c.get("note")}
        lines += [f"  note: {n}" for n in sorted(small)]
    lines += ["", *(f"note: {n}" for n in summary["notes"]), "all metrics and comparisons: summary.json; per-training rows: results.csv"]
    return "\n".join(lines) + "\n"


def print_table(summary: dict, cfg: Config, console) -> None:
    """The same table as a rich table on the console."""
    from rich.table import Table

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
        ci = "" if not math.isfinite(c["ci_low"]) else f" [{c['ci_low'] * 100:+.1f}, {c['ci_high'] * 100:+.1f}]"
        p = "n/a" if not math.isfinite(c["p_value"]) else f"{c['p_value']:.3g}"
        console.print(f"  Δ balanced accuracy {c['arm']} − {c['reference']}: {c['mean_diff'] * 100:+.1f} pp{ci}, p = {p} ({c['test']}, {c['n_pairs']} pairs)")
    notes = {c["note"] for c in summary["comparisons"] if c.get("note")}
    for note in sorted(notes):
        console.print(f"  note: {note}")
    for arm, why in summary["skipped"].items():
        console.print(f"  [yellow]skipped[/] {arm}: {why}")


def _json_safe(obj):
    """NaN/inf → None (valid JSON), numpy scalars → Python numbers."""
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj
