"""`ctqc run`: the whole job in one run directory, resumable stage by stage.

train → generate → score → filter → qc → selftest → compare → report. Each stage
takes the same :class:`~ctqc.run.Run`, so the data are loaded and preprocessed once
per process; each records itself in the manifest and writes atomically, so a
stage either finished (and is skipped on re-run) or is redone; the long stages
resume inside themselves too (GAN checkpoints, one file per compare training).
No stage calls another: this module (and the CLI) chain them.

Re-running ``ctqc run`` with the same config and data picks up the newest
unfinished run made by ``ctqc run`` (``runs/latest``) at its first unfinished
stage; ``--run DIR`` names one, ``--new`` forces a fresh run. A run that another live
process holds (``ctqc.runlock``) is never resumed: a new run is started, and said so.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ctqc import distributed as ddp
from ctqc import runlock
from ctqc.config import Config
from ctqc.device import resolve_device
from ctqc.errors import UserError
from ctqc.run import Run
from ctqc.stages.compare import compare
from ctqc.stages.filter import run_filter
from ctqc.stages.generate import generate
from ctqc.stages.prepare import prepare_run
from ctqc.stages.qc import run_qc
from ctqc.stages.report import make_report
from ctqc.stages.score import score
from ctqc.stages.selftest import run_selftest
from ctqc.stages.train import train, untrained

STAGES = ("train", "generate", "score", "filter", "qc", "selftest", "compare", "report")
DATA_PARALLEL = ("train", "compare")  # the stages that use every torchrun process
#: what each stage reads that another stage writes: a stage whose upstream finished after it is stale
UPSTREAM = {"generate": "train", "score": "generate", "filter": "score", "qc": "filter", "compare": "filter", "report": "compare"}


@dataclass
class PipelineResult:
    run: Run
    ran: list[str]
    skipped: list[str]


def resumable(config: Config, say: Callable[[str], None] | None = None) -> Run | None:
    """The latest run, if ``ctqc run`` made it with this very config, did not finish it, and no
    other live process holds it (``say`` is then told why it is not resumed)."""
    try:
        run = Run.open(None, root=config.run.root)
        manifest = run.manifest()
    except (UserError, OSError, ValueError):
        return None
    if not manifest.get("pipeline") or manifest.get("config_hash") != config.hash():
        return None
    if run.stage_status("report") == "done":
        return None
    if runlock.is_held(run.path):
        if say is not None:
            say(f"not resuming {run.path}: in use by {runlock.holder(run.path)}; starting a new run")
        return None
    return run


def stage_functions(progress: bool = True) -> dict[str, Callable[[Run], object]]:
    """Every stage as a function of the run alone, with its default options."""
    return {
        "train": functools.partial(train, progress=progress),
        "generate": generate,
        "score": score,
        "filter": run_filter,
        "qc": run_qc,
        "selftest": run_selftest,
        "compare": functools.partial(compare, progress=progress),
        "report": make_report,
    }


def needs_running(run: Run, stage: str) -> bool:
    """Not finished, or finished before the stage whose output it reads (then its output is stale)."""
    if run.stage_status(stage) != "done":
        return True
    if stage == "train" and untrained(run):  # a generator went missing since: train (resume) it again
        return True
    upstream = UPSTREAM.get(stage)
    return upstream is not None and run.finished_after(upstream, stage)


def run_pipeline(
    config: Config | None = None,
    *,
    run: Run | None = None,
    new: bool = False,
    stages: Sequence[str] = STAGES,
    selftest: bool = True,
    progress: bool = True,
    say: Callable[[str], None] = print,
) -> PipelineResult:
    """Run (or finish) ``stages`` of one run, in pipeline order; returns the run and which stages ran now.

    Without ``run``, a new run is created from ``config`` — or, unless ``new``, the latest
    unfinished ``ctqc run`` run with the same config is resumed. Under torchrun the
    training stages (train, compare) are data-parallel over the ranks; rank 0 alone picks
    or creates the run and runs the single-process stages while the others wait for it.
    """
    ddp.init(resolve_device((config or run.config).device))  # no-op without torchrun
    picked: dict[str, Run] = {}

    def pick() -> str:
        chosen = run
        if chosen is None and config is not None and not new:
            chosen = resumable(config, say)
            if chosen is not None:
                try:
                    with runlock.hold(chosen.path, wait=0):  # inside the session: held until the pipeline ends
                        pass
                except UserError:  # another process took it a moment ago
                    say(f"not resuming {chosen.path}: in use by {runlock.holder(chosen.path)}; starting a new run")
                    chosen = None
            if chosen is not None:
                say(f"resuming {chosen.path} (same config, unfinished)")
        elif chosen is not None:
            with runlock.hold(chosen.path):  # --run DIR: refused (one line) if another process holds it
                pass
        if chosen is None:
            assert config is not None
            chosen = prepare_run(config, pipeline=tuple(stages) == STAGES).run
            say(f"new run {chosen.path}")
        picked["run"] = chosen
        return str(chosen.path)

    with runlock.session():  # the run stays held from its pick to the last stage (rank 0 holds it)
        path = ddp.from_main(pick)
        return _run_stages(picked.get("run") or Run(path), stages, selftest, progress, say)


def _run_stages(target: Run, stages: Sequence[str], selftest: bool, progress: bool, say: Callable[[str], None]) -> PipelineResult:
    """Run ``stages`` of ``target`` in pipeline order, skipping finished stages whose inputs did not change."""
    functions = stage_functions(progress)
    ran: list[str] = []
    skipped: list[str] = []
    for stage in (s for s in STAGES if s in stages):
        rerun = bool(ran) and UPSTREAM.get(stage) in ran  # its input was just rewritten
        if stage == "selftest" and not selftest:
            continue  # left out on request (--no-selftest), not "already done"
        if not rerun and not needs_running(target, stage):
            skipped.append(stage)
            continue
        say(f"stage {stage}")
        if stage in DATA_PARALLEL:
            functions[stage](target)
        else:
            ddp.from_main(functools.partial(_single_process, functions[stage], target))
        ran.append(stage)
    return PipelineResult(run=target, ran=ran, skipped=skipped)


def _single_process(stage: Callable[[Run], object], run: Run) -> None:
    stage(run)  # its return value stays on rank 0 (nothing to broadcast)
