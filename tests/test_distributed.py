"""Scale-out: `ctqc run` (train and compare data-parallel) under torchrun with two CPU processes (gloo).

Checks that the ranks stay in sync (identical weights at every checkpoint and for
every classifier, although each rank trained on other images), that the outputs
have the expected shapes, and that rank 1 wrote nothing in the working directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from ctqc import distributed as ddp

pytestmark = pytest.mark.slow
PROBE = Path(__file__).with_name("ddp_probe.py")


def _torchrun(args: list[str], cwd: Path, probe_dir: Path) -> subprocess.CompletedProcess:
    launcher = Path(sys.executable).with_name("torchrun")
    command = [str(launcher)] if launcher.exists() else [sys.executable, "-m", "torch.distributed.run"]
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
    env.update(CTQC_PROBE_DIR=str(probe_dir), OMP_NUM_THREADS="1", PYTHONPATH=str(PROBE.parent.parent))
    return subprocess.run(
        [*command, "--standalone", "--nproc_per_node=2", str(PROBE), *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip


def _ranks(probe_dir: Path) -> list[dict]:
    return [json.loads((probe_dir / f"rank{r}.json").read_text()) for r in (0, 1)]


def _inside(paths: list[str], root: Path) -> list[str]:
    root = str(root.resolve())
    return [p for p in paths if os.path.realpath(p).startswith(root)]


def test_torchrun_run_stays_in_sync_and_only_rank0_writes(tmp_path):
    """`ctqc run` under torchrun: train and compare data-parallel, the QC stages and the report on rank 0."""
    if shutil.which("torchrun") is None and not Path(sys.executable).with_name("torchrun").exists():
        pytest.skip("torchrun is not installed")
    work = tmp_path / "work"
    work.mkdir()
    sets = {
        "gan.epochs": 3, "gan.checkpoint_every": 1, "gan.batch_size": 8, "qc.embeddings": "[]",
        "compare.seeds": 1, "compare.arms": "[original,original+synthetic,original+filtered]",
    }  # fmt: skip
    args = ["-q", "run", "--config", "smoke", "--no-selftest", *(a for k, v in sets.items() for a in ("--set", f"{k}={v}"))]
    probe = tmp_path / "probe"
    result = _torchrun(args, work, probe)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert result.stdout.count("report: ") == 1  # printed by rank 0 only

    runs = [p for p in (work / "runs").iterdir() if not p.is_symlink()]
    assert len(runs) == 1, runs  # one run, created by rank 0 only
    run = runs[0]
    stages = json.loads((run / "manifest.json").read_text())["stages"]
    assert all(stages[s]["status"] == "done" for s in ("train", "generate", "filter", "qc", "compare", "report")), stages

    # shapes: both per-class generators make 1×32×32 images; the pool has gan.n_synthetic images
    from gan.sampling import load_generator

    for unit in ("normal", "haemorrhage"):
        G, meta = load_generator(run / "gan" / "fold0" / unit / "checkpoints" / "generator.pt")
        with torch.no_grad():
            images = G(torch.randn(5, meta["z_dim"]), None)
        assert images.shape == (5, 1, 32, 32) and torch.isfinite(images).all()
    assert len(pd.read_csv(run / "samples" / "index.csv")) == 16
    results = pd.read_csv(run / "compare" / "results.csv")
    assert sorted(results["arm"]) == ["original", "original+filtered", "original+synthetic"] and results["accuracy"].between(0, 1).all()
    assert json.loads((run / "compare" / "summary.json").read_text())["torchrun_processes"] == 2

    rank0, rank1 = _ranks(probe)
    assert any(p.endswith("report.html") for p in _inside(rank0["writes"], work))
    assert _inside(rank1["writes"], work) == [], _inside(rank1["writes"], work)[:5]
    # 2 GANs × 3 checkpoints, the same weights on both ranks every time (each rank trained on other images)
    assert len(rank0["gan_states"]) == len(rank1["gan_states"]) == 6
    assert [s["digest"] for s in rank0["gan_states"]] == [s["digest"] for s in rank1["gan_states"]]
    # every classifier training data-parallel and in sync; an arm identical to another (original+filtered when the
    # filter kept nothing is the original arm image for image) is trained once and recorded under both arms
    units = [json.loads(p.read_text()) for p in (run / "compare" / "units").glob("*.json")]
    trained = [u for u in units if "same_training_as" not in u]
    assert len(units) == 3 and len(trained) >= 2
    assert len(rank0["classifier_states"]) == len(rank1["classifier_states"]) == len(trained)
    assert rank0["classifier_states"] == rank1["classifier_states"]


def test_shard_and_context_outside_torchrun(monkeypatch):
    """Without torchrun everything is a no-op: the whole batch, rank 0, one process."""
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    ctx = ddp.context()
    assert (ctx.rank, ctx.world_size, ctx.enabled, ctx.is_main) == (0, 1, False, True)
    assert torch.equal(ddp.shard(torch.arange(7)), torch.arange(7))
    assert ddp.from_main(lambda: 41 + 1) == 42
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "3")
    assert ddp.shard(torch.arange(7)).tolist() == [1, 4]  # every third image from index 1, as DistributedSampler
    monkeypatch.setenv("WORLD_SIZE", "x")
    with pytest.raises(RuntimeError, match="WORLD_SIZE"):
        ddp.context()


@pytest.mark.parametrize("command", ["filter", "qc", "report", "selftest", "generate"])
def test_single_process_commands_refuse_torchrun(run_cli, monkeypatch, command):
    monkeypatch.setenv("WORLD_SIZE", "2")
    result = run_cli(command)
    assert result.code == 2 and "without torchrun" in result.err and result.err.count("\n") == 1
