"""The device-aware benchmark scripts run on the CPU at tiny settings, and refuse ``--device cuda`` without CUDA."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
SCRIPTS = ("gan_throughput.py", "classifier_throughput.py", "end_to_end.py")


def _run(script: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(BENCH / script), *args], capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)


@pytest.mark.skipif(torch.cuda.is_available(), reason="the refusal applies where CUDA is absent")
@pytest.mark.parametrize("script", SCRIPTS)
def test_device_cuda_is_refused_in_one_line_without_cuda(script):
    result = _run(script, "--device", "cuda")
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().splitlines() == ["--device cuda: no CUDA device is visible to torch on this machine; use --device cpu (or auto)"]


def test_gan_throughput_on_the_cpu():
    result = _run("gan_throughput.py", "--device", "cpu", "--workloads", "default", "--steps", "1", "--warmup", "1", "--rounds", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert any(line.startswith("matrix rate: 1024×1024 bf16 product") for line in lines)
    assert sum("of the bf16 matrix rate" in line for line in lines) == 2  # reference and ctqc
    assert lines[-1].startswith("GAN throughput ratio (ctqc / reference, cpu, median of 1 rounds): default ") and lines[-1].endswith("x")


def test_classifier_throughput_on_the_cpu():
    result = _run("classifier_throughput.py", "--device", "cpu", "--arch", "resnet18", "--rounds", "1", "--precision", "fp32")
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert sum("of the bf16 matrix rate" in line for line in lines) == 2
    assert lines[-1].startswith("classifier throughput ratio (ctqc trainer / reference, cpu, resnet18") and lines[-1].endswith("x")


def test_end_to_end_passes_the_device_and_reads_the_stage_times(tmp_path, monkeypatch, capsys):
    """The pipeline itself is tested elsewhere; here a stand-in run writes the manifest the script reads."""
    monkeypatch.syspath_prepend(str(BENCH))
    end_to_end = importlib.import_module("end_to_end")
    monkeypatch.setattr(end_to_end.devicebench, "matrix_rate", lambda device, dtype=None, size=None, seconds=1.0: 1e9)
    calls, real_run = [], subprocess.run

    def fake_run(command, *args, **kwargs):
        if command[1:3] != ["-m", "ctqc"]:  # e.g. platform's own calls
            return real_run(command, *args, **kwargs)
        calls.append(command)
        manifest = Path(kwargs["cwd"]) / "runs" / "latest" / "manifest.json"
        manifest.parent.mkdir(parents=True)
        manifest.write_text(json.dumps({"stages": {"train": {"seconds": 2.0}, "compare": {"seconds": 1.0}}}))
        return subprocess.CompletedProcess(command, 0, stdout="report: x.html\n", stderr="")

    monkeypatch.setattr(end_to_end.subprocess, "run", fake_run)
    monkeypatch.setattr(sys, "argv", ["end_to_end.py", "--device", "cpu", "--config", "smoke", "--keep", str(tmp_path / "work")])
    end_to_end.main()
    assert len(calls) == 1 and calls[0][-3:] == ["--set", "device=cpu", "--new"]
    out = capsys.readouterr().out.strip().splitlines()
    assert "matrix rate: 1024×1024 bf16 product 1.0 GFLOP/s (fp32: 1.0 GFLOP/s)" in out
    assert any(line.split() == ["train", "2.0"] for line in out)
    assert out[-1].startswith("ctqc run --config smoke on cpu: ") and out[-1].endswith("of the 600 s budget")


def test_out_of_design_defects_change_the_head_only_and_as_stated(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    ood = importlib.import_module("qc_out_of_design")
    from ctqc.config import DataConfig, PhantomConfig
    from ctqc.data import load_dataset

    x = load_dataset(DataConfig(phantom=PhantomConfig(n_per_class=3, size=32))).images
    air = x <= -0.9
    for name, levels in ood.defects(torch.Generator().manual_seed(0), 32).items():
        changes = [(apply(x) - x).abs() for apply in levels.values()]
        assert all(c.mean() > 0 for c in changes), name
        assert changes[0].mean() < changes[1].mean() < changes[2].mean(), name  # stronger is larger
        if name != "motion":  # the smear moves the head's edge into the air; the others leave the air alone
            assert all(c[air].max() == 0 for c in changes), name
    head = x > -0.9
    pulled = ood.contrast(x, 0.5)
    assert torch.allclose((pulled * head).sum(dim=(-2, -1)), (x * head).sum(dim=(-2, -1)), atol=1e-3)  # each head's mean kept
    ring = ood.rings(torch.zeros(1, 1, 32, 32), 0.1, 4)  # an all-head image: circles of ±0.1, nothing else
    assert torch.round(ring * 100).int().unique().tolist() == [-10, 0, 10]
    assert torch.equal(ring, ring.flip(-1)) and torch.equal(ring, ring.transpose(-1, -2))  # centred


def test_out_of_design_bench_runs_at_tiny_settings():
    result = _run("qc_out_of_design.py", "--splits", "2", "--set", "data.phantom.n_per_class=40")
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0].endswith("removed / genuine removed") and lines[1].startswith("features fft+histogram+structure")
    assert [line.split()[0] for line in lines[2:6]] == ["streaks", "rings", "contrast", "motion"]
    assert all(line.count("AUROC") == 3 for line in lines[2:6])
    motion_high = float(lines[5].split("high AUROC ")[1].split(",")[0])
    assert motion_high > 0.9  # a 4-px smear is seen even with 40 images per class and 2 splits


def test_gan_side_by_side_times_both_contenders_from_their_manifests():
    result = _run("gan_side_by_side.py", "--config", "smoke", "--epochs", "1", "--pairs", "2")
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert [line.split(":")[0] for line in lines[2:4]] == ["pair 1", "pair 2"]
    assert lines[-1].startswith("train stage: one after another median ") and " ratio median " in lines[-1]


def test_gan_screen_scores_each_late_epoch_for_both_generators(monkeypatch):
    for extra in ((), ("--z-scale", "1.5")):
        result = _run("gan_screen.py", "--config", "smoke", "--cls", "0", "--evals", "1,2", "--lr-decay", "0.5", *extra)
        assert result.returncode == 0, result.stderr[-2000:]
        rows = [line.split() for line in result.stdout.strip().splitlines()[1:]]
        label = ["lr-decay=0.5", *(["z-scale=1.5"] if extra else [])]
        assert [r[: len(label) + 2] for r in rows] == [[*label, e, g] for e in ("1", "2") for g in ("ema", "raw")]
        assert all(0.0 <= float(v) <= 1.0 for r in rows for v in r[len(label) + 2 : len(label) + 7])
    monkeypatch.syspath_prepend(str(BENCH))
    from gan.networks import build_generator

    screen = importlib.import_module("gan_screen")
    G = build_generator("upsample", z_dim=8, n_classes=0, image_size=32, width=8).eval()
    z = torch.randn(3, 8)
    scaled = screen.ScaledLatent(G, 1.5)
    assert (scaled.z_dim, scaled.image_size) == (8, 32) and torch.equal(scaled(z), G(1.5 * z)) and not torch.equal(scaled(z), G(z))


def test_gan_variants_build_and_screen(monkeypatch, tmp_path):
    from ctqc.config import load_config
    from gan import networks, trainer

    monkeypatch.syspath_prepend(str(BENCH))
    variants = importlib.import_module("gan_variants")
    z = torch.randn(4, 100)

    def built(name):
        torch.manual_seed(0)
        return variants.VariantGenerator(name, 100, 32, 32)

    def count(module, kind):
        return sum(isinstance(m, kind) for m in module.modules())

    plain = built("none")
    for name in variants.G_VARIANTS:
        image = built(name)(z)
        assert image.shape == (4, 1, 32, 32) and image.abs().max() <= 1, name
    # each variant is what its name says, not the plain G
    assert count(built("pixelnorm-g"), torch.nn.BatchNorm2d) == count(built("pixelnorm-g"), torch.nn.BatchNorm1d) == 0
    assert count(built("pixelnorm-g"), variants.PixelNorm) == 4 and count(plain, torch.nn.BatchNorm2d) == 3
    assert count(built("extra-conv-32"), torch.nn.Conv2d) == count(plain, torch.nn.Conv2d) + 1
    assert count(built("noise-all"), variants.NoiseInput) == 3 and count(built("noise-out"), variants.NoiseInput) == 1
    assert count(plain, variants.NoiseInput) == 0
    # noise inputs start at zero weight (StyleGAN): unchanged output at initialisation, changed once the weight moves
    noisy = built("noise-out")
    assert torch.equal(noisy(z), plain(z))
    torch.nn.init.constant_(noisy.out_noise.weight, 0.5)
    assert not torch.equal(noisy(z), plain(z))
    assert not torch.equal(built("skip-g")(z), plain(z))  # the skips add the low-resolution images
    stem = variants.StemDiscriminator(32, 32, 0.4)
    assert stem(torch.randn(4, 1, 32, 32)).shape == (4,) and stem.features[0].stride == (1, 1)
    with pytest.raises(ValueError, match="unknown generator variant"):
        variants.VariantGenerator("skip", 100, 32, 32)

    # installed: ctqc's own trainer builds the variants, and D's Adam gets the lr factor on every resumed call
    for module, name in ((networks, "build_generator"), (trainer, "build_generator"), (trainer, "build_discriminator"), (trainer, "adam")):
        monkeypatch.setattr(module, name, getattr(module, name))  # restored after the test
    for name in ("noise-all", "stem-d", "d-lr-x4"):
        variants.install(name)
    cfg = load_config("smoke", ["gan.architecture=upsample", "gan.width=8", "gan.epochs=2"]).gan
    images = torch.rand(16, 1, 32, 32) * 2 - 1
    for epoch in (1, 2):
        trainer.train_gan(images, cfg, tmp_path, seed=0, device="cpu", resume=True, until_epoch=epoch)
        state = trainer.load_checkpoint(tmp_path / "checkpoints" / "last.pt")
        assert [state[k]["param_groups"][0]["lr"] for k in ("opt_g", "opt_d")] == [cfg.lr, 4 * cfg.lr]
    assert any(key.startswith("blocks.") for key in state["G"])  # the variant G (ctqc's StridedGenerator has "body.")
    assert state["D"]["features.0.weight"].shape[-2:] == (3, 3)  # the stride-1 3 × 3 stem (the strided D starts with 4 × 4)
    assert any(torch.count_nonzero(v) for k, v in state["G"].items() if k.endswith("2.weight") and v.shape[-1] == 1)  # noise weights trained

    # the script: a G variant screened end to end (gan_screen loads its checkpoints with the variant's builder)
    result = _run("gan_variants.py", "--variant", "skip-g", "--config", "smoke", "--set", "gan.architecture=upsample", "--cls", "0", "--evals", "1")
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0] == "variant: skip-g"
    assert [line.split()[:4] for line in lines[2:]] == [["skip-g", "gan.architecture=upsample", "1", g] for g in ("ema", "raw")]
    refused = _run("gan_variants.py", "--variant", "skip-g", "--config", "smoke", "--evals", "1")  # smoke's strided networks
    assert refused.returncode == 2 and refused.stderr.strip().splitlines()[-1].startswith("gan_variants.py: the variants change the default preset's")


def test_precision_effect_compares_both_ways_on_the_same_splits():
    """The 8-bit grid makes a float half and its 8-bit copy indistinguishable: exactly the float-vs-float AUC."""
    result = _run("precision_effect.py", "--config", "smoke", "--features", "histogram", "--splits", "3")
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line.split() for line in result.stdout.strip().splitlines()[2:]]
    assert [r[:2] for r in rows] == [[k, w] for k in ("0", "1") for w in ("as-given", "on-grid")]
    for r in rows:
        base, mixed, diff = float(r[2]), float(r[3]), float(r[4])
        assert 0.0 <= base <= 1.0 and 0.0 <= mixed <= 1.0 and diff == pytest.approx(mixed - base, abs=1e-3)
        if r[1] == "on-grid":
            assert mixed == base and diff == 0.0 and r[6] == "0.000"  # identical features: identical AUC, zero spread
    assert any(float(r[4]) != 0.0 for r in rows if r[1] == "as-given")  # the raw extractors do see the precision
