"""The CT domain extractor: encoder, torch-fidelity registration, per-image cache, per-fold fitting.

Kept small for a shared 2-core CPU: one encoder fitted for a few epochs on 64 phantom
images (~1 s after torch's one-time optimiser import), 60-image sets for KID.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from ctqc.config import Config, DataConfig, PhantomConfig, QCConfig
from ctqc.data import load_dataset
from ctqc.qc import domain, features

EPOCHS = 8


def _phantoms(n_per_class: int, seed: int):
    return load_dataset(DataConfig(phantom=PhantomConfig(n_per_class=n_per_class, size=64, seed=seed)))  # 32 px


@pytest.fixture(scope="module")
def train():
    return _phantoms(32, seed=0)


@pytest.fixture(scope="module")
def weights(train, tmp_path_factory):
    path = tmp_path_factory.mktemp("domain") / "encoder.pt"
    domain.fit_domain_encoder(train.images, train.labels, seed=0, epochs=EPOCHS, path=path)
    return path


@pytest.fixture(scope="module")
def samples():
    """Two samples of the same phantom distribution (different seeds), 60 images each."""
    return _phantoms(30, seed=1).images, _phantoms(30, seed=2).images


def _brighter(x: torch.Tensor, delta: float = 0.3) -> torch.Tensor:
    """The head (not the air) made brighter by ``delta``: a global intensity shift."""
    return torch.where(x > -0.9, (x + delta).clamp(-1, 1), x)


def test_encoder_shapes_and_deterministic_fit(train):
    for size in (32, 64, 256):
        model = domain.DomainEncoder(n_classes=3, image_size=size).eval()
        x = torch.rand(2, 1, size, size) * 2 - 1
        assert model.embed(x).shape == (2, domain.FEATURE_DIM) and model(x).shape == (2, 3)
    few, labels = train.images[:40], train.labels[:40]
    a = domain.fit_domain_encoder(few, labels, seed=3, epochs=2).state_dict()
    b = domain.fit_domain_encoder(few, labels, seed=3, epochs=2).state_dict()
    c = domain.fit_domain_encoder(few, labels, seed=4, epochs=2).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)
    with pytest.raises(ValueError, match="at least two"):
        domain.fit_domain_encoder(few, np.zeros(len(few), int), epochs=1)


def test_features_shape_determinism_and_save_load(weights, samples):
    x = samples[0][:10]
    f1 = domain.domain_features(x, weights)
    assert f1.shape == (10, 128) and f1.dtype == np.float64 and np.isfinite(f1).all()
    assert np.array_equal(f1, domain.domain_features(x.clone(), weights))
    model = domain.load_encoder(weights)  # a plain state dict, read with weights_only=True
    assert set(torch.load(weights, weights_only=True)) == set(model.state_dict()) and model.size == 32
    u8 = features.to_uint8_rgb(x)
    assert np.allclose(domain.embed_uint8(model, u8).numpy(), f1, atol=1e-6)
    # larger inputs are resized to the trained size (e.g. 64-px uint8 from another source)
    big = torch.nn.functional.interpolate(u8.float(), scale_factor=2, mode="nearest").round().to(torch.uint8)
    assert domain.embed_uint8(model, big).shape == (10, 128)


def test_registered_with_torch_fidelity_and_kid_known_answers(weights, samples, monkeypatch):
    import torch_fidelity
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    from ctqc.qc import metrics

    assert domain.register() == domain.register() == "ctqc-ct-domain"  # idempotent
    assert FEATURE_EXTRACTORS_REGISTRY["ctqc-ct-domain"] is domain.FeatureExtractorCTDomain
    first = domain.FeatureExtractorCTDomain
    domain._fidelity_class.cache_clear()  # as after a re-import: a new class object of the same name
    domain.register()
    assert FEATURE_EXTRACTORS_REGISTRY["ctqc-ct-domain"] is domain.FeatureExtractorCTDomain is not first
    with monkeypatch.context() as patch:
        patch.setitem(FEATURE_EXTRACTORS_REGISTRY, "ctqc-ct-domain", FEATURE_EXTRACTORS_REGISTRY["vgg16"])
        with pytest.raises(RuntimeError, match="different feature extractor"):
            domain.register()

    a, b = samples
    options = dict(
        kid=True, feature_extractor="ctqc-ct-domain", feature_extractor_weights_path=str(weights),
        kid_subset_size=30, cuda=False, cache=False, verbose=False, save_cpu_ram=True,
    )  # fmt: skip
    same = torch_fidelity.calculate_metrics(input1=features.FidelityInput(a), input2=features.FidelityInput(b), **options)
    shifted = torch_fidelity.calculate_metrics(input1=features.FidelityInput(a), input2=features.FidelityInput(_brighter(b)), **options)
    key, std = "kernel_inception_distance_mean", "kernel_inception_distance_std"
    assert abs(same[key]) <= 3 * same[std]  # ≈ 0: the same distribution
    assert shifted[key] > 3 * shifted[std] and shifted[key] > 20 * max(abs(same[key]), same[std])
    # ctqc's own path (cached float features → uint8 boundary → same forward) gives torch-fidelity's KID
    ours = metrics.kid(domain.domain_features(a, weights), domain.domain_features(_brighter(b), weights), seed=2020)[0]
    assert ours == pytest.approx(shifted[key], rel=1e-3)
    extractor = domain.FeatureExtractorCTDomain("ctqc-ct-domain", ["128"], feature_extractor_weights_path=str(weights))
    assert extractor.get_default_feature_layer_for_metric("kid") == "128"
    (out,) = extractor(features.to_uint8_rgb(a[:4]))
    assert out.shape == (4, 128)


def test_features_cached_per_image_and_per_encoder(weights, train, samples, tmp_path, monkeypatch):
    calls = []
    real = domain.domain_features
    monkeypatch.setattr(domain, "domain_features", lambda imgs, weights: calls.append((len(imgs), weights.name)) or real(imgs, weights))
    x = samples[0][:12]
    with pytest.raises(ValueError, match="needs domain_weights"):
        features.extract("domain", x, tmp_path)
    first = features.extract("domain", x, tmp_path, domain_weights=weights)
    again = features.extract("domain", x.clone(), tmp_path, domain_weights=weights)
    assert calls == [(12, "encoder.pt")] and np.array_equal(first, again)  # re-run: nothing recomputed
    other = tmp_path / "other.pt"
    domain.fit_domain_encoder(train.images[:40], train.labels[:40], seed=1, epochs=1, path=other)
    second = features.extract("domain", x, tmp_path, domain_weights=other)
    assert calls[-1] == (12, "other.pt") and not np.allclose(first, second)  # never the first encoder's cache
    names = sorted(p.name for p in tmp_path.glob("domain-*.npz"))
    assert names == sorted(f"domain-{domain.weights_digest(w)}.v{features.CACHE_VERSION}.npz" for w in (weights, other))
    matrix, pixel_columns = features.feature_matrix(x, ["domain", "pixels"], tmp_path, domain_weights=weights)
    assert matrix.shape == (12, 1024 + 128) and pixel_columns == 1024 and len(calls) == 2


def test_encoder_sees_only_the_images_it_is_fitted_on(train, monkeypatch):
    """Every input of every training step is a flip/shift of one of the images passed to fit."""
    images, labels = train.images[:24], train.labels[:24]
    seen = []
    forward = domain.DomainEncoder.forward
    monkeypatch.setattr(domain.DomainEncoder, "forward", lambda self, x: seen.append(x.detach().clone()) or forward(self, x))
    domain.fit_domain_encoder(images, labels, seed=0, epochs=2)
    q = domain.quantise(images)
    padded = torch.nn.functional.pad(torch.cat([q, q.flip(-1)]), [domain.MAX_SHIFT] * 4, value=-1.0)
    span = range(2 * domain.MAX_SHIFT + 1)
    orbit = torch.cat([padded[..., dy : dy + 32, dx : dx + 32] for dy in span for dx in span]).flatten(1)
    inputs = torch.cat(seen).flatten(1)
    assert len(inputs) == 2 * len(images)
    distance = torch.cdist(inputs, orbit, compute_mode="donot_use_mm_for_euclid_dist")
    assert distance.min(dim=1).values.max() == 0  # each one an exact member of the orbit


def _units(train, heldout, synthetic):
    from ctqc.qc.units import POOL_COLUMNS, QCUnit

    units = []
    for key, name in train.class_names.items():
        ref, held, syn = (d.images[torch.from_numpy(d.labels == key)] for d in (train, heldout, synthetic))
        pool = pd.DataFrame({"sample_id": [f"s{key}-{i}" for i in range(len(syn))], "file": None, "class": name, "label": key, "fold": 0})
        held_ids = tuple(f"h{key}-{i}" for i in range(len(held)))
        units.append(QCUnit(0, key, name, ref, tuple(f"r{key}-{i}" for i in range(len(ref))), held, held_ids, syn, pool[POOL_COLUMNS]))
    return units


def test_fold_encoders_fit_on_training_images_only_and_are_reused(train, tmp_path, monkeypatch):
    units = _units(train, _phantoms(4, seed=5), _phantoms(4, seed=6))
    fitted = []
    real_fit = domain.fit_domain_encoder
    monkeypatch.setattr(domain, "fit_domain_encoder", lambda images, labels, **kw: fitted.append((images, labels)) or real_fit(images, labels, **{**kw, "epochs": 1}))
    paths = domain.fit_fold_encoders(units, tmp_path, seed=0)
    assert paths == {0: tmp_path / "domain-fold0.pt"} and len(fitted) == 1
    images, labels = fitted[0]
    assert torch.equal(images, torch.cat([u.reference for u in units]))  # the training images, nothing else
    assert labels.tolist() == [u.key for u in units for _ in range(len(u.reference))]
    info = domain.describe_encoder(paths[0])
    assert info["n_images"] == len(train.images) and info["classes"] == [0, 1] and info["weights_sha256_16"] == domain.weights_digest(paths[0])
    assert domain.fit_fold_encoders(units, tmp_path, seed=0) == paths and len(fitted) == 1  # unchanged: re-used
    units[0].reference = units[0].reference[1:]
    domain.fit_fold_encoders(units, tmp_path, seed=0)
    assert len(fitted) == 2  # other training images: fitted again
    assert domain.encoders_if_used(units, ["pixels", "fft"], tmp_path) == {}


def test_qc_with_domain_features(tmp_path, monkeypatch):
    from ctqc.qc.scoring import score_units
    from ctqc.stages.filter import decide_and_check
    from ctqc.stages.qc import _qc

    monkeypatch.setattr(domain, "EPOCHS", 3)  # the plumbing, not the encoder's quality
    train = _phantoms(16, seed=7)
    units = _units(train, _phantoms(4, seed=5), _phantoms(6, seed=6))
    qc = QCConfig(features=["histogram", "domain"], metric_features="domain", n_bootstrap=10, n_permutations=0, n_repeats=1, n_splits=2, n_jobs=1, embeddings=[])
    scores = score_units(units, Config(qc=qc), tmp_path)
    metrics = _qc(units, None, Config(qc=qc), tmp_path, scores)
    assert metrics["extractor"] == "domain" and metrics["domain_encoders"]["fold0"]["n_images"] == len(train.images)
    assert metrics["scopes"]["all"]["kid"]["value"] is not None and metrics["c2st"]["normal"]["auc"] is not None
    assert (tmp_path / "domain-fold0.pt").is_file() and len(list(tmp_path.glob("domain-*.v*.npz"))) == 1
    assert scores.table["c2st_score"].notna().all()
    # scoring again (e.g. bring-your-own folders) re-uses the fold's encoder (same training images) and its cached features
    fitted = (tmp_path / "domain-fold0.json").read_text()
    again = score_units(units, Config(qc=qc), tmp_path)
    table, summary = decide_and_check(again, Config(qc=qc), 0.6, False, fitted_on="test")
    assert len(table) == sum(len(u.synthetic) for u in units) and summary.features == ["histogram", "domain"]
    assert (tmp_path / "domain-fold0.json").read_text() == fitted and len(list(tmp_path.glob("domain-*.v*.npz"))) == 1
