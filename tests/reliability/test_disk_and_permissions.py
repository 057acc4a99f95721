"""Disk full, read-only or unwritable outputs: one clear error line, exit 2, no corrupt run.

Disk full and permission errors are simulated inside ctqc's one writer,
:mod:`ctqc.atomic`, with its failpoint (``<glob>:<n>:ENOSPC`` raises that
``OSError`` at the n-th matching write instead of renaming the finished
temporary file): the same place a real full disk would fail. Where the tests
may mount a file system (root), a really full one is used too: a 320 kB tmpfs,
which ``torch.save`` fills in the middle of a checkpoint. "Not writable" also
uses a real obstacle that holds for root and normal users alike: an output path
whose parent is a plain file.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from ctqc import atomic
from tests.conftest import tree_snapshot
from tests.reliability.conftest import assert_every_file_parses, copy_run, light_args, stages, temporaries


@pytest.fixture
def failpoint(monkeypatch):
    """Set ``CTQC_FAILPOINT`` for in-process commands (with fresh hit counts)."""

    def arm(spec: str) -> None:
        monkeypatch.setenv(atomic.FAILPOINT_ENV, spec)
        atomic._failpoint_hits.clear()

    yield arm
    atomic._failpoint_hits.clear()


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.code == 2, (result.code, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: cannot write "), result.err
    assert all(f in lines[0] for f in fragments), lines[0]
    assert "Traceback" not in result.err + result.out


def test_disk_full_during_a_checkpoint_write_leaves_a_resumable_run(tmp_path, run_cli, failpoint):
    failpoint("*/checkpoints/last.pt:1:ENOSPC")
    result = run_cli("-q", "train", *light_args())
    assert_one_line_error(result, "last.pt", "No space left on device")
    run = (tmp_path / "runs" / "latest").resolve()
    assert not (run / "gan" / "fold0" / "normal" / "checkpoints" / "last.pt").exists()  # no partial checkpoint
    assert temporaries(run) == []
    assert "train" not in stages(run)  # refused, not half-done: the manifest is as before the command
    assert_every_file_parses(run)
    failpoint("")
    resumed = run_cli("-q", "train", "--resume")  # space freed: the same run finishes
    assert resumed.code == 0, resumed.err
    assert stages(run)["generate"]["status"] == "done"


@pytest.fixture
def small_disk(tmp_path):
    """A 320 kB tmpfs at ``tmp_path/disk`` (skips where mounting is not allowed); unmounted afterwards."""
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=320k", "tmpfs", str(disk)], capture_output=True)
    if mounted.returncode != 0:
        pytest.skip("cannot mount a small tmpfs here (root only); the failpoint tests simulate the full disk")
    yield disk
    subprocess.run(["umount", str(disk)], check=True)


def test_a_really_full_disk_fails_cleanly_and_resumes_once_space_is_free(tmp_path, run_cli, small_disk):
    result = run_cli("-q", "train", *light_args(f"run.root={small_disk / 'runs'}"))
    assert_one_line_error(result, str(small_disk), "No space left on device")
    run = (small_disk / "runs" / "latest").resolve()
    assert temporaries(small_disk) == []  # the half-written temporary is gone
    assert_every_file_parses(run)
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)  # space freed
    resumed = run_cli("-q", "train", "--resume", "--run", run)
    assert resumed.code == 0, resumed.err
    assert stages(run)["generate"]["status"] == "done"


def test_disk_full_while_refiltering_keeps_the_previous_filter_output(tmp_path, run_cli, failpoint, shared_runs):
    run = copy_run(shared_runs.get("filtered"), tmp_path)
    before = tree_snapshot(tmp_path)
    failpoint("*/filter:1:ENOSPC")
    result = run_cli("filter", "--c2st-threshold", "0.9")
    assert_one_line_error(result, "filter", "No space left on device")
    after = tree_snapshot(tmp_path)
    assert {k: v for k, v in after.items() if not k.startswith(f"runs/{run.name}/qc/features")} == {
        k: v for k, v in before.items() if not k.startswith(f"runs/{run.name}/qc/features")
    }  # filter/, the manifest, everything but the (content-keyed) feature cache exactly as before


def test_disk_full_during_a_compare_unit_keeps_completed_units(tmp_path, run_cli, failpoint, shared_runs):
    run = copy_run(shared_runs.get("trained"), tmp_path)
    failpoint("*/compare/units/*.json:2:ENOSPC")
    result = run_cli("-q", "compare", "--arm", "original", "--seeds", "2", "--jobs", "1")
    assert_one_line_error(result, "compare/units/original__f0__s1.json", "No space left on device")
    assert sorted(p.name for p in (run / "compare" / "units").iterdir()) == ["original__f0__s0.json"]
    assert "compare" not in stages(run) and temporaries(run) == []
    failpoint("")
    resumed = run_cli("compare", "--arm", "original", "--seeds", "2", "--jobs", "1")
    assert resumed.code == 0 and "trained 1, reused 1" in " ".join(resumed.out.split()), resumed.err


@pytest.mark.parametrize(("spec", "reason"), [("*/splits.csv:1:ENOSPC", "No space left on device"), ("*/manifest.json:1:EROFS", "Read-only file system")])
def test_failed_run_creation_leaves_nothing(tmp_path, run_cli, failpoint, spec, reason):
    failpoint(spec)
    result = run_cli("data", "prepare", *light_args())
    assert_one_line_error(result, spec.split(":")[0][2:], reason)
    assert tree_snapshot(tmp_path / "runs") == {}  # not even a hidden temporary run directory


def test_permission_denied_on_the_manifest_changes_nothing(tmp_path, run_cli, failpoint, shared_runs):
    copy_run(shared_runs.get("trained"), tmp_path)
    before = tree_snapshot(tmp_path)
    failpoint("*/manifest.json:1:EACCES")
    result = run_cli("report", "--no-html")
    assert_one_line_error(result, "manifest.json", "Permission denied")
    assert tree_snapshot(tmp_path) == before


def test_output_under_a_plain_file_is_refused_before_any_work(tmp_path, run_cli):
    (tmp_path / "afile").write_text("x")
    result = run_cli("-q", "train", *light_args(f"run.root={tmp_path / 'afile' / 'runs'}"))
    assert result.code == 2 and result.err.startswith("error: cannot write run directories under") and "Not a directory" in result.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


@pytest.mark.skipif(os.geteuid() == 0, reason="file modes do not stop root; the failpoint tests above cover it")
def test_read_only_runs_folder(tmp_path, run_cli):
    (tmp_path / "runs").mkdir(mode=0o555)
    result = run_cli("data", "prepare", *light_args())
    assert result.code == 2 and "cannot write run directories under runs (Permission denied)" in result.err
    assert list((tmp_path / "runs").iterdir()) == []
