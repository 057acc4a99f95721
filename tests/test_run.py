"""Run directory: created whole or not at all, manifest bookkeeping, latest link, atomic files."""

import json

import pytest

from ctqc import atomic
from ctqc.config import load_config
from ctqc.errors import UserError
from ctqc.run import Run


def _config(tmp_path, name="t"):
    return load_config("smoke", [f"run.root={tmp_path / 'runs'}", f"name={name}"])


def test_run_is_created_whole_with_manifest_and_latest_link(tmp_path):
    cfg = _config(tmp_path)
    with Run.create(cfg, {"fingerprint": "abc"}) as run:
        assert run.path.name.startswith(".")  # still under its temporary name
        with run.stage("data") as outputs:
            atomic.write_text(run.path / "splits.csv", "x\n")
            outputs.append("splits.csv")
    assert run.path.is_dir() and not run.path.name.startswith(".")
    manifest = run.manifest()
    assert manifest["config_hash"] == cfg.hash() and manifest["data"] == {"fingerprint": "abc"}
    assert manifest["stages"]["data"]["status"] == "done" and manifest["stages"]["data"]["outputs"] == ["splits.csv"]
    assert (run.path / "config.yaml").is_file()
    assert Run.open(None, tmp_path / "runs").path == run.path.resolve()
    assert load_config(run.path / "config.yaml") == cfg


def test_failure_during_creation_leaves_nothing(tmp_path):
    cfg = _config(tmp_path)
    with pytest.raises(RuntimeError):
        with Run.create(cfg, {}) as run:
            (run.path / "half.txt").write_text("partial")
            raise RuntimeError("boom")
    assert list((tmp_path / "runs").iterdir()) == []


def test_two_runs_in_one_second_get_distinct_names_and_latest_follows(tmp_path):
    cfg = _config(tmp_path)
    with Run.create(cfg, {}) as first:
        pass
    with Run.create(cfg, {}) as second:
        pass
    assert first.path != second.path
    assert Run.open(None, tmp_path / "runs").path == second.path.resolve()


def test_failed_stage_is_recorded_and_required_stage_refuses(tmp_path):
    with Run.create(_config(tmp_path), {}) as run:
        pass
    with pytest.raises(ValueError):
        with run.stage("train"):
            raise ValueError("diverged")
    assert run.stage_status("train") == "failed"
    with pytest.raises(UserError, match="stage 'train' has not run; run `ctqc train` first"):
        run.require_stage("train", "ctqc train")


def test_open_errors_name_the_path(tmp_path):
    with pytest.raises(UserError, match="no run found"):
        Run.open(None, tmp_path / "runs")
    (tmp_path / "notarun").mkdir()
    with pytest.raises(UserError, match="not a ctqc run directory"):
        Run.open(tmp_path / "notarun")


def test_atomic_write_keeps_old_content_on_failure(tmp_path):
    target = tmp_path / "manifest.json"
    atomic.write_json(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(target) as tmp:
            tmp.write_text('{"v": 2, "trunc')
            raise RuntimeError("killed mid-write")
    assert json.loads(target.read_text()) == {"v": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["manifest.json"]
