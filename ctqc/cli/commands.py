"""The ``ctqc`` commands: thin wrappers over importable stage functions.

Heavy modules (torch, pandas, sklearn) and the stages are imported inside the
commands so that ``ctqc --help`` stays fast.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Optional

import typer

from ctqc.cli.options import (
    ConfigOpt,
    DataOpt,
    OutOpt,
    RealOpt,
    RunOpt,
    SetOpt,
    SyntheticOpt,
    _byo_config,
    _console,
    _load_config,
    _numbers,
    _single_process,
    _State,
    app,
    data_app,
)
from ctqc.cli.show import _print_filter, _print_inspection, _print_qc, _print_run_summary, glance_lines
from ctqc.errors import UserError


@app.command("demo-data")
def demo_data(
    out: Annotated[Path, typer.Argument(help="Folder to create (must not exist or be empty).")],
    n_per_class: Annotated[int, typer.Option(min=3, help="Images per class.")] = 100,
    size: Annotated[int, typer.Option(min=16, max=1024, help="Rendered image size in px.")] = 256,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 0,
    difficulty: Annotated[float, typer.Option(min=0.0, max=1.0, help="0 = easy, 1 = very hard.")] = 0.5,
) -> None:
    """Write the built-in phantom head-CT dataset in the Kaggle layout (head_ct/*.png + labels.csv)."""
    from ctqc.demo_data import write_kaggle_layout
    from ctqc.phantoms import PhantomSpec

    spec = PhantomSpec(n_per_class=n_per_class, size=size, seed=seed, difficulty=difficulty)
    counts = write_kaggle_layout(out, spec)
    _console().print(f"wrote {sum(counts.values())} phantom slices ({', '.join(f'{n} {c}' for c, n in counts.items())}) at {size}×{size} px to {out}/head_ct/ with {out}/labels.csv")


@data_app.command("inspect")
def data_inspect(
    data: DataOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Counts per class, image sizes and modes, problems found, split sizes. Writes nothing."""
    from ctqc.data.inspect import inspect_data

    report = inspect_data(_load_config(config, data, set_))
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    _print_inspection(report)


@data_app.command("prepare")
def data_prepare(data: DataOpt = None, config: ConfigOpt = None, set_: SetOpt = None) -> None:
    """Check and split the data, and create a run directory (config.yaml, splits.csv, manifest.json)."""
    from ctqc.stages.prepare import prepare_run

    cfg = _load_config(config, data, set_)
    prepared = prepare_run(cfg)
    console = _console()
    sizes = prepared.splits.sizes(0)
    console.print(f"[bold]run[/] {prepared.run.path.resolve()}")
    console.print(f"  data: {prepared.data.source.location} — {len(prepared.data)} images, " + ", ".join(f"{n} {c}" for c, n in prepared.data.class_counts().items()))
    console.print(f"  fingerprint: {prepared.data.source.fingerprint}")
    console.print(f"  split ({cfg.split.scheme}, {len(prepared.splits.folds)} fold(s)): " + " / ".join(f"{sum(sizes[r].values())} {r}" for r in ("train", "val", "test")))
    for warning in prepared.data.source.warnings:
        console.print(f"  [yellow]warning:[/] {warning}")
    console.print("  wrote config.yaml, splits.csv, manifest.json")


@app.command("train")
def train_cmd(
    data: DataOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an existing run (--run, default runs/latest) from its last checkpoints.")] = False,
    run: RunOpt = None,
) -> None:
    """Create a run, split the data, train the GAN(s) on the training part only, and generate the synthetic pool."""
    from ctqc.pipeline import run_pipeline
    from ctqc.run import Run

    stages = ("train", "generate")
    if resume:
        if data is not None or config is not None or set_:
            raise UserError("--resume continues a run with its saved config; drop --data/--config/--set")
        target = Run.open(run)
        target.data()  # the data must still be the run's (fingerprint), even when nothing is left to train
        result = run_pipeline(run=target, stages=stages, progress=not _State.quiet, say=lambda _: None)
    else:
        if run is not None:
            raise UserError("--run is only used with --resume; a new training creates its own run")
        result = run_pipeline(_load_config(config, data, set_), new=True, stages=stages, progress=not _State.quiet, say=lambda _: None)
    _print_run_summary(result.run)


@app.command("generate")
def generate_cmd(
    run: RunOpt = None,
    n: Annotated[Optional[int], typer.Option("--n", min=1, help="Images per fold (default: gan.n_synthetic).")] = None,
    per_class: Annotated[bool, typer.Option("--per-class", help="Make --n images for every class instead of --n in all.")] = False,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Sampling seed (default: the run's seed).")] = None,
) -> None:
    """(Re)generate the synthetic pool of a trained run with the EMA generators."""
    _single_process("generate")
    from ctqc.run import Run
    from ctqc.stages.generate import generate

    target = Run.open(run)
    folder = generate(target, n=n, per_class=per_class, seed=seed)
    _console().print(f"wrote {len(list(folder.glob('syn_*.png')))} synthetic images and index.csv to {folder}")


@app.command("filter")
def filter_cmd(
    run: RunOpt = None,
    c2st_threshold: Annotated[
        Optional[float],
        typer.Option("--c2st-threshold", help="Drop images whose calibrated, out-of-fold, equal-prior p(synthetic) is above this (default: qc.c2st_threshold, 0.6)."),
    ] = None,
    max_real_rejection: Annotated[
        Optional[float],
        typer.Option(
            "--max-real-rejection",
            help="Instead of --c2st-threshold: per fold and class, the split-conformal threshold over the held-out real images' stored scores, so that at most about this share of genuine images is rejected (e.g. 0.1).",
        ),
    ] = None,
    strategy: Annotated[
        Optional[list[str]],
        typer.Option(
            "--strategy",
            help="Also run these selection strategies (realism, label, both; repeatable or comma-separated) beside qc.filter_strategies, whose first is the default (filter/kept.csv); each writes filter/<strategy>/.",
        ),
    ] = None,
    label_threshold: Annotated[
        Optional[float],
        typer.Option("--label-threshold", help="Strategies label/both: keep images the label classifier assigns to their generated class with p ≥ this (default: qc.label_threshold, 0.5)."),
    ] = None,
    no_memorisation: Annotated[bool, typer.Option("--no-memorisation", help="Skip the copy check.")] = False,
    real: RealOpt = None,
    synthetic: SyntheticOpt = None,
    out: OutOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Split the synthetic pool into kept and rejected over its per-image scores (C2ST, label classifier, copy check), scoring it first if needed."""
    _single_process("filter")
    from ctqc.stages.filter import FilterOptions, filter_folders, run_filter, settings

    cfg = _byo_config(real, synthetic, out, run, config, set_)
    memorisation = False if no_memorisation else None
    strategies = tuple(a.strip() for item in strategy for a in item.split(",") if a.strip()) if strategy else None
    options = FilterOptions(threshold=c2st_threshold, memorisation=memorisation, max_real_rejection=max_real_rejection, strategies=strategies, label_threshold=label_threshold)
    if cfg is None:
        needs_label = lambda r: set(settings(r.config.qc, options)[0].strategies) != {"realism"}  # label/both read label_prob
        target = _scored_run(run, lambda r: settings(r.config.qc, options), stale=lambda r: needs_label(r) and _scored_without_label_prob(r))
        summary = run_filter(target, options)
        where = target.path / "filter"
    else:
        summary = filter_folders(real, synthetic, out, cfg, options)
        where = out
    _print_filter(summary, where)


@app.command("qc")
def qc_cmd(
    run: RunOpt = None,
    real: RealOpt = None,
    synthetic: SyntheticOpt = None,
    out: OutOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """FID / KID / precision-recall with real-vs-real floors, C2ST and memorisation — no filtering."""
    _single_process("qc")
    from ctqc.stages.qc import qc_folders, run_qc

    cfg = _byo_config(real, synthetic, out, run, config, set_)
    if cfg is None:
        target = _scored_run(run)
        metrics = run_qc(target)
        where = target.path / "qc" / "metrics.json"
    else:
        metrics = qc_folders(real, synthetic, out, cfg)
        where = out / "metrics.json"
    _print_qc(metrics)
    _console().print(f"wrote {where}")


@app.command("report")
def report_cmd(
    run: RunOpt = None,
    html: Annotated[bool, typer.Option("--html/--no-html", help="Render the self-contained HTML report (default); --no-html writes only summary.json.")] = True,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Also write the HTML report to this file (it is always written to RUN/report/report.html).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the headline numbers (report/summary.json) as JSON.")] = False,
) -> None:
    """Render the run's report: one self-contained HTML file (figures embedded) plus report/summary.json."""
    _single_process("report")
    from ctqc.run import Run
    from ctqc.stages.report import make_report

    target = Run.open(run)
    if as_json:  # stdout carries only the JSON
        result = make_report(target, out=out, html=html)
        typer.echo(json.dumps(result.summary, indent=2, default=str))
        return
    console = _console()
    with console.status("rendering the report (figures, thumbnails) …"):
        result = make_report(target, out=out, html=html)
    if html:
        size = f"{result.size_bytes / 1e6:.1f} MB" if result.size_bytes >= 100_000 else f"{result.size_bytes / 1e3:.0f} kB"
        console.print(f"wrote {result.html_path} ({size})" + (f" and {result.copy_path}" if result.copy_path else ""))
    console.print(f"wrote {result.summary_path}")
    missing = [k for k, v in result.summary.get("sections", {}).items() if v != "ran"]
    if missing:
        console.print("  not run: " + ", ".join(missing))
    for line in result.summary.get("conclusions", []):
        console.print(f"  {line}")


@app.command("compare")
def compare_cmd(
    run: RunOpt = None,
    seeds: Annotated[Optional[int], typer.Option("--seeds", help="Trainings per arm and fold (default: compare.seeds, 3).")] = None,
    jobs: Annotated[Optional[int], typer.Option("--jobs", "-j", help="Parallel training processes (default: compare.jobs; 0 = one per CPU core).")] = None,
    arm: Annotated[Optional[list[str]], typer.Option("--arm", help="Only these arms (repeatable or comma-separated; default: compare.arms).")] = None,
    ratio: Annotated[
        Optional[list[str]],
        typer.Option("--ratio", help="Dose-response arms: synthetic images per real image, e.g. 0.5,1,2 (repeatable or comma-separated; default: compare.synthetic_ratios)."),
    ] = None,
) -> None:
    """Train the classifier on each arm (original, +classical, synthetic-only, +synthetic, +duplicated, +filtered, +random subset, dose-response) over folds × seeds, with CIs and paired tests."""
    from ctqc.run import Run
    from ctqc.stages.compare import compare, print_table

    target = Run.open(run)
    arms = [a.strip() for item in arm for a in item.split(",") if a.strip()] if arm else None
    console = _console()
    ratios = _numbers("--ratio", ratio) if ratio else None
    result = compare(target, seeds=seeds, jobs=jobs, arms=arms, ratios=ratios, progress=not _State.quiet, console=console)
    print_table(result.summary, result.config, console)
    console.print(f"trained {result.trained}, reused {result.reused} → {result.folder} (results.csv, summary.json, table.txt, predictions/)")


@app.command("run")
def run_cmd(
    data: DataOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    run: RunOpt = None,
    new: Annotated[bool, typer.Option("--new", help="Start a fresh run even if the latest one (same config) is unfinished.")] = False,
    no_selftest: Annotated[bool, typer.Option("--no-selftest", help="Skip the QC self-test stage.")] = False,
) -> None:
    """The whole job: train → generate → score → filter → qc → selftest → compare → report; re-running resumes an unfinished run."""
    from ctqc.pipeline import run_pipeline
    from ctqc.run import Run

    console = _console()
    if run is not None:
        if data is not None or config is not None or set_ or new:
            raise UserError("--run finishes an existing run with its saved config; drop --data/--config/--set/--new")
        result = run_pipeline(run=Run.open(run), selftest=not no_selftest, progress=not _State.quiet, say=console.print)
    else:
        result = run_pipeline(_load_config(config, data, set_), new=new, selftest=not no_selftest, progress=not _State.quiet, say=console.print)
    if result.skipped:
        console.print(f"already done: {', '.join(result.skipped)}")
    if os.environ.get("RANK", "0") in ("", "0"):  # under torchrun rank 0 alone
        glance = [line for line in glance_lines(result.run.layout) if not line.startswith("report:")]  # the path: below
        if glance:
            console.print("[bold]At a glance[/]")
            for line in glance:
                console.print(f"  {line}", markup=False)
        typer.echo(f"report: {result.run.layout.report_html}")  # even with -q: the one result


@app.command("selftest")
def selftest_cmd(
    data: DataOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the JSON results.")] = Path("selftest.json"),
    permutations: Annotated[int, typer.Option("--permutations", min=10, help="Permutations per null repeat.")] = 100,
) -> None:
    """Prove the QC filter on real images: null (real vs real), planted artifacts, planted copies, set-level defects and duplicates."""
    _single_process("selftest")
    from ctqc import atomic
    from ctqc.artefacts import PlantedCheck, Selftest, write_artefact
    from ctqc.qc.selftest import selftest

    cfg = _load_config(config, data, set_)
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give a file name such as {out / 'selftest.json'}")
    atomic.check_can_create(out)  # before the minute of work, not after
    report = selftest(cfg, null_permutations=permutations)
    validated = Selftest.model_validate(report)
    write_artefact(out, validated)
    planted_check = validated.planted or PlantedCheck()
    console = _console()
    null, planted, copies = report["null"], report["planted"], report["copies"]
    mark = lambda ok: "[green]pass[/]" if ok else "[red]FAIL[/]"
    console.print(
        f"(a) null: mean AUC {sum(null['auc']) / len(null['auc']):.3f}, discarded {null['mean_discarded']:.0%} on average (max {max(null['discarded_fraction']):.0%}), ECE {null['mean_ece']:.3f} — {mark(null['pass'])}"
    )
    console.print(
        f"(b) planted artifacts at {report['operating_point']}, {planted['n_splits']} splits: AUROC low / medium / high; removed at medium (defective; genuine), with the 95 % Wilson interval and the range over splits:"
    )
    for name, levels in planted["auroc"].items():
        console.print(
            f"    {name:16s} " + " / ".join(f"{levels[s]:.3f}" for s in ("low", "medium", "high")) + f"; {planted_check.medium_share('removed', name)}; {planted_check.medium_share('genuine_removed', name)}"
        )
    console.print(
        f"    AUROC medium ≥ 0.9: {mark(planted['medium_at_least_0.9'])}; removed ≥ 90 %: {mark(planted['medium_removed_at_least_0.9'])}; genuine removed ≤ 10 %: {mark(planted['genuine_removed_at_most_0.1'])}; removed rising with strength: {mark(planted['rising_with_strength'])}"
    )
    console.print("(c) copies flagged: " + ", ".join(f"{k} {v:.0%}" for k, v in copies["flagged"].items()) + f"; genuine flagged {copies['genuine_flagged']:.0%} — {mark(copies['pass'])}")
    sets = report["set_level"]
    console.print(f"(d) set-level defects, {sets['n_repeats']} splits: detected (p < {sets['alpha']:g}) by the kernel MMD / the linear C2ST:")
    for name, d in sets["defects"].items():
        console.print(f"    {name:18s} MMD {d['mmd_detected']:.0%} / C2ST {d['c2st_detected']:.0%}" + ("" if d["judged"] else " (recorded, not judged)"))
    dedup = sets["dedup"]
    console.print(f"    null rejected by the MMD {sets['null']['mmd_rejected']:.0%}; detected ≥ 90 %: {mark(sets['detected_at_least_0.9'])}; null ≤ 20 %: {mark(sets['null_rejected_at_most_0.2'])}")
    console.print(
        "    duplicates flagged: "
        + ", ".join(f"{k} {v:.0%}" for k, v in dedup["flagged"].items())
        + f"; genuine flagged {dedup['genuine_flagged']:.0%} — {mark(dedup['pass'])}; (d) {mark(sets['pass'])}"
    )
    console.print(f"wrote {out}")


def _scored_run(run: Path | None, check=lambda run: None, stale=lambda run: False):
    """Open ``run`` and run the score stage first when its scores are missing, older than the pool, or ``stale``."""
    from ctqc.pipeline import needs_running
    from ctqc.run import Run
    from ctqc.stages.score import score

    target = Run.open(run)
    target.require_stage("generate", "ctqc train")
    check(target)  # bad options: refused before the minutes of scoring
    if needs_running(target, "score") or stale(target):
        with _console().status("scoring the synthetic pool (C2ST, copy check) …"):
            score(target)
    return target


def _scored_without_label_prob(run) -> bool:
    """qc/scores.csv was written before the label strategy's score existed (no ``label_prob`` column): score again."""
    path = run.layout.scores
    if not path.is_file():
        return False
    with open(path, encoding="utf-8") as fh:
        return "label_prob" not in fh.readline().strip().split(",")
