"""The per-GAN trainer's numerics are frozen: a fingerprint of its state after a few CPU steps.

Speed work on ``gan/trainer.py`` must keep the per-GAN path bit-identical on the
CPU (issue 17). Two tiny trainings — the default preset's strided DCGAN and the
paper's DCGAN, each with DiffAugment, EMA, D dropout, label smoothing/flips and
instance noise on, fp32, one thread, fixed seed — end in a checkpoint and a
``stats.jsonl``; their SHA-256 and per-tensor sums were recorded in
``tests/data/gan_fingerprint.json`` on main before any speed change.

Floating-point results depend on the CPU's vector unit and torch's version, so
the exact hash (and, to name the tensor that moved, per-tensor sums) is checked
where both match the recording (key ``<cpu capability> torch <major.minor>``);
elsewhere the test is skipped — no tolerance works there, since Adam turns the
rounding noise of gradients that are zero in exact arithmetic into ±lr steps.
Re-record only on unchanged main::

    PYTHONPATH=. python tests/test_gan_fingerprint.py --record
"""

from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path

import pytest
import torch

from ctqc.config import GanConfig
from gan.trainer import load_checkpoint, train_gan

FIXTURE = Path(__file__).parent / "data" / "gan_fingerprint.json"
COMMON = dict(
    batch_size=4, epochs=2, diffaugment="translation,cutout,color", ema_decay=0.99, d_dropout=0.3,
    label_smoothing=0.1, label_flip=0.1, instance_noise=0.1, precision="fp32", channels_last=True,
    log_every=2, quality_every=2, grid_every=100, checkpoint_every=100,
)  # fmt: skip
CASES = {
    "strided": dict(architecture="strided", width=8, **COMMON),  # the default preset's kind of GAN
    "paper": dict(architecture="paper", **COMMON),
}


def _images(n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    base = torch.full((n, 1, 32, 32), -1.0)
    base[:, :, 6:26, 6:26] = torch.rand(n, 1, 20, 20, generator=gen) * 0.6
    return base


def machine_key() -> str:
    major, minor = torch.__version__.split(".")[:2]
    return f"{torch.backends.cpu.get_cpu_capability()} torch {major}.{minor}"


def fingerprint(case: str, out_dir: Path) -> tuple[str, dict[str, float]]:
    """Train the tiny ``case`` on one thread; (SHA-256 of every state tensor and the stats, per-tensor float64 sums)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train_gan(_images(8, 0), GanConfig(**CASES[case]), out_dir, val_images=_images(6, 1), seed=7, device="cpu")
    finally:
        torch.set_num_threads(threads)
    state = load_checkpoint(out_dir / "checkpoints" / "last.pt")
    tensors: dict[str, torch.Tensor] = {}
    for part in ("G", "D", "G_ema"):
        tensors.update({f"{part}.{k}": v for k, v in state[part].items()})
    for part in ("opt_g", "opt_d"):
        for index, slots in state[part]["state"].items():
            tensors.update({f"{part}.{index}.{k}": torch.as_tensor(v) for k, v in slots.items()})
    tensors["rng"], tensors["torch_rng"] = state["rng"], state["torch_rng"]
    digest = hashlib.sha256()
    for name in sorted(tensors):
        digest.update(name.encode())
        digest.update(tensors[name].contiguous().numpy().tobytes())
    digest.update((out_dir / "stats.jsonl").read_bytes())
    sums = {name: float(t.double().sum()) for name, t in sorted(tensors.items()) if t.is_floating_point()}
    return digest.hexdigest(), sums


@pytest.mark.parametrize("case", sorted(CASES))
def test_per_gan_trainer_is_unchanged(tmp_path, case):
    recorded = json.loads(FIXTURE.read_text())[case]
    if machine_key() not in recorded["sha256"]:
        # Other CPU kernels round differently, and Adam turns the rounding noise of gradients that are zero in exact
        # arithmetic (a bias before BatchNorm) into ±lr steps: no tolerance tells that from a real change.
        pytest.skip(f"no fingerprint recorded for {machine_key()!r}: record one on unchanged main with --record")
    digest, sums = fingerprint(case, tmp_path)
    assert sums.keys() == recorded["sums"].keys()
    for name, value in sums.items():  # names the tensor that moved, before the hash says that something did
        assert value == pytest.approx(recorded["sums"][name], rel=1e-4, abs=1e-6), name
    assert digest == recorded["sha256"][machine_key()], "the trainer's numerics changed on this machine kind"


def _record() -> None:
    import tempfile

    data = json.loads(FIXTURE.read_text()) if FIXTURE.exists() else {}
    for case in sorted(CASES):
        with tempfile.TemporaryDirectory() as tmp:
            digest, sums = fingerprint(case, Path(tmp))
        entry = data.setdefault(case, {"sha256": {}, "sums": sums})
        entry["sha256"][machine_key()] = digest
        print(f"{case}: {machine_key()} {digest}")
    FIXTURE.parent.mkdir(exist_ok=True)
    FIXTURE.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    if sys.argv[1:] != ["--record"]:
        sys.exit("usage: PYTHONPATH=. python tests/test_gan_fingerprint.py --record   (on unchanged main only)")
    _record()
