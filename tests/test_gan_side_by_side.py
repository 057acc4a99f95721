"""The train stage's GANs side by side (``gan.jobs``): the same GANs as one after another, threads set by the run's GANs."""

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import ctqc.pool
from ctqc.pool import run_unordered
from ctqc.stages.train import side_by_side


def test_the_cores_are_split_by_the_runs_gans():
    assert side_by_side(0, 2, cores=2) == (2, 1)  # default: one process per core
    assert side_by_side(0, 1, cores=2) == (1, 2)  # one (conditional) GAN gets both cores
    assert side_by_side(1, 6, cores=2) == (1, 2)  # gan.jobs=1: one after another, every core
    assert side_by_side(0, 6, cores=4) == (4, 1)
    assert side_by_side(3, 6, cores=8) == (3, 2)
    assert side_by_side(5, 2, cores=16) == (2, 8)  # never more processes than GANs
    assert side_by_side(9, 9, cores=2) == (2, 1)  # nor than cores


@pytest.fixture
def pools(monkeypatch):
    """The (workers, threads) of every pool the train stage starts (the real pool runs)."""
    import ctqc.stages.train as stage

    calls = []
    monkeypatch.setattr(stage, "run_unordered", lambda fn, queue, workers, threads, **kw: calls.append((workers, threads)) or run_unordered(fn, queue, workers, threads, **kw))
    return calls


def _pixels(folder):
    """Each sample's pixels (the PNGs' text names the run's checkpoint path, which differs)."""
    from PIL import Image

    return {p.name: hashlib.sha256(Image.open(p).tobytes()).hexdigest() for p in sorted(folder.glob("*.png"))}


def _assert_same_gan(a, b, unit):
    import torch

    left = torch.load(a / "gan" / "fold0" / unit / "checkpoints" / "last.pt", weights_only=True)
    right = torch.load(b / "gan" / "fold0" / unit / "checkpoints" / "last.pt", weights_only=True)
    for part in ("G", "D", "G_ema"):
        assert left[part].keys() == right[part].keys()
        assert all(torch.equal(left[part][k], right[part][k]) for k in left[part]), (unit, part)


def test_gans_side_by_side_give_the_same_gans_as_one_after_another(tmp_path, run_cli, phantom_folder, monkeypatch, pools):
    """Two spawned processes × one thread vs in-process with one thread: bit-identical generators and samples."""
    runs = {}
    for cores, name in ((1, "one_after_another"), (2, "side_by_side")):
        monkeypatch.setattr(ctqc.pool, "available_cores", lambda cores=cores: cores)
        result = run_cli("train", "--config", "smoke", "--data", phantom_folder, "--set", "gan.epochs=3", "--set", "gan.jobs=0")
        assert result.code == 0, result.err
        runs[name] = (tmp_path / "runs" / "latest").resolve()
        assert pools == ([] if cores == 1 else [(2, 1)])
    a, b = runs["one_after_another"], runs["side_by_side"]
    assert a != b
    for unit in ("normal", "haemorrhage"):
        _assert_same_gan(a, b, unit)
    assert _pixels(a / "samples") == _pixels(b / "samples") and len(_pixels(a / "samples")) == 16


def _square_or_fail(x: int) -> int:
    if x == 3:
        raise ValueError("three")
    return x * x


def test_the_pool_returns_every_result_and_raises_a_jobs_error():
    assert sorted(run_unordered(_square_or_fail, iter([0, 1, 2, 4]), workers=2, threads=1)) == [(0, 0), (1, 1), (2, 4), (4, 16)]
    with pytest.raises(ValueError, match="three"):
        list(run_unordered(_square_or_fail, iter(range(6)), workers=2, threads=1))


def test_a_gan_failing_in_its_process_fails_the_stage_in_one_line(tmp_path, run_cli, phantom_folder, monkeypatch, pools):
    """TrainingDiverged raised in a pool process reaches the CLI as it does in-process: one line, exit 2, the run as before."""
    import json

    monkeypatch.setattr(ctqc.pool, "available_cores", lambda: 2)
    result = run_cli("train", "--config", "smoke", "--data", phantom_folder, "--set", "gan.jobs=0", "--set", "gan.log_every=1", "--set", "gan.max_abs_loss=1e-6")
    assert result.code == 2 and pools == [(2, 1)]
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: GAN training diverged at epoch 1"), result.err
    manifest = json.loads(((tmp_path / "runs" / "latest").resolve() / "manifest.json").read_text())
    assert "train" not in manifest["stages"]  # a UserError puts the stage's entry back (ctqc.run.Run.stage)


def test_a_resumed_gan_keeps_the_thread_count_of_the_whole_run(tmp_path, run_cli, phantom_folder, monkeypatch):
    """One of two GANs left to train gets the share of a two-GAN run (1 of 2 cores), not every core: the same GAN as in one go."""
    import shutil

    monkeypatch.setattr(ctqc.pool, "available_cores", lambda: 2)
    assert run_cli("train", "--config", "smoke", "--data", phantom_folder, "--set", "gan.epochs=3", "--set", "gan.jobs=0").code == 0
    whole = (tmp_path / "runs" / "latest").resolve()
    part = whole.parent / "resumed"
    shutil.copytree(whole, part)
    shutil.rmtree(part / "gan" / "fold0" / "haemorrhage")  # as if interrupted before this GAN's first checkpoint
    threads = []
    import ctqc.stages.train as stage

    real_train_job = stage.train_job
    monkeypatch.setattr(stage, "train_job", lambda *a, **kw: threads.append(__import__("torch").get_num_threads()) or real_train_job(*a, **kw))
    resumed = run_cli("train", "--resume", "--run", part)
    assert resumed.code == 0, resumed.err
    assert threads == [1]  # in-process (one GAN left), with the two-GAN run's share of the cores
    _assert_same_gan(whole, part, "haemorrhage")


def test_omp_num_threads_caps_the_cores(monkeypatch):
    from ctqc.pool import available_cores

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    uncapped = available_cores()
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert available_cores() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", "not a number")
    assert available_cores() == uncapped


@pytest.mark.skipif(not sys.platform.startswith("linux") or len(__import__("os").sched_getaffinity(0)) < 2, reason="reads /proc; needs two cores for a pool")
@pytest.mark.parametrize("signame", ["SIGKILL", "SIGINT"])
def test_killing_ctqc_ends_its_gan_processes(tmp_path, phantom_folder, signame):
    """A signal to the ctqc process alone ends its pool processes too: SIGKILL (no orphan keeps writing into the
    unlocked run), SIGINT (the interrupt ends the running GANs at once, not after their 100,000 epochs)."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "2"}
    cmd = [sys.executable, "-m", "ctqc", "-q", "train", "--config", "smoke", "--data", str(phantom_folder), "--set", "gan.jobs=0", "--set", "gan.epochs=100000"]
    # SIGINT back to its default: a shell's background job (e.g. a CI runner) passes it on ignored, and Python then never raises KeyboardInterrupt
    restore = lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)  # noqa: E731
    parent = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=restore)
    children: list[int] = []
    try:
        children = _two_workers(parent.pid, ready=lambda: len(list((tmp_path / "runs").glob("*/gan/fold0/*/stats.jsonl"))) == 2)
        parent.send_signal(getattr(signal, signame))
        parent.wait(timeout=60)
        assert _all_end(children)
    finally:  # leave nothing running, whatever happened
        parent.kill()
        _kill_left(children)


def _two_workers(pid: int, ready=lambda: True) -> list[int]:
    """The two pool workers (``spawn_main``; not multiprocessing's resource tracker) of process ``pid``, once ``ready()``; waits up to 120 s."""
    deadline, workers = time.time() + 120, []
    while time.time() < deadline and not (len(workers) == 2 and ready()):
        time.sleep(0.5)
        workers = [child for child in _children(pid) if b"spawn_main" in _cmdline(child)]
    assert len(workers) == 2, "the pool never started"
    return workers


def _all_end(pids: list[int], seconds: float = 30) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline and any(_alive(pid) for pid in pids):
        time.sleep(0.2)
    return not any(_alive(pid) for pid in pids)


def _kill_left(pids: list[int]) -> None:
    for pid in pids:
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _sleep_long(_: int) -> None:
    time.sleep(600)


def _pool_off_the_main_thread() -> None:
    """A process that starts a pool from a second thread (so its workers use the sentinel watch, not the parent-death signal)."""
    import threading

    threading.Thread(target=lambda: list(run_unordered(_sleep_long, iter([0, 1]), workers=2, threads=1)), daemon=True).start()
    time.sleep(600)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_workers_of_a_pool_started_off_the_main_thread_end_with_their_parent():
    import multiprocessing

    parent = multiprocessing.get_context("spawn").Process(target=_pool_off_the_main_thread)
    parent.start()
    children: list[int] = []
    try:
        children = _two_workers(parent.pid)
        time.sleep(2.0)  # let the workers run their initialiser (the watch thread starts there)
        os.kill(parent.pid, signal.SIGKILL)
        parent.join(30)
        assert _all_end(children)
    finally:
        parent.kill()
        _kill_left(children)


def test_the_progress_reads_the_last_complete_line(tmp_path):
    from ctqc.stages.train import _logged_epoch

    stats = tmp_path / "stats.jsonl"
    assert _logged_epoch(stats) is None  # not written yet
    lines = [f'{{"kind": "loss", "epoch": {e}, "step": {10 * e}, "loss_d": 1.38, "loss_g": 0.69}}' for e in range(200)]  # > 4 KB
    stats.write_text("\n".join(lines) + '\n{"kind": "loss", "epo')  # the last line half written
    assert _logged_epoch(stats) == 199
    stats.write_text('{"kind": "warning", "message": "no epoch"}\n')
    assert _logged_epoch(stats) is None
