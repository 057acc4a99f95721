"""`ctqc run`: all stages in one run directory; killed mid-way, a re-run finishes without redoing work."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

LIGHT = [
    "--config", "smoke", "--no-selftest",
    "--set", "qc.metric_features=inception-bf16", "--set", "qc.n_bootstrap=20", "--set", "qc.embeddings=[]",
    "--set", "compare.seeds=1", "--set", "compare.arms=[original,original+synthetic]",
]  # fmt: skip


def _stages(run: Path) -> dict:
    return json.loads((run / "manifest.json").read_text())["stages"]


@pytest.mark.slow
def test_killed_run_resumes_at_the_first_unfinished_stage(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    cmd = [sys.executable, "-m", "ctqc", "run", *LIGHT]
    first = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
    latest = tmp_path / "runs" / "latest"
    deadline = time.time() + 240
    while time.time() < deadline:  # kill as soon as the score stage (the filter's fitting) has started
        if latest.exists() and _stages(latest.resolve()).get("score", {}).get("status") == "running":
            break
        assert first.poll() is None, first.stderr.read().decode()
        time.sleep(0.2)
    else:
        pytest.fail("the score stage never started")
    os.killpg(first.pid, signal.SIGKILL)
    first.wait()
    run = latest.resolve()
    before = _stages(run)
    assert before["train"]["status"] == "done" and before["score"]["status"] == "running"

    second = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=280)
    assert second.returncode == 0, second.stderr
    out = " ".join(second.stdout.split())  # rich wraps long paths
    assert "resuming" in out and "already done: train, generate" in out
    assert f"report: {run / 'report' / 'report.html'}" in "".join(second.stdout.split("\n"))
    after = _stages(run)
    assert [p.name for p in (tmp_path / "runs").iterdir() if p.name != "latest"] == [run.name]  # no second run
    for stage in ("data", "train", "generate"):
        assert after[stage]["started"] == before[stage]["started"], stage  # not redone
    for stage in ("score", "filter", "qc", "compare", "report"):
        assert after[stage]["status"] == "done", stage
    assert (run / "report" / "report.html").stat().st_size > 10_000
    assert (run / "compare" / "results.csv").is_file() and (run / "qc" / "metrics.json").is_file()


def test_one_run_loads_the_data_once(run_cli, monkeypatch):
    """`ctqc run --config smoke` (every stage, self-test included) decodes the real images exactly once."""
    from ctqc.data import sources

    original = sources.load_dataset
    calls = []

    def counted(*args, **kwargs):
        calls.append(args[0].path if args else kwargs.get("cfg"))
        return original(*args, **kwargs)

    for module in list(sys.modules.values()):  # every module that imported the function by name
        if getattr(module, "load_dataset", None) is original:
            monkeypatch.setattr(module, "load_dataset", counted)
    light = [a for a in LIGHT if a != "--no-selftest"] + ["--set", "qc.n_permutations=10"]
    result = run_cli("run", *light)
    assert result.code == 0, result.err
    run = Path("runs/latest").resolve()
    stages = _stages(run)
    assert all(stages[s]["status"] == "done" for s in ("train", "generate", "score", "filter", "qc", "selftest", "compare", "report"))
    assert len(calls) == 1, calls
    # the run ends with its verdict at a glance: the filter's operating point, the comparisons (no primary one without
    # the filtered arm and its controls), and the report's path last
    tail = result.out[result.out.index("At a glance") :].splitlines()
    summary = json.loads((run / "compare" / "summary.json").read_text())
    line = next(c["line"] for c in summary["comparisons"] if c["metric"] == "balanced_accuracy")
    assert tail[1].startswith("  filter: kept ") and "at C2ST threshold 0.6" in tail[1]
    assert any("no primary comparison" in t for t in tail) and any(line in t for t in tail)
    assert tail[-1].startswith("report: ") and tail[-1].endswith(f"{run.name}/report/report.html")
