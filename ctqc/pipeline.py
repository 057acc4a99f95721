"""`ctqc run`: the whole job in one run directory, resumable stage by stage.

train → generate → filter → qc → selftest → compare → report. Each stage records
itself in the manifest (``ctqc.rundir.RunDir.stage``) and writes atomically, so a
stage either finished (and is skipped on re-run) or is redone; the long stages
resume inside themselves too (GAN checkpoints, one file per compare training).

Re-running ``ctqc run`` with the same config and data picks up the newest
unfinished run made by ``ctqc run`` (``runs/latest``) at its first unfinished
stage; ``--run DIR`` names one, ``--new`` forces a fresh run. A run that another live
process holds (``ctqc.runlock``) is never resumed: a new run is started, and said so.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from ctqc import runlock
from ctqc.config import Config
from ctqc.errors import UserError
from ctqc.rundir import RunDir

STAGES = ("train", "generate", "filter", "qc", "selftest", "compare", "report")
DATA_PARALLEL = ("train", "compare")  # the stages that use every torchrun process


@dataclass
class PipelineResult:
    run: RunDir
    ran: list[str]
    skipped: list[str]


def resumable(config: Config, say: Callable[[str], None] | None = None) -> RunDir | None:
    """The latest run, if ``ctqc run`` made it with this very config, did not finish it, and no
    other live process holds it (``say`` is then told why it is not resumed)."""
    try:
        run = RunDir.open(None, root=config.run.root)
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


def run_pipeline(config: Config | None = None, *, run: RunDir | None = None, new: bool = False, selftest: bool = True, progress: bool = True, say: Callable[[str], None] = print) -> PipelineResult:
    """Run (or finish) every stage; returns the run and which stages ran now.

    Under torchrun the training stages (train, compare) are data-parallel over the
    ranks; rank 0 alone picks or creates the run and runs the single-process stages
    (generate, filter, qc, selftest, report) while the others wait for it.
    """
    from ctqc import distributed as ddp
    from ctqc.device import resolve_device

    ddp.init(resolve_device((config or run.config()).device))  # no-op without torchrun

    def pick() -> RunDir:
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
            from ctqc.prepare import prepare_run

            assert config is not None
            chosen = prepare_run(config, pipeline=True).run
            say(f"new run {chosen.path}")
        return chosen

    with runlock.session():  # the run stays held from its pick to the last stage (rank 0 holds it)
        return _run_stages(RunDir(ddp.from_main(lambda: pick().path)), selftest, progress, say)


def _run_stages(run: RunDir, selftest: bool, progress: bool, say: Callable[[str], None]) -> PipelineResult:
    from ctqc import distributed as ddp
    from ctqc.train import train

    ran: list[str] = []
    stages: dict[str, Callable[[RunDir], object]] = {
        "train": lambda r: train(run=r, progress=progress),
        "generate": _generate,
        "filter": _filter,
        "qc": _qc,
        "selftest": _selftest,
        "compare": lambda r: _compare(r, progress),
        "report": _report,
    }
    skipped = []
    for stage in STAGES:
        if stage in ran:  # generate, right after train
            continue
        if run.stage_status(stage) == "done" or (stage == "selftest" and not selftest):
            skipped.append(stage)
            continue
        say(f"stage {stage}")
        if stage in DATA_PARALLEL:
            stages[stage](run)
        else:
            ddp.from_main(functools.partial(_single_process, stages[stage], run))
        ran.append(stage)
        if stage == "train":
            ran.append("generate")  # train generates the pool as its last step
    return PipelineResult(run=run, ran=ran, skipped=skipped)


def _single_process(stage: Callable[[RunDir], object], run: RunDir) -> None:
    stage(run)  # its return value stays on rank 0 (nothing to broadcast)


def _generate(run: RunDir) -> None:
    from ctqc.generate import generate

    generate(run)


def _filter(run: RunDir) -> None:
    from ctqc.filtering import run_filter

    run_filter(run)


def _qc(run: RunDir) -> None:
    from ctqc.quality import run_qc

    run_qc(run)


def _selftest(run: RunDir) -> None:
    from ctqc import atomic
    from ctqc.qc.selftest import selftest

    cfg = run.config()
    with run.stage("selftest") as outputs:
        report = selftest(cfg, null_permutations=cfg.qc.n_permutations // 2 or 20)
        atomic.write_json(run.path / "qc" / "selftest.json", report)
        outputs.append("qc/selftest.json")


def _compare(run: RunDir, progress: bool) -> None:
    from ctqc.compare import compare

    compare(run, progress=progress)


def _report(run: RunDir) -> None:
    from ctqc.report import make_report

    make_report(run)
