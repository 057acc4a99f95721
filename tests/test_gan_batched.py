"""GANs trained together (gan/grouped.py, gan/batched.py): equivalence with the per-GAN trainer, checkpoints, resume, stage wiring.

Tolerances. The grouped networks run other kernels than K separate ones (one
grouped convolution, one batched matrix product), so results agree up to
floating-point summation order, not bit for bit:

- one forward of the grouped networks in fp32: outputs within ``rtol=1e-4`` of
  the per-model ones (``FP32_RTOL``); in float64 outputs, gradients and BatchNorm
  statistics within ``rtol=1e-9`` (fp32 gradients through BatchNorm at batch 5
  cancel too much for a bound tighter than a few per cent);
- whole training runs are compared in float64 (``TRAIN_ATOL``: max |Δ| of every
  weight, buffer and Adam moment ≤ 1e-7 after 12–16 steps; measured ≤ 2e-8). In
  fp32 Adam turns the rounding noise of gradients that are zero in exact arithmetic
  (a bias followed by BatchNorm) into updates of ±lr, so fp32 weights of the two
  paths differ by up to about 2·lr per step on such parameters and nothing finer
  can be promised there; float64 removes that noise and tests the algorithm.

RNG streams are compared bit for bit: equal final generator states prove that
both paths drew the same permutations, z, augmentations, noise, flips and dropout masks.
"""

import json

import pytest
import torch
from torch import nn

from ctqc.config import GanConfig
from ctqc.errors import UserError
from gan import losses, monitor, networks
from gan.batched import GanJob, check_groupable, train_gans_together
from gan.grouped import GROUPED_ARCHITECTURES, GroupedDiscriminator, GroupedGenerator, group_layer
from gan.networks import build_discriminator, build_generator
from gan.sampling import load_generator, sample
from gan.trainer import TrainingDiverged, load_checkpoint, train_gan

FP32_RTOL = 1e-4
TRAIN_ATOL = 1e-7
TINY = dict(architecture="strided", width=8, batch_size=4, epochs=4, checkpoint_every=1, quality_every=2, grid_every=2, log_every=2, precision="fp32")


def _images(n=16, size=32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    base = torch.full((n, 1, size, size), -1.0)
    base[:, :, 6:26, 6:26] = torch.rand(n, 1, 20, 20, generator=gen) * 0.6
    return base


@pytest.mark.parametrize("architecture", GROUPED_ARCHITECTURES)
@pytest.mark.parametrize("n_classes", [0, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_grouped_networks_match_per_model_networks(monkeypatch, architecture, n_classes, dtype):
    monkeypatch.setattr(networks, "PAPER_WIDTH", 16)  # the paper's layers, 8× narrower: seconds, not minutes
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        _compare_networks(architecture, n_classes, exact=dtype == torch.float64)
    finally:
        torch.set_default_dtype(previous)


def _compare_networks(architecture, n_classes, exact):
    """One forward and backward of 2 grouped G+D against 2 per-model ones (dropout masks from the same seeds)."""
    torch.manual_seed(0)
    kw = dict(n_classes=n_classes, image_size=32, width=8)
    Gs = [build_generator(architecture, z_dim=16, **kw) for _ in range(2)]
    Ds = [build_discriminator(architecture, dropout=0.4, **kw) for _ in range(2)]
    for d in Ds:
        if d.project is not None:
            nn.init.normal_(d.project.weight, std=0.01)  # zero at init: make the projection term count
    G, D = GroupedGenerator(2, Gs[0]), GroupedDiscriminator(2, Ds[0])
    G.load_stacked([g.state_dict() for g in Gs])
    D.load_stacked([d.state_dict() for d in Ds])
    for k in range(2):  # the round trip is an exact copy
        assert all(torch.equal(G.unstacked(k)[key], value) for key, value in Gs[k].state_dict().items())
    z = torch.randn(5, 2, 16)
    y = torch.randint(0, 3, (5, 2)) if n_classes else None
    seeds = (11, 12)
    D.set_dropout_generators([torch.Generator().manual_seed(s) for s in seeds])
    out = D(G(z, y), y)
    out.sum().backward()
    refs = []
    for k in range(2):
        yk = None if y is None else y[:, k]
        torch.manual_seed(seeds[k])  # the per-model Dropout draws from the global RNG
        refs.append(Ds[k](Gs[k](z[:, k], yk), yk))
        refs[-1].sum().backward()
    tol = dict(rtol=1e-9, atol=1e-12) if exact else dict(rtol=FP32_RTOL, atol=1e-5)
    torch.testing.assert_close(out, torch.stack(refs, dim=1), **tol)
    if not exact:  # fp32 gradients through BatchNorm at batch 5 cancel too much for a tight bound
        return
    for grouped, models in ((G, Gs), (D, Ds)):
        for k, model in enumerate(models):
            own, buffers = dict(model.named_parameters()), dict(model.named_buffers())
            for name, p in grouped.named_parameters():
                torch.testing.assert_close(p.grad[k], own[name].grad, **tol, msg=lambda m, name=name: f"{name}: {m}")
            for name, b in grouped.named_buffers():  # BatchNorm running statistics stay per model
                torch.testing.assert_close(b[k], buffers[name], **tol)


@pytest.fixture
def float64(monkeypatch):
    """Training in float64; the quality monitor keeps its fp32 feature net."""
    init = monitor.QualityMonitor.__init__

    def fp32_init(self, *args, **kwargs):
        torch.set_default_dtype(torch.float32)
        try:
            init(self, *args, **kwargs)
        finally:
            torch.set_default_dtype(torch.float64)

    monkeypatch.setattr(monitor.QualityMonitor, "__init__", fp32_init)
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(previous)


def _jobs(tmp_path, sizes, conditional=False, name="together"):
    jobs = []
    for i, n in enumerate(sizes):
        labels = torch.arange(n) % 2 if conditional else None
        jobs.append(GanJob(_images(n, seed=i), tmp_path / name / f"unit{i}", labels=labels, n_classes=2 if conditional else 0, val_images=_images(6, seed=9), seed=10 + i))
    return jobs


def _alone(job, cfg, root, **kw):
    return train_gan(job.images, cfg, root / job.out_dir.name, labels=job.labels, n_classes=job.n_classes, val_images=job.val_images, seed=job.seed, **kw)


def _assert_same_training(a_dir, b_dir, atol):
    """Two units' final states: RNG streams bit for bit, counters equal, tensors within ``atol``."""
    a, b = load_checkpoint(a_dir / "checkpoints" / "last.pt"), load_checkpoint(b_dir / "checkpoints" / "last.pt")
    assert (a["epoch"], a["step"]) == (b["epoch"], b["step"])
    for stream in ("rng", "perm_rng", "torch_rng"):
        assert torch.equal(a[stream], b[stream]), stream
    for part in ("G", "D", "G_ema"):
        assert a[part].keys() == b[part].keys()
        for key in a[part]:
            if a[part][key].is_floating_point():
                torch.testing.assert_close(a[part][key], b[part][key], rtol=0, atol=atol, msg=lambda m, where=f"{part}.{key}": f"{where}: {m}")
            else:
                assert torch.equal(a[part][key], b[part][key]), (part, key)
    for opt in ("opt_g", "opt_d"):
        assert a[opt]["param_groups"] == b[opt]["param_groups"] and a[opt]["state"].keys() == b[opt]["state"].keys()
        for i, state in a[opt]["state"].items():
            assert torch.equal(state["step"], b[opt]["state"][i]["step"])
            for key in ("exp_avg", "exp_avg_sq"):
                torch.testing.assert_close(state[key], b[opt]["state"][i][key], rtol=0, atol=atol)
    assert a["meta"] == b["meta"]
    lines_a = [json.loads(line) for line in (a_dir / "stats.jsonl").read_text().splitlines()]
    lines_b = [json.loads(line) for line in (b_dir / "stats.jsonl").read_text().splitlines()]
    assert [(r["kind"], r.get("step"), r["epoch"]) for r in lines_a] == [(r["kind"], r.get("step"), r["epoch"]) for r in lines_b]
    for ra, rb in zip(lines_a, lines_b):
        for key, value in ra.items():
            if isinstance(value, float):
                assert value == pytest.approx(rb[key], rel=1e-5, abs=1e-9), key
    assert sorted(p.name for p in (a_dir / "grids").iterdir()) == sorted(p.name for p in (b_dir / "grids").iterdir())


@pytest.mark.parametrize(
    "extra,sizes,conditional",
    [
        ({}, (16, 12), False),  # epochs of 4 and 3 steps: the short one leaves the group first
        ({"loss": "wgan-gp", "n_critic": 2, "diffaugment": ""}, (16, 16), False),
        ({"r1_gamma": 1.0, "label_flip": 0.1, "label_smoothing": 0.1, "instance_noise": 0.1}, (16, 16), True),
        ({"architecture": "upsample"}, (16, 16), False),  # the default preset's resize-convolution G
    ],
)
def test_training_together_matches_training_alone(tmp_path, float64, extra, sizes, conditional):
    cfg = GanConfig(**{**TINY, **extra})
    jobs = _jobs(tmp_path, sizes, conditional)
    for job in jobs:
        _alone(job, cfg, tmp_path / "alone")
    results = train_gans_together(jobs, cfg, device="cpu")
    assert [r.steps for r in results] == [4 * (n // 4) for n in sizes]
    for job in jobs:
        _assert_same_training(tmp_path / "alone" / job.out_dir.name, job.out_dir, TRAIN_ATOL)
        assert (job.out_dir / "checkpoints" / "generator.pt").is_file()


def test_checkpoints_load_sample_and_resume(tmp_path, float64):
    cfg = GanConfig(**TINY)
    straight = _jobs(tmp_path, (16, 16), name="straight")
    train_gans_together(straight, cfg, device="cpu")
    chunked = _jobs(tmp_path, (16, 16), name="chunked")
    half = train_gans_together(chunked, cfg, device="cpu", until_epoch=2)
    assert [r.epochs for r in half] == [2, 2] and not (chunked[0].out_dir / "checkpoints" / "generator.pt").exists()
    train_gans_together(chunked, cfg, device="cpu")
    for a, b in zip(straight, chunked):  # the same group both times: bit for bit
        sa, sb = load_checkpoint(a.out_dir / "checkpoints" / "last.pt"), load_checkpoint(b.out_dir / "checkpoints" / "last.pt")
        for part in ("G", "D", "G_ema"):
            assert all(torch.equal(sa[part][key], sb[part][key]) for key in sa[part]), part
        assert (a.out_dir / "stats.jsonl").read_text() == (b.out_dir / "stats.jsonl").read_text()
        G, meta = load_generator(b.out_dir / "checkpoints" / "generator.pt")
        assert meta["seed"] == b.seed
        images = sample(G, 5, seed=1)
        assert images.shape == (5, 1, 32, 32) and images.abs().max() <= 1
    # half-way checkpoints written together continue under the per-GAN trainer (and match it)
    mixed = _jobs(tmp_path, (16, 12), name="mixed")
    train_gans_together(mixed, cfg, device="cpu", until_epoch=2)
    for job in mixed:
        train_gan(job.images, cfg, job.out_dir, val_images=job.val_images, seed=job.seed)
        _alone(job, cfg, tmp_path / "alone")
        _assert_same_training(tmp_path / "alone" / job.out_dir.name, job.out_dir, TRAIN_ATOL)
    # and the other way: half-way checkpoints of the per-GAN trainer continue in a group (and match it);
    # one of them nudged, so that a group that silently restarted instead of resuming would fail.
    # unit0 and unit1 have the inputs (images, sizes, seeds) of the `mixed` units above, whose alone/ runs serve here
    begun = _jobs(tmp_path, (16, 12, 16), name="begun")
    for job in begun:
        assert train_gan(job.images, cfg, job.out_dir, val_images=job.val_images, seed=job.seed, until_epoch=2).epochs == 2
    nudged = begun[2].out_dir / "checkpoints" / "last.pt"
    state = load_checkpoint(nudged)
    state["G"] = {key: value + 0.01 if value.is_floating_point() else value for key, value in state["G"].items()}
    torch.save(state, nudged)
    assert [r.epochs for r in train_gans_together(begun, cfg, device="cpu")] == [cfg.epochs] * 3
    for job in begun[:2]:
        _assert_same_training(tmp_path / "alone" / job.out_dir.name, job.out_dir, TRAIN_ATOL)
    _alone(begun[2], cfg, tmp_path / "alone")
    with pytest.raises(AssertionError, match=r"^G\."):  # the same run but for the nudge: G differs first
        _assert_same_training(tmp_path / "alone" / begun[2].out_dir.name, begun[2].out_dir, TRAIN_ATOL)


def test_a_group_refuses_what_it_cannot_batch():
    with pytest.raises(UserError, match=r"supports gan.architecture paper, strided, upsample, not 'resnet'; unset gan.train_together"):
        check_groupable(GanConfig.model_construct(architecture="resnet"))
    with pytest.raises(UserError, match="cannot group the layer GRU"):
        group_layer(2, nn.GRU(4, 4))
    with pytest.raises(UserError, match="not Linear"):
        GroupedGenerator(2, nn.Linear(2, 2))


def test_train_stage_together_writes_the_same_files(tmp_path, run_cli, phantom_folder):
    args = ["-q", "train", "--config", "smoke", "--data", phantom_folder, "--set", "split.scheme=kfold", "--set", "split.folds=2", "--set", "gan.epochs=1"]
    runs = {}
    for together in ("false", "true"):
        result = run_cli(*args, "--set", f"gan.train_together={together}")
        assert result.code == 0, result.err
        runs[together] = (tmp_path / "runs" / "latest").resolve()
    alone, together = runs["false"], runs["true"]
    assert alone != together

    def files(run):
        return sorted(str(p.relative_to(run)) for p in (run / "gan").rglob("*") if p.is_file())

    assert files(alone) == files(together) and len([f for f in files(alone) if f.endswith("generator.pt")]) == 4
    manifest = [json.loads((run / "manifest.json").read_text())["stages"]["train"]["outputs"] for run in (alone, together)]
    assert manifest[0] == manifest[1]
    for path in files(alone):
        if path.endswith(".pt"):
            a, b = load_checkpoint(alone / path), load_checkpoint(together / path)
            assert (a["epoch"], a["step"], a["meta"]["description"], a["meta"]["seed"]) == (b["epoch"], b["step"], b["meta"]["description"], b["meta"]["seed"])
            assert b["meta"]["config"]["train_together"] and not a["meta"]["config"]["train_together"]
    assert sorted(p.name for p in (alone / "samples").iterdir()) == sorted(p.name for p in (together / "samples").iterdir())


def test_a_diverging_gan_stops_the_group_naming_its_unit(tmp_path, monkeypatch):
    cfg = GanConfig(**TINY)
    jobs = _jobs(tmp_path, (16, 16))
    train_gans_together(jobs, cfg, device="cpu", until_epoch=2, progress=True)
    good = [(job.out_dir / "checkpoints" / "last.pt").read_bytes() for job in jobs]
    real_g_loss = losses.g_loss
    monkeypatch.setattr(losses, "g_loss", lambda kind, fake: real_g_loss(kind, fake) * float("nan"))
    with pytest.raises(TrainingDiverged, match=rf"{jobs[0].out_dir}: GAN training diverged at epoch 3.*last good checkpoint kept"):
        train_gans_together(jobs, cfg, device="cpu")
    assert [(job.out_dir / "checkpoints" / "last.pt").read_bytes() for job in jobs] == good
