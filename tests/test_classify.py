"""classify/: ResNet builds, augmentation, metrics, statistics, and a tiny training run."""

import copy
import math

import numpy as np
import pytest
import torch

from classify.augment import classical_augment
from classify.metrics import classification_metrics
from classify.models import MatmulConv2d, PretrainedWeightsMissing, build_classifier, count_parameters, use_matmul_convs
from classify.stats import mean_ci, paired_difference
from classify.training import FusedRMSprop, fit_classifier, needs_balancing, predict_proba
from ctqc.config import ClassifierConfig
from ctqc.errors import UserError

# ------------------------------------------------------------------------- models


@pytest.mark.parametrize("arch", ["resnet50", "resnet18"])
@pytest.mark.parametrize("stem", ["paper", "cifar"])
def test_resnet_one_channel_two_classes(arch, stem):
    torch.manual_seed(0)
    model = build_classifier(arch, 2, stem=stem, dropout=0.4).eval()
    assert model.conv1.in_channels == 1
    if stem == "paper":
        assert model.conv1.kernel_size == (7, 7) and model.conv1.stride == (2, 2) and isinstance(model.maxpool, torch.nn.MaxPool2d)
    else:
        assert model.conv1.kernel_size == (3, 3) and model.conv1.stride == (1, 1) and isinstance(model.maxpool, torch.nn.Identity)
    dropout, linear = model.fc
    assert isinstance(dropout, torch.nn.Dropout) and dropout.p == 0.4
    assert linear.out_features == 2
    size = 32 if stem == "paper" else 16  # the cifar stem keeps full resolution: 16 px is enough to check shapes
    with torch.no_grad():
        out = model(torch.zeros(3, 1, size, size))
    assert out.shape == (3, 2) and torch.isfinite(out).all()


def test_resnet50_parameter_count_and_k_classes():
    # torchvision's ResNet-50 has 25,557,032 parameters: conv1 loses 2 of its 3 input channels
    # (-6,272) and the 1000-way fc becomes a 2-way one (2048·2 + 2 instead of 2048·1000 + 1000).
    model = build_classifier("resnet50", 2)
    assert count_parameters(model) == 25_557_032 - 2 * 64 * 49 - (2048 * 1000 + 1000) + (2048 * 2 + 2)
    assert build_classifier("resnet18", 5, stem="cifar").fc[1].out_features == 5


def test_pretrained_fails_offline_without_downloading(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", lambda *a, **k: pytest.fail("must not download"))
    with pytest.raises(PretrainedWeightsMissing) as err:
        build_classifier("resnet18", 2, pretrained=True)
    message = str(err.value)
    assert isinstance(err.value, UserError) and "resnet18-f37072fd.pth" in message and str(tmp_path) in message and "never downloads" in message


def test_pretrained_loads_cached_weights(tmp_path, monkeypatch):
    from torchvision.models import resnet18

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    torch.manual_seed(1)
    imagenet = resnet18(weights=None)
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.save(imagenet.state_dict(), tmp_path / "hub" / "checkpoints" / "resnet18-f37072fd.pth")
    model = build_classifier("resnet18", 2, pretrained=True)
    assert torch.equal(model.layer4[1].conv2.weight, imagenet.layer4[1].conv2.weight)
    # the RGB filters are summed into one channel (divided by 1 input channel)
    assert torch.allclose(model.conv1.weight, imagenet.conv1.weight.sum(dim=1, keepdim=True))


@pytest.mark.parametrize(
    ("conv", "shape"),
    [
        ((64, 32, 1, 1, 0), (3, 64, 4, 4)),  # pointwise
        ((64, 32, 1, 2, 0), (3, 64, 3, 3)),  # strided pointwise (a ResNet downsample)
        ((16, 8, 3, 1, 1), (3, 16, 1, 1)),  # 3×3 on a 1×1 map: centre tap only
        ((16, 8, 3, 2, 1), (3, 16, 2, 2)),  # small map: unfold + matmul
        ((16, 8, 3, 1, 1), (3, 16, 8, 8)),  # large map: the ordinary convolution
        ((1, 8, 7, 2, 3), (3, 1, 4, 4)),
    ],
)
def test_matmul_conv_is_the_same_convolution(conv, shape):
    torch.manual_seed(0)
    ref = torch.nn.Conv2d(*conv, bias=True)
    fast = MatmulConv2d(*conv, bias=True)
    fast.load_state_dict(ref.state_dict())
    for fmt in (torch.contiguous_format, torch.channels_last):
        x = torch.randn(shape).contiguous(memory_format=fmt).requires_grad_(True)
        x2 = x.detach().clone().requires_grad_(True)
        a, b = ref(x), fast(x2)
        g = torch.randn_like(a)
        a.backward(g)
        b.backward(g)
        assert b.shape == a.shape and torch.allclose(a, b, atol=1e-5)
        assert torch.allclose(x.grad, x2.grad, atol=1e-5) and torch.allclose(ref.weight.grad, fast.weight.grad, atol=1e-4)
        assert torch.allclose(ref.bias.grad, fast.bias.grad, atol=1e-4)
        ref.zero_grad()
        fast.zero_grad()


def test_use_matmul_convs_keeps_weights_and_outputs():
    torch.manual_seed(0)
    plain = build_classifier("resnet18", 2).eval()
    fast = use_matmul_convs(copy.deepcopy(plain))
    assert sum(isinstance(m, MatmulConv2d) for m in fast.modules()) == 20 and list(fast.state_dict()) == list(plain.state_dict())
    x = torch.randn(4, 1, 32, 32)
    with torch.no_grad():
        assert torch.allclose(plain(x), fast(x), atol=1e-4)


def test_fused_rmsprop_is_rmsprop():
    torch.manual_seed(0)
    a = [torch.randn(50, requires_grad=True), torch.randn(3, 4, requires_grad=True)]
    b = [p.detach().clone().requires_grad_(True) for p in a]
    ref = torch.optim.RMSprop(a, lr=1e-3, alpha=0.9, eps=1e-7)
    fused = FusedRMSprop(b, lr=1e-3, alpha=0.9, eps=1e-7)
    for step in range(40):
        grads = [torch.randn(p.shape) * (10.0 if step % 9 == 0 else 0.01) for p in a]
        for params in (a, b):
            for p, g in zip(params, grads):
                p.grad = g.clone()
        ref.step()
        fused.step()
    for p, q in zip(a, b):
        assert torch.allclose(p, q, atol=1e-6, rtol=0)
    assert ref.state[a[0]]["square_avg"].allclose(fused.state[b[0]]["exp_avg_sq"], rtol=1e-6)


# ------------------------------------------------------------------------- augmentation


def test_classical_augment_is_seeded_and_keeps_air_black():
    x = -torch.ones(16, 1, 32, 32)
    x[:, :, 8:24, 8:24] = torch.linspace(-0.5, 0.8, 16)  # a bright head in black air
    a = classical_augment(x, torch.Generator().manual_seed(3))
    b = classical_augment(x, torch.Generator().manual_seed(3))
    c = classical_augment(x, torch.Generator().manual_seed(4))
    assert a.shape == x.shape and a.dtype == x.dtype and torch.equal(a, b) and not torch.equal(a, c)
    assert a.min() >= -1 and a.max() <= 1
    assert torch.all(a[:, :, :3, :] == -1) and torch.all(a[:, :, :, -3:] == -1)  # air (and padding) stays air


def test_classical_augment_flip_only_mirrors():
    x = torch.rand(64, 1, 8, 8) * 2 - 1
    out = classical_augment(x, torch.Generator().manual_seed(0), max_rotation=0, max_translation=0, gain=0, offset=0)
    same = torch.isclose(out, x, atol=1e-5).flatten(1).all(1)
    mirrored = torch.isclose(out, x.flip(-1), atol=1e-5).flatten(1).all(1)
    assert torch.all(same | mirrored) and 10 < int(mirrored.sum()) < 54


# ------------------------------------------------------------------------- metrics


def test_binary_metrics_on_known_predictions():
    targets = np.array([0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    p1 = np.array([0.1, 0.2, 0.6, 0.3, 0.9, 0.8, 0.4, 0.7, 0.65, 0.55])
    m = classification_metrics(targets, np.stack([1 - p1, p1], axis=1))
    assert m["confusion_matrix"] == [[3, 1], [1, 5]]
    assert m["accuracy"] == pytest.approx(0.8)
    assert m["sensitivity"] == pytest.approx(5 / 6) and m["specificity"] == pytest.approx(3 / 4)
    assert m["balanced_accuracy"] == pytest.approx((5 / 6 + 3 / 4) / 2)
    # AUC: of the 24 (negative, positive) pairs, only (0.6 vs 0.4) and (0.6 vs 0.55) are misordered
    assert m["roc_auc"] == pytest.approx(22 / 24)


def test_multiclass_metrics_and_single_class_auc():
    targets = np.array([0, 1, 2, 2])
    probs = np.eye(3)[[0, 1, 1, 2]] * 0.9 + 0.1 / 3
    m = classification_metrics(targets, probs)
    assert m["per_class_recall"] == [1.0, 1.0, 0.5] and m["balanced_accuracy"] == pytest.approx(2.5 / 3)
    assert math.isnan(m["sensitivity"]) and math.isnan(m["specificity"])
    one_class = classification_metrics(np.array([1, 1]), np.array([[0.2, 0.8], [0.6, 0.4]]))
    assert math.isnan(one_class["roc_auc"]) and one_class["sensitivity"] == 0.5


# ------------------------------------------------------------------------- statistics


def test_mean_ci_known_values():
    ci = mean_ci([1.0, 2.0, 3.0])
    half = 4.302652729911275 / math.sqrt(3)  # t(0.975, 2) · sd 1 / √3
    assert ci["mean"] == 2.0 and ci["n"] == 3
    assert ci["ci_low"] == pytest.approx(2 - half) and ci["ci_high"] == pytest.approx(2 + half)
    flat = mean_ci([0.7, 0.7, 0.7, float("nan")])
    assert flat["n"] == 3 and flat["ci_low"] == flat["ci_high"] == pytest.approx(0.7)
    one = mean_ci([0.5])
    assert one["mean"] == 0.5 and math.isnan(one["ci_low"]) and math.isnan(one["ci_high"]) and "one run" in one["note"]
    assert mean_ci([])["n"] == 0
    # a fraction's t-interval is cut at [0, 1] (e.g. 87.9 ± 23.5 % would reach past 100 %), and says so
    cut = mean_ci([0.7, 1.0, 1.0], bounds=(0.0, 1.0))
    assert cut["ci_high"] == 1.0 and cut["ci_low"] == pytest.approx(mean_ci([0.7, 1.0, 1.0])["ci_low"]) and "cut" in cut["note"]
    assert "note" not in mean_ci([0.4, 0.5, 0.6], bounds=(0.0, 1.0))


@pytest.mark.parametrize("test", ["wilcoxon", "paired-bootstrap"])
def test_paired_difference_identical_arms(test):
    a = [0.7, 0.8, 0.75, 0.6, 0.9, 0.85]
    r = paired_difference(a, list(a), test)
    assert r["mean_diff"] == 0 and r["p_value"] == pytest.approx(1.0) and r["n_pairs"] == 6 and r["test"] == test
    assert r["ci_low"] == pytest.approx(0) and r["ci_high"] == pytest.approx(0)


@pytest.mark.parametrize("test", ["wilcoxon", "paired-bootstrap"])
def test_paired_difference_detects_a_constant_shift(test):
    rng = np.random.default_rng(0)
    b = rng.uniform(0.6, 0.8, size=10)
    a = b + 0.05 + rng.normal(0, 0.005, size=10)
    r = paired_difference(a, b, test, n_bootstrap=2000)
    assert r["mean_diff"] == pytest.approx(0.05, abs=0.005)
    assert r["p_value"] < 0.01 and 0.03 < r["ci_low"] < 0.05 < r["ci_high"] < 0.07
    if test == "wilcoxon":
        assert r["p_value"] == pytest.approx(2 / 2**10)  # exact: all 10 differences positive
    down = paired_difference(b, a, test, n_bootstrap=2000)
    assert down["mean_diff"] == pytest.approx(-r["mean_diff"]) and down["p_value"] < 0.01


def test_paired_difference_small_samples_are_flagged():
    r = paired_difference([0.8, 0.9, 0.85], [0.7, 0.8, 0.75])
    assert r["p_value"] == pytest.approx(0.25) and "fewer than 6" in r["note"]  # 2 / 2³: the smallest possible
    nan_pair = paired_difference([0.8, float("nan")], [0.7, 0.6])
    assert nan_pair["n_pairs"] == 1 and math.isnan(nan_pair["ci_low"])


# ------------------------------------------------------------------------- training


def _toy_data(n: int, seed: int):
    """Two easy classes: a bright or a dark square on black, with noise."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = -torch.ones(n, 1, 32, 32)
    x[:, :, 8:24, 8:24] = torch.where(y[:, None, None, None] == 1, 0.8, -0.2)
    return (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(-1, 1), y


@pytest.fixture
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_fit_learns_restores_best_epoch_and_is_deterministic(one_thread):
    x, y = _toy_data(32, 0)
    xv, yv = _toy_data(12, 1)
    cfg = ClassifierConfig(arch="resnet18", stem="paper", batch_size=8, max_epochs=3, patience=1, optimizer="adam", lr=1e-3, precision="fp32")
    a = fit_classifier(x, y, xv, yv, cfg, n_classes=2, seed=5)
    b = fit_classifier(x, y, xv, yv, cfg, n_classes=2, seed=5)
    assert [h["val_loss"] for h in a.history] == [h["val_loss"] for h in b.history]
    assert a.epochs_run == len(a.history) <= 3 and 1 <= a.best_epoch <= a.epochs_run
    losses = [h["val_loss"] for h in a.history]
    assert losses[a.best_epoch - 1] == min(losses)  # early stopping on validation loss, best weights restored
    probs = predict_proba(a.model, xv, precision="fp32")
    restored_loss = float(torch.nn.functional.nll_loss(torch.from_numpy(probs).log(), yv))
    assert restored_loss == pytest.approx(min(losses), rel=1e-4)
    assert np.allclose(probs, predict_proba(b.model, xv, precision="fp32"))
    assert classification_metrics(yv.numpy(), probs)["accuracy"] >= 0.9


def test_balancing_rule():
    assert not needs_balancing(np.array([0] * 72 + [1] * 72), 2)
    assert not needs_balancing(np.array([0] * 72 + [1] * 78), 2)
    assert needs_balancing(np.array([0] * 73 + [1] * 78 + [1] * 20), 2)
