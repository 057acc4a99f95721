"""Kill and resume: SIGKILL ``ctqc train``, ``ctqc compare`` and ``ctqc run`` at many points.

Kills are deterministic: ``CTQC_FAILPOINT`` (see :mod:`ctqc.atomic`) makes the
process SIGKILL itself at a chosen write — in the middle of it (the temporary
file complete, the destination not yet replaced: e.g. during a checkpoint
write) or just after it (between two steps). Each command runs a *chain*: a
real subprocess is killed at the first point, the resumed command is killed at
the next one, and so on; the last resume must finish. After every kill:

- the process really died by SIGKILL at that write (exit status −9; for a
  mid-write kill its temporary file is still there, the destination intact);
- every file a reader can see parses whole (:func:`assert_every_file_parses`);
- the next resume leaves the work completed before the kill untouched (same
  inode and mtime: not rewritten, let alone recomputed).

At the end the chain's results equal an uninterrupted run's on the CPU: the
GAN weights tensor for tensor, the synthetic images pixel for pixel, and
``compare/results.csv``, ``filter/kept.csv`` and ``qc/metrics.json`` without
their wall-clock timings. No temporary file is left behind.
"""

from __future__ import annotations

import fnmatch
import json
import re
import signal
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from tests.reliability.conftest import (
    PIPELINE,
    PIPELINE_SETTINGS,
    TIMING_COLUMNS,
    assert_every_file_parses,
    assert_same_gan,
    copy_run,
    ctqc,
    light_args,
    outputs_without_timings,
    stamps,
    temporaries,
    without_timings,
)


@dataclass(frozen=True)
class Kill:
    """One kill point: the command to run, where it dies, and what the *next* command must not rewrite."""

    what: str
    args: tuple[str, ...]
    failpoint: str  # CTQC_FAILPOINT
    untouched: tuple[str, ...] = ()  # globs (run-relative) of files completed before this kill


TRAIN = ("train", *light_args(*PIPELINE_SETTINGS))  # the reference pipeline's train stage, on its own
TRAIN_RESUME = ("train", "--resume")
TRAIN_KILLS = [
    Kill("while creating the run (its manifest)", TRAIN, "*/manifest.json:1"),
    Kill("during the first GAN's last checkpoint write", TRAIN, "*/fold0/normal/checkpoints/last.pt:2", ("gan/fold0/normal/grids/epoch_00001.png",)),
    Kill("right after the first GAN's generator.pt", TRAIN_RESUME, "*/fold0/normal/checkpoints/generator.pt:1:kill-after", ("gan/fold0/normal/*",)),
    Kill("during the second GAN's 2nd sample grid", TRAIN_RESUME, "*/fold0/haemorrhage/grids/*.png:2", ("gan/fold0/normal/*", "gan/fold0/haemorrhage/grids/epoch_00001.png")),
    Kill("while swapping in the synthetic pool", TRAIN_RESUME, "*/samples:1", ("gan/*",)),
]

COMPARE = ("compare", "--jobs", "1")  # the run's arms (original, original+filtered) × 2 seeds: 4 trainings
COMPARE_KILLS = [
    Kill("during the first training's unit file", COMPARE, "*/compare/units/*.json:1"),
    Kill("right after the second unit file", COMPARE, "*/compare/units/*.json:2:kill-after", ("compare/units/*",)),
    Kill("during results.csv", COMPARE, "*/compare/results.csv:1", ("compare/units/*",)),
    Kill("while swapping in predictions/", COMPARE, "*/compare/predictions:1", ("compare/units/*",)),
    Kill("during the manifest's 'compare done'", COMPARE, "*/manifest.json:2", ("compare/units/*",)),
]

RUN_KILLS = [
    Kill("during the first GAN's last checkpoint write", PIPELINE, "*/fold0/normal/checkpoints/last.pt:2", ("gan/fold0/normal/grids/epoch_00001.png",)),
    Kill("right after filter/ is in place, before the manifest records it", PIPELINE, "*/filter:1:kill-after", ("gan/*", "samples/*")),
    Kill("during qc/metrics.json", PIPELINE, "*/qc/metrics.json:1", ("gan/*", "samples/*", "filter/*")),
    Kill("during the second compare unit file", PIPELINE, "*/compare/units/*.json:2", ("gan/*", "samples/*", "filter/*", "qc/metrics.json", "compare/units/*")),
    Kill("during report.html", PIPELINE, "*/report/report.html:1", ("gan/*", "samples/*", "filter/*", "qc/*", "compare/*")),
]

KILL_CHAINS = {"train": TRAIN_KILLS, "compare": COMPARE_KILLS, "run": RUN_KILLS}


def run_chain(kills: list[Kill], final: tuple[str, ...], cwd: Path) -> tuple[Path, str]:
    """Run ``kills`` in order, then ``final``; returns the run and the final command's stdout."""
    previous: Kill | None = None
    before: dict = {}
    for kill in kills:
        result = ctqc(*kill.args, cwd=cwd, failpoint=kill.failpoint)
        assert result.returncode == -signal.SIGKILL, f"{kill.what}: not killed (exit {result.returncode})\n{result.stderr[-2000:]}"
        latest = cwd / "runs" / "latest"
        if not latest.exists():  # killed while creating the run: nothing but a hidden temporary
            assert [p.name for p in (cwd / "runs").iterdir() if not p.name.startswith(".")] == [], kill.what
            assert temporaries(cwd / "runs"), kill.what
            previous, before = kill, {}
            continue
        run = latest.resolve()
        _check_untouched(previous, before, stamps(run))
        assert_every_file_parses(run)
        if not kill.failpoint.endswith("kill-after"):
            pattern = kill.failpoint.split(":")[0]
            assert any(fnmatch.fnmatch(str(d), pattern) for d in unfinished_writes(run)), f"{kill.what}: nothing half-done for {pattern}: the kill was not mid-write"
        previous, before = kill, stamps(run)
    result = ctqc(*final, cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    run = (cwd / "runs" / "latest").resolve()
    _check_untouched(previous, before, stamps(run))
    assert temporaries(cwd / "runs") == [] and unfinished_writes(run) == [], "what killed processes left was not cleaned up"
    assert [p.name for p in (cwd / "runs").iterdir() if p.name != "latest"] == [run.name]  # one run, resumed
    assert_every_file_parses(run)
    return run, result.stdout


def unfinished_writes(run: Path) -> list[Path]:
    """Destinations of the hidden temporaries and staging folders under ``run`` (what a killed write was making)."""
    found = []
    for hidden in run.rglob(".*"):
        match = re.fullmatch(r"\.(.+?)\.(?:\d+\.[a-z0-9_]{8}\.tmp|new)", hidden.name)
        if match:
            found.append(hidden.parent / match.group(1))
    return found


def _check_untouched(kill: Kill | None, before: dict, after: dict) -> None:
    """The files ``kill`` lists as completed before it were not rewritten by the next command."""
    if kill is None:
        return
    done = {rel: stamp for rel, stamp in before.items() if any(fnmatch.fnmatch(rel, g) for g in kill.untouched)}
    assert done or not kill.untouched, f"{kill.what}: none of {kill.untouched} existed at the kill"
    redone = sorted(rel for rel, stamp in done.items() if after.get(rel) != stamp)
    assert not redone, f"after the kill {kill.what!r}, the resume rewrote completed work: {redone[:5]}"


# ----------------------------------------------------------------------------- comparisons with uninterrupted runs


def results_without_timings(run: Path) -> pd.DataFrame:
    return pd.read_csv(run / "compare" / "results.csv").drop(columns=TIMING_COLUMNS)


# ----------------------------------------------------------------------------- the tests


@pytest.mark.slow
def test_train_killed_five_times_resumes_to_the_uninterrupted_weights(tmp_path, reference_pipeline):
    run, _ = run_chain(TRAIN_KILLS, TRAIN_RESUME, tmp_path)
    assert_same_gan(reference_pipeline, run)


@pytest.mark.slow
def test_compare_killed_five_times_resumes_to_the_uninterrupted_results(tmp_path, reference_pipeline):
    copy_run(reference_pipeline, tmp_path, before=("compare", "report"))  # the reference run before its compare
    run, out = run_chain(COMPARE_KILLS, COMPARE, tmp_path)
    assert "trained 0, reused 4" in " ".join(out.split())  # the last kill came after every training
    pd.testing.assert_frame_equal(results_without_timings(reference_pipeline), results_without_timings(run))
    summaries = [without_timings(json.loads((r / "compare" / "summary.json").read_text())) for r in (reference_pipeline, run)]
    assert summaries[0] == summaries[1]
    for name in ("predictions", "units"):
        assert sorted(p.name for p in (run / "compare" / name).iterdir()) == sorted(p.name for p in (reference_pipeline / "compare" / name).iterdir())


@pytest.mark.slow
def test_run_killed_at_every_stage_resumes_to_the_uninterrupted_results(tmp_path, reference_pipeline):
    run, out = run_chain(RUN_KILLS, PIPELINE, tmp_path)
    assert "resuming" in out and "already done: train, generate, score, filter, qc, compare" in " ".join(out.split())  # (selftest: left out by --no-selftest)
    assert_same_gan(reference_pipeline, run)
    assert outputs_without_timings(run) == outputs_without_timings(reference_pipeline)
    assert (run / "report" / "report.html").is_file()


def test_resuming_a_finished_run_redoes_nothing(tmp_path, run_cli, shared_runs):
    """`ctqc train --resume` on a trained and filtered run: no GAN retrained, no new pool, the filter still current."""
    run = copy_run(shared_runs.get("filtered"), tmp_path)
    before = stamps(run)
    result = run_cli("-q", "train", "--resume")
    assert result.code == 0, result.err
    after = stamps(run)
    kept = [rel for rel in before if rel.startswith(("gan/", "samples/", "filter/"))]
    assert kept and all(after[rel] == before[rel] for rel in kept)
    assert run_cli("-q", "compare", "--arm", "original+filtered", "--jobs", "1").code == 0  # the filter's output is not stale
