"""GAN networks, losses, augmentation, trainer (resume, divergence), sampling and the train/generate stages."""

import hashlib
import json
import math
import pickle

import pytest
import torch

from ctqc.config import GanConfig
from ctqc.errors import UserError
from gan import losses
from gan.augment import diff_augment, parse_policy
from gan.monitor import kid
from gan.networks import PaperDiscriminator, PaperGenerator, StridedDiscriminator, StridedGenerator, count_parameters
from gan.optim import ema_decay
from gan.sampling import load_generator, sample_pixels
from gan.trainer import TrainingDiverged, load_checkpoint, train_gan


def test_paper_networks_have_the_papers_parameter_counts():
    assert count_parameters(PaperGenerator()) == 4_870_785  # the paper's figure, exactly
    assert count_parameters(PaperDiscriminator()) == 576_129  # the listed layers (paper claims 791,169)


@pytest.mark.parametrize("size", [32, 64])
@pytest.mark.parametrize("resize", [False, True])
def test_generator_output_shape_and_range(size, resize):
    g = StridedGenerator(image_size=size, width=16, resize=resize).eval()
    x = g(torch.randn(5, 100) * 10)
    assert x.shape == (5, 1, size, size) and x.min() >= -1 and x.max() <= 1
    assert any(isinstance(m, torch.nn.ConvTranspose2d) for m in g.modules()) != resize  # resize-conv G: no transposed convs
    d = StridedDiscriminator(image_size=size, width=16)
    assert d(x).shape == (5,)


def test_paper_generator_and_conditional_models():
    x = PaperGenerator().eval()(torch.randn(3, 100))
    assert x.shape == (3, 1, 32, 32) and x.abs().max() <= 1
    g = StridedGenerator(n_classes=3, width=16).eval()
    y = torch.tensor([0, 1, 2])
    z = torch.randn(1, 100).expand(3, 100)
    out = g(z, y)
    assert out.shape == (3, 1, 32, 32)
    assert not torch.allclose(out[0], out[1])  # the class changes the image for the same z
    d = StridedDiscriminator(n_classes=3, width=16)
    assert d(out, y).shape == (3,)
    with pytest.raises(ValueError, match="needs class labels"):
        g(z)
    with pytest.raises(ValueError, match="32×32"):
        PaperGenerator(image_size=64)


def test_losses_known_values():
    zero = torch.zeros(4)
    assert losses.d_loss("bce", zero, zero).item() == pytest.approx(2 * math.log(2))
    assert losses.g_loss("bce", zero).item() == pytest.approx(math.log(2))
    assert losses.d_loss("hinge", torch.full((4,), 2.0), torch.full((4,), -2.0)).item() == 0.0
    assert losses.d_loss("wgan-gp", torch.full((4,), 3.0), torch.ones(4)).item() == -2.0
    # one-sided smoothing raises the loss on confident reals
    big = torch.full((4,), 10.0)
    assert losses.d_loss("bce", big, -big, smoothing=0.1) > losses.d_loss("bce", big, -big)
    x = torch.randn(3, 1, 4, 4, requires_grad=True)
    assert losses.r1_penalty((x**2).sum(dim=(1, 2, 3)), x).item() == pytest.approx((4 * x.detach() ** 2).flatten(1).sum(1).mean().item(), rel=1e-5)


def test_ema_decay_warms_up_to_the_configured_decay():
    cfg = GanConfig(ema_decay=0.999)
    assert ema_decay(cfg, 0) == pytest.approx(0.1)  # the first G step moves the average most of the way
    assert ema_decay(cfg, 2249) == pytest.approx(2250 / 2259)  # the default preset's last step (250 epochs × 9): ~0.9960
    assert ema_decay(cfg, 8989) < 0.999 and ema_decay(cfg, 8990) == ema_decay(cfg, 10**6) == 0.999


def test_diffaugment_keeps_air_black_and_is_differentiable():
    x = torch.full((6, 1, 32, 32), -1.0)
    x[:, :, 8:24, 8:24] = 0.3  # a "head" on black air
    gen = torch.Generator().manual_seed(0)
    out = diff_augment(x, parse_policy("translation,cutout,color"), gen)
    assert out.shape == x.shape and out.min() >= -1 and out.max() <= 1
    assert torch.all(out[:, :, :4, :4] == -1)  # corners far from the head stay air
    air = torch.full((2, 1, 16, 16), -1.0)
    assert torch.equal(diff_augment(air, parse_policy("translation,cutout,color"), gen), air)
    x.requires_grad_(True)
    diff_augment(x, parse_policy("translation,color"), gen).sum().backward()
    assert x.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="unknown DiffAugment policy"):
        parse_policy("rotate")


def test_kid_is_zero_for_one_distribution_and_positive_after_a_shift():
    gen = torch.Generator().manual_seed(0)
    a, b = torch.randn(400, 16, generator=gen).double(), torch.randn(400, 16, generator=gen).double()
    same, shifted = kid(a, b).item(), kid(a, b + 0.5).item()
    assert shifted > 0 and abs(same) < 0.05 * shifted, (same, shifted)


def _images(n=16, size=32, seed=0):
    gen = torch.Generator().manual_seed(seed)
    base = torch.full((n, 1, size, size), -1.0)
    base[:, :, 6:26, 6:26] = torch.rand(n, 1, 20, 20, generator=gen) * 0.6
    return base


TINY = dict(architecture="strided", width=8, batch_size=4, epochs=4, checkpoint_every=1, quality_every=2, grid_every=2, log_every=2, precision="fp32")


@pytest.mark.parametrize("extra", [{}, {"loss": "wgan-gp", "n_critic": 2, "diffaugment": ""}, {"r1_gamma": 1.0, "label_flip": 0.1, "label_smoothing": 0.1, "instance_noise": 0.1}])
def test_resume_is_bit_for_bit(tmp_path, extra):
    cfg = GanConfig(**TINY, **extra)
    x, v = _images(), _images(6, seed=1)
    straight = train_gan(x, cfg, tmp_path / "a", val_images=v, seed=3)
    half = train_gan(x, cfg, tmp_path / "b", val_images=v, seed=3, until_epoch=2)
    assert half.epochs == 2 and not (tmp_path / "b" / "checkpoints" / "generator.pt").exists()
    resumed = train_gan(x, cfg, tmp_path / "b", val_images=v, seed=3)
    assert resumed.epochs == straight.epochs == 4
    a = load_checkpoint(tmp_path / "a" / "checkpoints" / "last.pt")
    b = load_checkpoint(tmp_path / "b" / "checkpoints" / "last.pt")
    for part in ("G", "D", "G_ema"):
        for key in a[part]:
            assert torch.equal(a[part][key], b[part][key]), (part, key)
    stats_a = (tmp_path / "a" / "stats.jsonl").read_text()
    assert stats_a == (tmp_path / "b" / "stats.jsonl").read_text()
    kinds = {json.loads(line)["kind"] for line in stats_a.splitlines()}
    assert {"loss", "quality"} <= kinds
    assert sorted(p.name for p in (tmp_path / "a" / "grids").iterdir()) == ["epoch_00002.png", "epoch_00004.png"]


def test_upsample_architecture_checkpoint_loads_and_samples(tmp_path):
    cfg = GanConfig(**{**TINY, "architecture": "upsample", "epochs": 2})
    result = train_gan(_images(), cfg, tmp_path, seed=0)
    G, meta = load_generator(result.generator_path)
    assert meta["architecture"] == "upsample" and not any(isinstance(m, torch.nn.ConvTranspose2d) for m in G.modules())
    state = load_checkpoint(result.generator_path)["G"]
    assert all(torch.equal(state[k], v) for k, v in G.state_dict().items())  # the saved EMA weights, not a fresh init
    a, b = sample_pixels(G, 6, seed=4), sample_pixels(G, 6, seed=4)
    assert a.shape == (6, 32, 32) and a.dtype == torch.uint8 and torch.equal(a, b)


def test_nan_stops_training_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    cfg = GanConfig(**TINY)
    x = _images()
    train_gan(x, cfg, tmp_path, seed=0, until_epoch=2)
    last = tmp_path / "checkpoints" / "last.pt"
    good = last.read_bytes()
    real_g_loss = losses.g_loss
    monkeypatch.setattr(losses, "g_loss", lambda kind, fake: real_g_loss(kind, fake) * float("nan"))
    with pytest.raises(TrainingDiverged, match=r"diverged at epoch 3.*loss_[dg]=nan.*last good checkpoint kept"):
        train_gan(x, cfg, tmp_path, seed=0)
    assert last.read_bytes() == good
    assert load_checkpoint(last)["epoch"] == 2


def test_checkpoints_refuse_pickled_code(tmp_path):
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    bad = tmp_path / "evil.pt"
    bad.write_bytes(pickle.dumps({"meta": Evil()}))
    with pytest.raises(UserError, match="not a loadable ctqc checkpoint"):
        load_checkpoint(bad)
    torch.save({"G": Evil()}, tmp_path / "evil2.pt")
    with pytest.raises(UserError, match="unsafe"):
        load_checkpoint(tmp_path / "evil2.pt")


def _digest(folder):
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def test_train_and_generate_cli_on_demo_data(tmp_path, run_cli, phantom_folder):
    result = run_cli("-q", "train", "--config", "smoke", "--data", phantom_folder)
    assert result.code == 0, result.err
    run = (tmp_path / "runs" / "latest").resolve()
    for unit in ("normal", "haemorrhage"):
        unit_dir = run / "gan" / "fold0" / unit
        assert (unit_dir / "checkpoints" / "last.pt").is_file() and (unit_dir / "checkpoints" / "generator.pt").is_file()
        assert (unit_dir / "stats.jsonl").stat().st_size > 0 and any((unit_dir / "grids").glob("*.png"))
    samples = run / "samples"
    import pandas as pd
    from PIL import Image

    index = pd.read_csv(samples / "index.csv")
    assert len(index) == 16 and set(index["class"]) == {"normal", "haemorrhage"} and index["synthetic"].eq(1).all()
    first = Image.open(samples / index["file"][0])
    assert first.size == (32, 32) and first.mode == "L" and first.text["ctqc:synthetic"] == "true"
    assert first.text["ctqc:checkpoint"].endswith("generator.pt") and first.text["ctqc:seed"].isdigit()
    assert index["file"].str.match(r"syn_(normal|haemorrhage)_0_\d{5}\.png").all()
    before = _digest(samples)
    again = run_cli("-q", "generate")
    assert again.code == 0, again.err
    assert _digest(samples) == before  # bit-for-bit from the same seed
    other = run_cli("-q", "generate", "--n", "3", "--per-class", "--seed", "9")
    assert other.code == 0
    index = pd.read_csv(samples / "index.csv")
    assert index["class"].value_counts().to_dict() == {"normal": 3, "haemorrhage": 3}
    manifest = json.loads((run / "manifest.json").read_text())
    assert [manifest["stages"][s]["status"] for s in ("data", "train", "generate")] == ["done"] * 3


def test_conditional_mode_trains_one_gan(tmp_path, run_cli, phantom_folder):
    result = run_cli("-q", "train", "--config", "smoke", "--data", phantom_folder, "--set", "gan.mode=conditional", "--set", "gan.epochs=1")
    assert result.code == 0, result.err
    run = (tmp_path / "runs" / "latest").resolve()
    assert [p.name for p in (run / "gan" / "fold0").iterdir()] == ["conditional"]
    assert len(list((run / "samples").glob("syn_*.png"))) == 16


def test_generate_refuses_a_run_without_training(tmp_path, run_cli, phantom_folder):
    assert run_cli("data", "prepare", "--data", phantom_folder, "--config", "smoke").code == 0
    result = run_cli("generate")
    assert result.code == 2 and "stage 'train' has not run; run `ctqc train` first" in result.err


def test_kfold_trains_one_gan_set_per_fold_and_resume_continues_a_run(tmp_path, run_cli):
    args = ["-q", "train", "--config", "smoke", "--set", "split.scheme=kfold", "--set", "split.folds=3", "--set", "gan.epochs=1"]
    assert run_cli(*args).code == 0
    run = (tmp_path / "runs" / "latest").resolve()
    assert sorted(p.name for p in (run / "gan").iterdir()) == ["fold0", "fold1", "fold2"]
    import pandas as pd

    index = pd.read_csv(run / "samples" / "index.csv")
    assert sorted(index["fold"].unique()) == [0, 1, 2] and (index.groupby("fold").size() == 16).all()
    # every fold's GANs were trained on that fold's training images only
    splits = pd.read_csv(run / "splits.csv", dtype={"id": str})
    for fold in range(3):
        ckpt = load_checkpoint(run / "gan" / f"fold{fold}" / "normal" / "checkpoints" / "generator.pt")
        n_train = ((splits["fold"] == fold) & (splits["role"] == "train") & (splits["class"] == "normal")).sum()
        assert ckpt["meta"]["description"] == {"fold": fold, "unit": "normal", "class_key": 0, "n_train": int(n_train)}
    before = {p.name: p.read_bytes() for p in (run / "samples").iterdir()}
    resumed = run_cli("-q", "train", "--resume")
    assert resumed.code == 0, resumed.err
    assert {p.name: p.read_bytes() for p in (run / "samples").iterdir()} == before  # finished GANs are not retrained
    assert run_cli("train", "--resume", "--set", "gan.epochs=3").code == 2
