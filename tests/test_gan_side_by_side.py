"""The train stage's GANs side by side (``gan.jobs``): the same GANs as one after another, threads set by the run's GANs."""

import hashlib

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


def _pixels(folder):
    """Each sample's pixels (the PNGs' text names the run's checkpoint path, which differs)."""
    from PIL import Image

    return {p.name: hashlib.sha256(Image.open(p).tobytes()).hexdigest() for p in sorted(folder.glob("*.png"))}


def test_gans_side_by_side_give_the_same_gans_as_one_after_another(tmp_path, run_cli, phantom_folder, monkeypatch):
    """Two spawned processes × one thread vs in-process with one thread: bit-identical generators and samples."""
    import torch

    import ctqc.stages.train as stage

    pools = []
    monkeypatch.setattr(stage, "run_unordered", lambda fn, queue, workers, threads: pools.append((workers, threads)) or run_unordered(fn, queue, workers, threads))
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
        left = torch.load(a / "gan" / "fold0" / unit / "checkpoints" / "last.pt", weights_only=True)
        right = torch.load(b / "gan" / "fold0" / unit / "checkpoints" / "last.pt", weights_only=True)
        for part in ("G", "D", "G_ema"):
            assert left[part].keys() == right[part].keys()
            assert all(torch.equal(left[part][k], right[part][k]) for k in left[part]), (unit, part)
    assert _pixels(a / "samples") == _pixels(b / "samples") and len(_pixels(a / "samples")) == 16


def _square_or_fail(x: int) -> int:
    if x == 3:
        raise ValueError("three")
    return x * x


def test_the_pool_returns_every_result_and_raises_a_jobs_error():
    assert sorted(run_unordered(_square_or_fail, iter([0, 1, 2, 4]), workers=2, threads=1)) == [(0, 0), (1, 1), (2, 4), (4, 16)]
    with pytest.raises(ValueError, match="three"):
        list(run_unordered(_square_or_fail, iter(range(6)), workers=2, threads=1))


def test_a_gan_failing_in_its_process_fails_the_stage_in_one_line(tmp_path, run_cli, phantom_folder, monkeypatch):
    """TrainingDiverged raised in a pool process reaches the CLI as it does in-process: one line, exit 2, the run as before."""
    import json

    monkeypatch.setattr(ctqc.pool, "available_cores", lambda: 2)
    result = run_cli("train", "--config", "smoke", "--data", phantom_folder, "--set", "gan.jobs=0", "--set", "gan.log_every=1", "--set", "gan.max_abs_loss=1e-6")
    assert result.code == 2
    assert result.err.strip().splitlines() == [line for line in result.err.strip().splitlines() if line.startswith("error: GAN training diverged at epoch 1")]
    assert "Traceback" not in result.err
    manifest = json.loads(((tmp_path / "runs" / "latest").resolve() / "manifest.json").read_text())
    assert "train" not in manifest["stages"]  # a UserError puts the stage's entry back (ctqc.run.Run.stage)
