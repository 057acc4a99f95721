"""`ctqc qc` and bring-your-own `ctqc filter`: torch-fidelity agreement, run outputs, two plain folders."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from ctqc.config import DataConfig, PhantomConfig
from ctqc.data import load_dataset


def _phantoms(n_per_class: int, seed: int, size: int = 32):
    return load_dataset(DataConfig(image_size=size, phantom=PhantomConfig(n_per_class=n_per_class, size=64, seed=seed)))


def _png(image: torch.Tensor, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(((image[0].numpy() + 1) * 127.5).round().astype(np.uint8)).save(path)


@pytest.mark.slow
def test_fid_and_kid_equal_torch_fidelity_calculate_metrics():
    """Our path (cached per-image features + low-rank FID) gives torch-fidelity's own numbers."""
    import torch_fidelity

    from ctqc.qc import features, inception, metrics

    real = _phantoms(12, seed=1).images
    fake = _phantoms(12, seed=2).images.flip(-1) * 0.9

    theirs = torch_fidelity.calculate_metrics(
        input1=features.FidelityInput(fake), input2=features.FidelityInput(real), fid=True, kid=True, kid_subset_size=12, cuda=False, cache=False,
        verbose=False, save_cpu_ram=True, **inception.fidelity_weights_kwargs(),
    )  # fmt: skip
    f_fake, f_real = features.extract("inception", fake), features.extract("inception", real)
    assert metrics.fid(f_fake, f_real) == pytest.approx(theirs["frechet_inception_distance"], rel=1e-4)
    assert metrics.kid(f_fake, f_real, seed=2020)[0] == pytest.approx(theirs["kernel_inception_distance_mean"], rel=1e-3, abs=1e-6)


@pytest.fixture(scope="module")
def byo_folders(tmp_path_factory):
    """Real images in class subfolders; another 'generator's' output with a labels.csv, 4 noise images among it."""
    root = tmp_path_factory.mktemp("byo")
    real, fake = _phantoms(14, seed=5), _phantoms(10, seed=6)
    for i, (image, label) in enumerate(zip(real.images, real.labels)):
        _png(image, root / "real" / real.class_names[int(label)] / f"r{i:03d}.png")
    rows = []
    for i, (image, label) in enumerate(zip(fake.images, fake.labels)):
        _png(image, root / "synthetic" / "imgs" / f"s{i:03d}.png")
        rows.append((f"s{i:03d}", int(label)))
    rng = np.random.default_rng(0)
    for i in range(4):
        _png(torch.from_numpy(np.clip(rng.normal(0, 0.6, (1, 32, 32)), -1, 1)), root / "synthetic" / "imgs" / f"noise{i}.png")
        rows.append((f"noise{i}", 1))
    pd.DataFrame(rows, columns=["id", "label"]).to_csv(root / "synthetic" / "labels.csv", index=False)
    return root


FAST = ["--set", "qc.n_permutations=19", "--set", "qc.n_repeats=1", "--set", "qc.n_bootstrap=40", "--set", "qc.metric_features=inception-bf16"]


def test_filter_and_qc_on_two_plain_folders(byo_folders, run_cli, tmp_path):
    real, synthetic = byo_folders / "real", byo_folders / "synthetic"
    result = run_cli("filter", "--real", real, "--synthetic", synthetic, "--out", tmp_path / "filtered", "--set", "qc.embeddings=[]", *FAST)
    assert result.code == 0, result.err
    kept = pd.read_csv(tmp_path / "filtered" / "kept.csv")
    rejected = pd.read_csv(tmp_path / "filtered" / "rejected.csv")
    assert len(kept) + len(rejected) == 24
    # Files are relative to --synthetic. With ~11 real images per class the calibrated score is cautious: fold models
    # whose inner cross-validation finds no signal score their images 0.5 (a note says how many), so not every noise
    # image is rejected at 0.6 (the former shrunk score rejected all four); none scores below the genuine images' median.
    noise = {f"imgs/noise{i}.png" for i in range(4)}
    assert noise & set(rejected["file"]) and set(kept["file"]) | set(rejected["file"]) >= noise
    every = pd.concat([kept, rejected])
    haem = every[every["class"] == "haemorrhage"]
    genuine = haem[~haem["file"].isin(noise)]["c2st_score"]
    assert haem[haem["file"].isin(noise)]["c2st_score"].min() >= genuine.median()
    assert (synthetic / kept["file"].iloc[0]).is_file()
    summary = json.loads((tmp_path / "filtered" / "filter.json").read_text())
    assert summary["kept"] == len(kept) and set(summary["per_class"]) == {"fold0/normal", "fold0/haemorrhage"}
    scoring_notes = [n for u in summary["per_class"].values() for n in u["notes"] if "found no signal" in n]
    flat = (every["c2st_score"] == 0.5).sum()
    assert bool(scoring_notes) == bool(flat)  # folds without signal are said, not hidden
    # no generator: the frozen filter is fitted on half of each class's images and applied to the other half
    for unit in summary["per_class"].values():
        frozen = unit["frozen"]
        assert frozen["source"] == "split half" and frozen["n"] == unit["n_synthetic"] - unit["n_synthetic"] // 2 and 0 <= frozen["kept"] <= frozen["n"]

    result = run_cli("qc", "--real", real, "--synthetic", synthetic, "--out", tmp_path / "qc", *FAST)
    assert result.code == 0, result.err
    metrics = json.loads((tmp_path / "qc" / "metrics.json").read_text())
    assert set(metrics["scopes"]) == {"normal", "haemorrhage", "all"}
    haem = metrics["scopes"]["haemorrhage"]
    assert haem["n_synthetic"] == 14 and haem["n_real"] + haem["n_floor"] == 14
    assert haem["kid"]["ci_low"] <= haem["kid"]["value"] <= haem["kid"]["ci_high"] and haem["kid"]["floor"] is not None
    # (the global AUC of the calibrated scores is near 0.5 for both classes at ~11 real images per class: see above)
    assert all(0 <= metrics["c2st"][c]["auc"] <= 1 and 0 < metrics["c2st"][c]["p_value"] <= 1 for c in ("normal", "haemorrhage"))
    assert len(metrics["memorisation"]["normal"]["pairs"]) > 0
    scores = pd.read_csv(tmp_path / "qc" / "scores.csv", dtype={"id": str})
    synthetic_scores = scores[scores["source"] == "synthetic"].set_index("id")
    assert len(synthetic_scores) == 24 and synthetic_scores.loc["noise0", "c2st_score"] > 0.6
    assert (scores["role"] == "fit").sum() == metrics["scopes"]["all"]["n_real"]  # for the calibration plot
    assert (scores["role"] == "heldout").sum() == metrics["scopes"]["all"]["n_floor"]  # scored, never fitted


def test_bring_your_own_mistakes_are_one_line_errors(byo_folders, run_cli, tmp_path):
    from tests.conftest import tree_snapshot

    real, synthetic = byo_folders / "real", byo_folders / "synthetic"
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    (occupied / "notes.txt").write_text("mine")
    cases = [
        (["filter", "--real", real, "--synthetic", synthetic], "need all of --real DIR --synthetic DIR --out DIR"),
        (["qc", "--real", real, "--synthetic", tmp_path / "nowhere", "--out", tmp_path / "o"], "not a folder"),
        (["filter", "--real", real, "--synthetic", synthetic, "--out", occupied], "is not an earlier ctqc filter output"),
        (["filter", "--real", real, "--synthetic", real / "normal", "--out", tmp_path / "o"], "labels CSV not found"),
        (["qc", "--config", "smoke"], "apply to --real/--synthetic/--out"),
    ]
    for args, message in cases:
        before = tree_snapshot(tmp_path)
        result = run_cli(*args)
        assert result.code == 2 and message in result.err and "Traceback" not in result.err, (args, result.err)
        assert tree_snapshot(tmp_path) == before


def test_qc_on_a_run_before_and_after_filtering(run_cli, tmp_path):
    assert run_cli("-q", "train", "--config", "smoke", *FAST).code == 0
    run = (tmp_path / "runs" / "latest").resolve()
    result = run_cli("qc")
    assert result.code == 0, result.err
    assert "FID" in result.out and "floor" in result.out
    metrics = json.loads((run / "qc" / "metrics.json").read_text())
    assert metrics["extractor"] == "inception-bf16" and "after_filter" not in metrics
    assert set(metrics["scopes"]) == {"normal", "haemorrhage", "all"} and set(metrics["c2st"]) == {"normal", "haemorrhage"}
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["stages"]["qc"]["status"] == "done" and "qc/metrics.json" in manifest["stages"]["qc"]["outputs"]
    assert run_cli("-q", "filter").code == 0
    assert run_cli("-q", "qc").code == 0
    after = json.loads((run / "qc" / "metrics.json").read_text())["after_filter"]
    kept = pd.read_csv(run / "filter" / "kept.csv")
    assert after["kept"] == {name: int((kept["class"] == name).sum()) for name in ("normal", "haemorrhage")}
    # measured against the held-out (evaluation) images, not the training images that chose the kept set; floor at the kept set's n
    assert "held-out (evaluation)" in after["against"] and set(after["pool_scopes"]) == set(after["scopes"])
    for name, entry in after["scopes"].items():
        if name != "all":
            assert entry["n_synthetic"] == (kept["class"] == name).sum()
            assert entry["n_real"] == metrics["scopes"][name]["n_floor"]  # the reference is now the held-out set
            assert entry["n_floor"] == min(entry["n_synthetic"], metrics["scopes"][name]["n_real"])
            pool = after["pool_scopes"][name]
            assert pool["n_synthetic"] == metrics["scopes"][name]["n_synthetic"] and pool["n_floor"] == entry["n_floor"]
