"""The CLI end to end, as a user runs it (real subprocesses)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

CTQC = [sys.executable, "-m", "ctqc"]


def ctqc(*args, cwd):
    return subprocess.run([*CTQC, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=300)


def test_help_and_version_are_fast(tmp_path):
    start = time.perf_counter()
    result = ctqc("--help", cwd=tmp_path)
    elapsed = time.perf_counter() - start
    assert result.returncode == 0 and "demo-data" in result.stdout and "data" in result.stdout
    assert elapsed < 5, f"ctqc --help took {elapsed:.1f}s: a heavy import crept into the CLI module"
    version = ctqc("--version", cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.startswith("ctqc ")
    # importing the CLI must not pull in torch, pandas or sklearn
    probe = subprocess.run([sys.executable, "-c", "import sys, ctqc.cli; print(sorted(m for m in ('torch','pandas','sklearn') if m in sys.modules))"], capture_output=True, text=True)
    assert probe.stdout.strip() == "[]"


def test_demo_data_then_inspect_reports_100_100_and_the_papers_split(tmp_path):
    made = ctqc("demo-data", tmp_path / "d", cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    assert len(list((tmp_path / "d" / "head_ct").glob("*.png"))) == 200
    assert (tmp_path / "d" / "labels.csv").read_text().splitlines()[0] == "id, hemorrhage"
    shown = ctqc("data", "inspect", "--data", tmp_path / "d", "--json", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    report = json.loads(shown.stdout)
    assert report["class_counts"] == {"normal": 100, "haemorrhage": 100}
    split = report["split"]["fold_0"]
    assert [sum(split[r].values()) for r in ("train", "val", "test")] == [144, 34, 22]
    assert report["problems"] == []
    human = ctqc("data", "inspect", "--data", tmp_path / "d", cwd=tmp_path)
    assert "144" in human.stdout and "haemorrhage" in human.stdout and "no problems found" in human.stdout
    assert not (tmp_path / "runs").exists()  # inspect writes nothing


def test_prepare_creates_a_run_and_latest(tmp_path, phantom_folder):
    result = ctqc("data", "prepare", "--data", phantom_folder, "--config", "smoke", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    latest = tmp_path / "runs" / "latest"
    assert latest.is_symlink()
    files = sorted(p.name for p in latest.iterdir() if p.name != ".lock")  # .lock: the run lock (ctqc.runlock)
    assert files == ["config.yaml", "manifest.json", "splits.csv"]
    manifest = json.loads((latest / "manifest.json").read_text())
    assert manifest["stages"]["data"]["status"] == "done"
    assert manifest["data"]["n_images"] == 24 and len(manifest["data"]["fingerprint"]) == 16
    assert str(Path(os.path.realpath(latest))) in result.stdout


def test_user_error_exit_code_and_single_line(tmp_path):
    result = ctqc("data", "inspect", "--data", tmp_path / "missing", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == f"error: data path not found: {tmp_path / 'missing'}"
    usage = ctqc("data", "inspect", "--bogus", cwd=tmp_path)
    assert usage.returncode == 2 and "No such option" in usage.stderr
