"""The ``ctqc`` command line: thin wrappers over importable stage functions.

Heavy modules (torch, pandas, sklearn) are imported inside the commands so that
``ctqc --help`` stays fast. User mistakes print one ``error:`` line and exit 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from ctqc import __version__, allocator
from ctqc.errors import UserError

app = typer.Typer(
    name="ctqc",
    help="Quality control for synthetic medical images (GAN → QC → filter → classifier comparison → report).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
data_app = typer.Typer(help="Inspect and prepare the real labelled images.", no_args_is_help=True)
app.add_typer(data_app, name="data")


class _State:
    debug = False
    quiet = False


def _console():
    from rich.console import Console

    return Console(quiet=_State.quiet, highlight=False, soft_wrap=True)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"ctqc {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks for errors.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors.")] = False,
) -> None:
    _State.debug = debug
    _State.quiet = quiet or os.environ.get("RANK", "0") not in ("", "0")  # under torchrun only rank 0 prints


# Options shared by the commands that load data.
ConfigOpt = Annotated[Optional[str], typer.Option("--config", "-c", help="Preset name (default, paper, smoke) or YAML path.")]
DataOpt = Annotated[Optional[Path], typer.Option("--data", "-d", help="Folder with images + labels.csv, or a .npz. Default: built-in phantoms.")]
SetOpt = Annotated[Optional[list[str]], typer.Option("--set", "-s", help="Override a config key, e.g. --set gan.epochs=10 (repeatable).")]


def _single_process(command: str) -> None:
    """Only train, compare and run use several torchrun processes; refuse the others there (they would all write)."""
    if os.environ.get("WORLD_SIZE", "1") not in ("", "1"):
        raise UserError(f"`ctqc {command}` runs in one process: start it without torchrun (only train, compare and run use several)")


def _load_config(config: str | None, data: Path | None, overrides: list[str] | None):
    from ctqc.config import load_config

    return load_config(config, overrides or [], data)


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
    _console().print(
        f"wrote {sum(counts.values())} phantom slices ({', '.join(f'{n} {c}' for c, n in counts.items())}) "
        f"at {size}×{size} px to {out}/head_ct/ with {out}/labels.csv"
    )


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
    from ctqc.prepare import prepare_run

    cfg = _load_config(config, data, set_)
    prepared = prepare_run(cfg)
    console = _console()
    sizes = prepared.splits.sizes(0)
    console.print(f"[bold]run[/] {prepared.run.path.resolve()}")
    console.print(f"  data: {prepared.data.source.location} — {len(prepared.data)} images, " + ", ".join(f"{n} {c}" for c, n in prepared.data.class_counts().items()))
    console.print(f"  fingerprint: {prepared.data.source.fingerprint}")
    console.print(
        f"  split ({cfg.split.scheme}, {len(prepared.splits.folds)} fold(s)): "
        + " / ".join(f"{sum(sizes[r].values())} {r}" for r in ("train", "val", "test"))
    )
    for warning in prepared.data.source.warnings:
        console.print(f"  [yellow]warning:[/] {warning}")
    console.print("  wrote config.yaml, splits.csv, manifest.json")


RunOpt = Annotated[Optional[Path], typer.Option("--run", "-r", help="Run directory. Default: runs/latest.")]


@app.command("train")
def train_cmd(
    data: DataOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an existing run (--run, default runs/latest) from its last checkpoints.")] = False,
    run: RunOpt = None,
) -> None:
    """Create a run, split the data, train the GAN(s) on the training part only, and generate the synthetic pool."""
    from ctqc.rundir import RunDir
    from ctqc.train import train

    if resume:
        if data is not None or config is not None or set_:
            raise UserError("--resume continues a run with its saved config; drop --data/--config/--set")
        target = RunDir.open(run)
        result = train(run=target, progress=not _State.quiet)
    else:
        if run is not None:
            raise UserError("--run is only used with --resume; a new training creates its own run")
        result = train(_load_config(config, data, set_), progress=not _State.quiet)
    _print_run_summary(result)


@app.command("generate")
def generate_cmd(
    run: RunOpt = None,
    n: Annotated[Optional[int], typer.Option("--n", min=1, help="Images per fold (default: gan.n_synthetic).")] = None,
    per_class: Annotated[bool, typer.Option("--per-class", help="Make --n images for every class instead of --n in all.")] = False,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Sampling seed (default: the run's seed).")] = None,
) -> None:
    """(Re)generate the synthetic pool of a trained run with the EMA generators."""
    _single_process("generate")
    from ctqc.generate import generate
    from ctqc.rundir import RunDir

    target = RunDir.open(run)
    folder = generate(target, n=n, per_class=per_class, seed=seed)
    _console().print(f"wrote {len(list(folder.glob('syn_*.png')))} synthetic images and index.csv to {folder}")


RealOpt = Annotated[Optional[Path], typer.Option("--real", help="Bring your own images: folder of real images (labels.csv or class subfolders).")]
SyntheticOpt = Annotated[Optional[Path], typer.Option("--synthetic", help="Bring your own images: folder of any generator's images (labels.csv or class subfolders).")]
OutOpt = Annotated[Optional[Path], typer.Option("--out", "-o", help="Bring your own images: output folder (new, or an earlier output of this command).")]


def _byo_config(real, synthetic, out, run, config, set_):
    """The config for a bring-your-own-images command, or None for a run; refuses mixed options."""
    byo = (real, synthetic, out)
    if not any(byo):
        if config is not None or set_:
            raise UserError("--config/--set apply to --real/--synthetic/--out folders; a run uses its saved config")
        return None
    if not all(byo):
        raise UserError("bring-your-own images need all of --real DIR --synthetic DIR --out DIR")
    if run is not None:
        raise UserError("--run and --real/--synthetic/--out are alternatives; use one")
    return _load_config(config, None, set_)


@app.command("filter")
def filter_cmd(
    run: RunOpt = None,
    c2st_threshold: Annotated[Optional[float], typer.Option("--c2st-threshold", help="Drop images with calibrated p(synthetic) above this (default: qc.c2st_threshold, 0.6).")] = None,
    no_memorisation: Annotated[bool, typer.Option("--no-memorisation", help="Skip the copy check.")] = False,
    real: RealOpt = None,
    synthetic: SyntheticOpt = None,
    out: OutOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Score every synthetic image (C2ST, copy check) and split the pool into kept and rejected."""
    _single_process("filter")
    from ctqc.filtering import filter_folders, run_filter
    from ctqc.rundir import RunDir

    cfg = _byo_config(real, synthetic, out, run, config, set_)
    memorisation = False if no_memorisation else None
    if cfg is None:
        target = RunDir.open(run)
        summary = run_filter(target, threshold=c2st_threshold, memorisation=memorisation)
        where = target.path / "filter"
    else:
        summary = filter_folders(real, synthetic, out, cfg, threshold=c2st_threshold, memorisation=memorisation)
        where = out
    console = _console()
    console.print(f"kept {summary.kept}, rejected {summary.rejected} → {where}")
    for unit, r in summary.per_class.items():
        before, after = r["c2st_before"], r["c2st_after"]
        fmt = lambda m: "n/a" if m["auc"] is None else f"AUC {m['auc']:.3f}" + ("" if m["p_value"] is None else f" (p = {m['p_value']:.3g})")
        console.print(f"  {unit}: kept {r['kept']}/{r['n_synthetic']} (c2st {r['rejected_c2st']}, copies {r['rejected_copy']}); C2ST before {fmt(before)}, after {fmt(after)}")


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
    from ctqc.quality import qc_folders, run_qc
    from ctqc.rundir import RunDir

    cfg = _byo_config(real, synthetic, out, run, config, set_)
    if cfg is None:
        target = RunDir.open(run)
        metrics = run_qc(target)
        where = target.path / "qc" / "metrics.json"
    else:
        metrics = qc_folders(real, synthetic, out, cfg)
        where = out / "metrics.json"
    _print_qc(metrics)
    _console().print(f"wrote {where}")


def _print_qc(metrics: dict) -> None:
    from rich.table import Table

    def cell(entry: dict, key: str = "value", digits: int = 3) -> str:
        value, low, high = entry.get(key), entry.get("ci_low"), entry.get("ci_high")
        text = "n/a" if value is None else f"{value:.{digits}g}"
        return text + ("" if low is None or key != "value" else f" [{low:.{digits}g}, {high:.{digits}g}]")

    table = Table(title=f"Synthetic vs real ({metrics['extractor']} features; floor = held-out real vs the same reference, same n)")
    for column in ("scope", "n syn/real/floor", "FID", "FID at floor n", "FID floor", "KID", "KID floor", "precision", "recall", "C2ST AUC (p)"):
        table.add_column(column)
    for name, s in metrics["scopes"].items():
        c2st = metrics["c2st"].get(name, {})
        auc = "" if c2st.get("auc") is None else f"{c2st['auc']:.3f} ({c2st['p_value']:.2g})"
        table.add_row(
            name, f"{s['n_synthetic']}/{s['n_real']}/{s['n_floor']}", cell(s["fid"]), cell(s["fid"], "matched"), cell(s["fid"], "floor"),
            cell(s["kid"]), cell(s["kid"], "floor"), cell(s["precision"], digits=2), cell(s["recall"], digits=2), auc,
        )  # fmt: skip
    console = _console()
    console.print(table)
    for name, m in metrics["memorisation"].items():
        if m.get("c_t") is not None or m.get("n_flagged") is not None:
            console.print(f"  {name}: copies flagged {m['n_flagged']}, C_T {m['c_t']} (C_T ≪ 0: samples sit closer to training images than held-out real images do)")
    for warning in metrics["warnings"]:
        console.print(f"  [yellow]warning[/yellow]: {warning}")


@app.command("report")
def report_cmd(
    run: RunOpt = None,
    html: Annotated[bool, typer.Option("--html/--no-html", help="Render the self-contained HTML report (default); --no-html writes only summary.json.")] = True,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Also write the HTML report to this file (it is always written to RUN/report/report.html).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the headline numbers (report/summary.json) as JSON.")] = False,
) -> None:
    """Render the run's report: one self-contained HTML file (figures embedded) plus report/summary.json."""
    _single_process("report")
    from ctqc.report import make_report
    from ctqc.rundir import RunDir

    target = RunDir.open(run)
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
) -> None:
    """Train the classifier on each arm (original, +classical, synthetic-only, +synthetic, +filtered, +random subset) over folds × seeds, with CIs and paired tests."""
    from ctqc.compare import compare, print_table
    from ctqc.rundir import RunDir

    target = RunDir.open(run)
    arms = [a.strip() for item in arm for a in item.split(",") if a.strip()] if arm else None
    console = _console()
    result = compare(target, seeds=seeds, jobs=jobs, arms=arms, progress=not _State.quiet, console=console)
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
    """The whole job: train → generate → filter → qc → selftest → compare → report; re-running resumes an unfinished run."""
    from ctqc.pipeline import run_pipeline
    from ctqc.rundir import RunDir

    console = _console()
    if run is not None:
        if data is not None or config is not None or set_ or new:
            raise UserError("--run finishes an existing run with its saved config; drop --data/--config/--set/--new")
        result = run_pipeline(run=RunDir.open(run), selftest=not no_selftest, progress=not _State.quiet, say=console.print)
    else:
        result = run_pipeline(_load_config(config, data, set_), new=new, selftest=not no_selftest, progress=not _State.quiet, say=console.print)
    if result.skipped:
        console.print(f"already done: {', '.join(result.skipped)}")
    if os.environ.get("RANK", "0") in ("", "0"):  # under torchrun rank 0 alone
        typer.echo(f"report: {result.run.path / 'report' / 'report.html'}")  # even with -q: the one result


@app.command("selftest")
def selftest_cmd(
    data: DataOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    out: Annotated[Path, typer.Option("--out", "-o", help="Where to write the JSON results.")] = Path("selftest.json"),
    permutations: Annotated[int, typer.Option("--permutations", min=10, help="Permutations per null repeat.")] = 100,
) -> None:
    """Prove the QC filter on real images: null (real vs real), planted artifacts, planted copies."""
    _single_process("selftest")
    from ctqc import atomic
    from ctqc.qc.selftest import selftest

    cfg = _load_config(config, data, set_)
    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give a file name such as {out / 'selftest.json'}")
    atomic.check_can_create(out)  # before the minute of work, not after
    report = selftest(cfg, null_permutations=permutations)
    atomic.write_json(out, report)
    console = _console()
    null, planted, copies = report["null"], report["planted"], report["copies"]
    mark = lambda ok: "[green]pass[/]" if ok else "[red]FAIL[/]"
    console.print(f"(a) null: mean AUC {sum(null['auc']) / len(null['auc']):.3f}, max discarded {max(null['discarded_fraction']):.0%} — {mark(null['pass'])}")
    console.print("(b) planted artifacts, detection AUROC low / medium / high:")
    for name, levels in planted["auroc"].items():
        console.print(f"    {name:16s} " + " / ".join(f"{levels[s]:.3f}" for s in ("low", "medium", "high")))
    console.print(f"    rising with strength: {mark(planted['rising_with_strength'])}; medium ≥ 0.9: {mark(planted['medium_at_least_0.9'])}")
    console.print("(c) copies flagged: " + ", ".join(f"{k} {v:.0%}" for k, v in copies["flagged"].items()) + f"; genuine flagged {copies['genuine_flagged']:.0%} — {mark(copies['pass'])}")
    console.print(f"wrote {out}")


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


def _is_usage_error(exc: Exception) -> bool:
    """click's own errors (typer vendors click, so matched by shape rather than by class)."""
    return type(exc).__module__.endswith("click.exceptions") and hasattr(exc, "format_message") and hasattr(exc, "exit_code")


def main() -> None:
    """Entry point. Usage errors and user errors print one ``error:`` line and exit 2; internal failures exit 1."""
    debug = "--debug" in sys.argv[1:]
    allocator.retain_freed_memory()
    try:
        code = app(standalone_mode=False)  # click's usage errors are raised here and printed below as one line
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(1)
    except UserError as exc:
        if debug:
            raise
        typer.echo(f"error: {' '.join(str(exc).split())}", err=True)
        sys.exit(2)
    except Exception as exc:
        if _is_usage_error(exc):
            if type(exc).__name__ == "NoArgsIsHelpError":  # `ctqc`, `ctqc data`: the help text
                exc.show()
            else:
                ctx = getattr(exc, "ctx", None)
                hint = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
                typer.echo(f"error: {' '.join(exc.format_message().split())}{hint}", err=True)
            sys.exit(exc.exit_code)
        if debug:
            raise
        message = " ".join(str(exc).split())
        typer.echo(f"internal error: {exc.__class__.__name__}: {message} (rerun with --debug for the traceback)", err=True)
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
