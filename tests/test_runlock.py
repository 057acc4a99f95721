"""Run locking (issue 19 item 9): run names never collide, one process holds a run at a time,
``ctqc run`` never resumes a held run, and a parallel sweep in one folder gives complete runs."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ctqc import runlock
from ctqc.errors import UserError
from tests.reliability.conftest import CTQC, REPO, light_args, stages

HOLDER = "import sys, time\nfrom ctqc import runlock\nwith runlock.hold(sys.argv[1]):\n    print('held', flush=True)\n    time.sleep(300)\n"


@pytest.fixture
def other_process():
    """Start a second process holding a run folder; yields start(path) → its pid; killed afterwards."""
    procs = []

    def start(path: Path) -> int:
        proc = subprocess.Popen([sys.executable, "-c", HOLDER, str(path)], env={**os.environ, "PYTHONPATH": str(REPO)}, stdout=subprocess.PIPE, text=True)
        procs.append(proc)
        assert proc.stdout.readline().strip() == "held"
        return proc.pid

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


def _reserve(args) -> str:
    root, barrier = args
    barrier.wait()  # all at once
    with runlock.reserved_name(Path(root), "20250101-120000-smoke") as name:
        (Path(root) / name).mkdir()  # the run, created under the reservation
    return name


def test_names_reserved_at_the_same_moment_never_collide(tmp_path):
    ctx = multiprocessing.get_context("fork")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(6)
        with ctx.Pool(6) as pool:
            names = pool.map(_reserve, [(str(tmp_path), barrier)] * 6)
    base = "20250101-120000-smoke"
    assert sorted(names) == sorted([base] + [f"{base}-{n}" for n in range(2, 7)])
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(names)  # every reservation given back


def test_a_held_run_is_refused_with_one_line_naming_it_and_the_holder(tmp_path, other_process):
    run = tmp_path / "run"
    run.mkdir()
    pid = other_process(run)
    assert runlock.is_held(run)
    with pytest.raises(UserError) as caught, runlock.hold(run, wait=0.2):
        pass
    message = str(caught.value)
    assert "\n" not in message and str(run) in message and f"pid {pid} on " in message and "in use" in message


def test_holding_is_reentrant_and_leaves_the_lock_file_empty(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    with runlock.hold(run):
        info = json.loads((run / runlock.LOCK_NAME).read_text())
        assert info["pid"] == os.getpid()
        with runlock.hold(run):  # the same process again: no deadlock
            assert not runlock.is_held(run)  # our own hold is not "another process"
    assert (run / runlock.LOCK_NAME).read_bytes() == b""  # released: a refused command leaves no trace


def test_ctqc_run_does_not_resume_a_run_another_process_holds(tmp_path, other_process):
    from ctqc.config import load_config
    from ctqc.pipeline import resumable
    from ctqc.stages.prepare import prepare_run

    config = load_config("smoke", [f"run.root={tmp_path / 'runs'}"])
    run = prepare_run(config, pipeline=True).run
    assert resumable(config).path == run.path  # unfinished, nobody on it: resumed
    pid = other_process(run.path)
    said: list[str] = []
    assert resumable(config, said.append) is None
    assert said == [f"not resuming {run.path}: in use by {runlock.holder(run.path)}; starting a new run"] and f"pid {pid}" in said[0]


def test_parallel_sweep_of_four_trainings_in_one_folder_gives_four_complete_runs(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [*CTQC, "-q", "train", *light_args("gan.epochs=1", "data.phantom.n_per_class=8", "gan.n_synthetic=8")]
    procs = [subprocess.Popen([*args, "--set", f"seed={n}"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for n in range(4)]
    results = [(p.wait(timeout=600), p.stderr.read()) for p in procs]
    assert [code for code, _ in results] == [0] * 4, [err[-2000:] for _, err in results]
    runs = sorted(p for p in (tmp_path / "runs").iterdir() if p.is_dir() and not p.is_symlink())
    assert len(runs) == 4 and len({p.name for p in runs}) == 4
    seeds = set()
    for run in runs:
        assert stages(run)["train"]["status"] == "done" and stages(run)["generate"]["status"] == "done"
        assert (run / runlock.LOCK_NAME).read_bytes() == b""  # nobody holds it any more
        seeds.add(json.loads((run / "manifest.json").read_text())["config_hash"])
    assert len(seeds) == 4  # each run is one process's own, not a shared or overwritten one


def test_a_name_reserved_by_a_killed_creator_is_given_back(tmp_path):
    from ctqc import atomic

    runs = tmp_path / "runs"
    runs.mkdir()
    name = "20250101-120000-smoke"
    (runs / f".{name}.reserved").mkdir()  # its reservation
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True, check=True).stdout.strip()
    (runs / f".{name}.{dead}.abcdefgh.tmp").mkdir()  # its half-built run, the creator killed
    (runs / "20250101-120000-other").mkdir()
    (runs / "20250101-120000-other" / "manifest.json").write_text("{}")
    runlock.drop_stale_reservations(atomic.remove_stale_temporaries(runs, recursive=False))
    assert sorted(p.name for p in runs.iterdir()) == ["20250101-120000-other"]
