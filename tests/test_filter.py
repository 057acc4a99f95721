"""`ctqc filter`: realistic images kept, copies and off-distribution images rejected, outputs complete."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from ctqc.config import DataConfig, PhantomConfig
from ctqc.data import load_dataset


def _to_png(image, path):
    Image.fromarray(((image[0].numpy() + 1) * 127.5).round().astype(np.uint8)).save(path)


@pytest.fixture
def planted_run(tmp_path, run_cli):
    """A smoke run whose pool is replaced per class by 20 fresh phantoms (the last repeating the one before), 5 training copies, 5 noise images."""
    result = run_cli("-q", "train", "--config", "smoke", "--set", "gan.epochs=1", "--set", "data.phantom.n_per_class=40", "--set", "gan.n_synthetic=2")
    assert result.code == 0, result.err
    assert run_cli("-q", "generate", "--n", "30", "--per-class").code == 0
    run = (tmp_path / "runs" / "latest").resolve()
    index = pd.read_csv(run / "samples" / "index.csv")
    data = load_dataset(DataConfig(phantom=PhantomConfig(n_per_class=40, size=64)))
    fresh = load_dataset(DataConfig(phantom=PhantomConfig(n_per_class=20, size=64, seed=99)))
    splits = pd.read_csv(run / "splits.csv", dtype={"id": str})
    rng = np.random.default_rng(0)
    truth = {}
    for key in (0, 1):
        files = index[index["label"] == key]["file"].tolist()
        assert len(files) == 30
        genuine = fresh.images[fresh.labels == key]
        train_ids = splits[(splits["role"] == "train") & (splits["label"] == key)]["id"].tolist()[:5]
        copies = data.images[[data.ids.index(i) for i in train_ids]]
        for n, name in enumerate(files):
            if n < 20:
                _to_png(genuine[min(n, 18)], run / "samples" / name)  # the 20th repeats the 19th: a duplicate within the pool
                truth[name] = "genuine" if n < 19 else "duplicate"
            elif n < 25:
                _to_png(copies[n - 20], run / "samples" / name)
                truth[name] = "copy"
            else:
                noise = np.clip(rng.normal(0, 0.6, (1, 32, 32)), -1, 1)
                _to_png(torch.from_numpy(noise), run / "samples" / name)
                truth[name] = "noise"
    return run, truth


def test_filter_separates_planted_images(planted_run, run_cli):
    run, truth = planted_run
    result = run_cli("filter", "--c2st-threshold", "0.6")
    assert result.code == 0, result.err
    assert "kept" in result.out and "C2ST before AUC" in result.out and "after (kept vs held-out real)" in result.out
    assert "held-out real images" in result.out and "ECE of the (uncalibrated) scores" in result.out and "coverage" in result.out
    kept = pd.read_csv(run / "filter" / "kept.csv")
    rejected = pd.read_csv(run / "filter" / "rejected.csv")
    assert len(kept) + len(rejected) == 60 and not set(kept["file"]) & set(rejected["file"])
    why = dict(zip(rejected["file"], rejected["reasons"]))
    kinds = {name: kind for name, kind in truth.items()}
    copies = [n for n, k in kinds.items() if k == "copy"]
    noise = [n for n, k in kinds.items() if k == "noise"]
    genuine = [n for n, k in kinds.items() if k == "genuine"]
    assert all("copy" in why.get(n, "") for n in copies)
    assert sum("copy" in why.get(n, "") for n in genuine) <= 0.05 * len(genuine)  # false copy alarms
    assert sum("c2st" in why.get(n, "") for n in noise) >= 9
    assert sum(n in set(kept["file"]) for n in genuine) >= 0.75 * len(genuine)
    # duplicates within the pool: of each planted pair exactly one image is rejected as a duplicate, no other image is
    duplicates = [n for n, k in kinds.items() if k == "duplicate"]
    pairs = [(n, n.replace("_00019", "_00018")) for n in duplicates]
    assert len(pairs) == 2 and all(("duplicate" in why.get(a, "")) + ("duplicate" in why.get(b, "")) == 1 for a, b in pairs)
    assert sum("duplicate" in r for r in why.values()) == 2 and "duplicates 1" in result.out and "MMD (RBF)" in result.out
    summary = json.loads((run / "filter" / "filter.json").read_text())
    assert summary["c2st_threshold"] == 0.6 and summary["kept"] == len(kept)
    for unit in ("fold0/normal", "fold0/haemorrhage"):
        r = summary["per_class"][unit]
        assert 5 <= r["rejected_copy"] <= 7 and 0 < r["c2st_before"]["p_value"] <= 1
        assert r["rejected_duplicate"] == 1 and 0 < r["mmd_before"]["p_value"] <= 1 and r["mmd_before"]["n_synthetic"] == 30
        assert r["c2st_after"]["auc"] is not None
        _check_unit_views(run, unit, r, kept)
    assert summary["mode"] == "threshold" and summary.get("max_real_rejection") is None and "held-out" in summary["after_check"]
    embeddings = pd.read_csv(run / "qc" / "embeddings.csv", dtype={"id": str})
    assert len(embeddings) == 60 + len(pd.read_csv(run / "splits.csv").query("role == 'train'"))
    assert {"tsne_x", "tsne_y", "umap_x", "umap_y"} <= set(embeddings.columns)
    assert embeddings.loc[embeddings["source"] == "synthetic", "id"].isin(kept["sample_id"].astype(str)).sum() == len(kept)
    for method in ("tsne", "umap"):
        assert Image.open(run / "filter" / f"embedding_{method}.png").size[0] > 300
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["stages"]["filter"]["status"] == "done"
    # deterministic: the same run filtered again gives identical files
    before = {p.name: p.read_bytes() for p in (run / "filter").iterdir()}
    assert run_cli("-q", "filter").code == 0
    assert {p.name: p.read_bytes() for p in (run / "filter").iterdir()} == before


def _check_unit_views(run, label, r, kept):
    """Operating point, calibration, after-check and diversity of one unit of filter.json, against qc/scores.csv."""
    from ctqc.qc.calibration import rejection_rate, reliability

    scores = pd.read_csv(run / "qc" / "scores.csv")
    fold, name = int(label.split("/")[0][4:]), label.split("/")[1]
    unit = scores[(scores["fold"] == fold) & (scores["class"] == name)]
    held = unit.loc[unit["role"] == "heldout", "c2st_score"].to_numpy(float)
    # the threshold used and the genuine images it rejects: the held-out real images above it, with their number
    assert r["threshold"] == 0.6
    rej = r["real_rejection"]
    assert rej["n"] == len(held) > 0 and rej.get("guarantee") is None
    assert rej["rate"] == rej["expected"] == rejection_rate(held, 0.6)["rate"] and rej["ci"][0] <= rej["rate"] <= rej["ci"][1]
    # calibration of the stored scores as they are: fit + synthetic rows, real weighted n_syn / n_real
    both = unit[unit["role"].isin(["fit", "synthetic"])]
    expected = reliability(both["c2st_score"].to_numpy(float), (both["role"] == "synthetic").to_numpy(int))
    cal = r["calibration"]
    assert cal["ece"] == expected["ece"] and cal["bins"] == expected["bins"] and "not calibrated" in cal["score"]
    assert cal["n_real"] == r["c2st_before"]["n_real"] and cal["n_synthetic"] == r["n_synthetic"]
    # the after-check: kept images vs the held-out real images, two-sided
    after = r["c2st_after"]
    assert after["n_real"] == len(held) and after["n_synthetic"] == r["kept"] and 0 < after["p_value_two_sided"] <= 1
    # density and coverage of pool, kept set and same-size random subsets
    d = r["diversity"]
    assert d["n_real"] == r["c2st_before"]["n_real"] and d["k"] == 5 and d["draws"] == 20
    assert all(0 <= d[f"coverage_{w}"] <= 1 and d[f"density_{w}"] >= 0 for w in ("before", "kept", "random"))
    assert (d["warning"] is not None) == (d["coverage_kept"] < d["coverage_random"] - 0.1)


def test_filter_without_memorisation_and_bad_threshold(planted_run, run_cli):
    run, _ = planted_run
    assert run_cli("-q", "filter", "--no-memorisation").code == 0
    rejected = pd.read_csv(run / "filter" / "rejected.csv")
    assert not rejected["reasons"].str.contains("copy").any()
    before = {p.name: p.read_bytes() for p in (run / "filter").iterdir()}
    for bad in ("0", "1", "-0.2", "1.5"):
        result = run_cli("filter", "--c2st-threshold", bad)
        assert result.code == 2 and "--c2st-threshold must be between 0 and 1" in result.err
    for bad in ("0", "1", "-0.1", "1.5"):
        result = run_cli("filter", "--max-real-rejection", bad)
        assert result.code == 2 and "--max-real-rejection must be between 0 and 1" in result.err and len(result.err.strip().splitlines()) == 1
    both = run_cli("filter", "--max-real-rejection", "0.1", "--c2st-threshold", "0.6")
    assert both.code == 2 and "not both" in both.err and len(both.err.strip().splitlines()) == 1
    assert {p.name: p.read_bytes() for p in (run / "filter").iterdir()} == before


def test_filter_needs_a_trained_run(tmp_path, run_cli):
    assert run_cli("-q", "data", "prepare", "--config", "smoke").code == 0
    result = run_cli("filter")
    assert result.code == 2 and "stage 'generate' has not run; run `ctqc train` first" in result.err


def test_rethresholding_refits_nothing(planted_run, run_cli, monkeypatch):
    """A second `ctqc filter` is a decision over stored scores: no feature extraction, no copy check,
    no scoring C2ST; only the after-filter check (one C2ST per fold × class) is fitted again."""
    from ctqc.qc import c2st, features, memorisation, scoring

    run, _ = planted_run
    assert run_cli("-q", "filter").code == 0
    scores_before = (run / "qc" / "scores.csv").read_bytes()

    def refuse(*args, **kwargs):
        raise AssertionError("re-thresholding must not re-fit or re-extract anything")

    for module, name in ((features, "extract"), (features, "feature_matrix"), (scoring, "feature_matrix"), (memorisation, "check_copies"), (scoring, "check_copies"), (scoring, "_score_unit")):
        monkeypatch.setattr(module, name, refuse)
    fits = []
    real_fit = c2st.C2ST.fit
    monkeypatch.setattr(c2st.C2ST, "fit", lambda self, *a, **k: fits.append(k.get("heldout")) or real_fit(self, *a, **k))
    result = run_cli("filter", "--c2st-threshold", "0.7")
    assert result.code == 0, result.err
    summary = json.loads((run / "filter" / "filter.json").read_text())
    assert summary["c2st_threshold"] == 0.7
    assert len(fits) == len(summary["per_class"]) and all(h is None for h in fits)  # the after-checks only
    assert (run / "qc" / "scores.csv").read_bytes() == scores_before
    scores = pd.read_csv(run / "qc" / "scores.csv")
    synthetic = scores[scores["source"] == "synthetic"]
    expected_c2st = int((synthetic["c2st_score"] > 0.7).sum())
    assert sum(u["rejected_c2st"] for u in summary["per_class"].values()) == expected_c2st
    assert set(scores["role"]) == {"synthetic", "fit", "heldout"}  # every real image's role is stored
    assert scores.loc[scores["role"] == "heldout", "c2st_score"].between(0, 1).all()
    # the conformal operating point is a decision over the same stored scores: again only the after-checks fit
    from ctqc.qc.calibration import conformal_expected_rejection, conformal_threshold

    seen = set()
    for alpha in ("0.2", "0.1"):
        fits.clear()
        result = run_cli("filter", "--max-real-rejection", alpha)
        assert result.code == 0, result.err
        summary = json.loads((run / "filter" / "filter.json").read_text())
        assert summary["mode"] == "conformal" and summary["max_real_rejection"] == float(alpha) and summary.get("c2st_threshold") is None
        assert len(fits) <= len(summary["per_class"]) and all(h is None for h in fits)
        assert (run / "qc" / "scores.csv").read_bytes() == scores_before
        for label, unit in summary["per_class"].items():
            fold, name = int(label.split("/")[0][4:]), label.split("/")[1]
            rows = scores[(scores["fold"] == fold) & (scores["class"] == name)]
            held = rows.loc[rows["role"] == "heldout", "c2st_score"].to_numpy(float)
            threshold = conformal_threshold(held, float(alpha))
            rej = unit["real_rejection"]
            assert rej["n"] == len(held)
            syn = rows.loc[rows["role"] == "synthetic", "c2st_score"]
            if threshold is None:  # too few held-out images to promise α: nothing rejected as c2st, and a note says so
                assert unit.get("threshold") is None and unit["rejected_c2st"] == 0 and rej.get("guarantee") is None
                assert any("too few for a" in note for note in unit["notes"]) and "none (nothing rejected as c2st)" in result.out
                seen.add("too few")
            else:
                seen.add("conformal")
                assert unit["threshold"] == pytest.approx(threshold, abs=1e-6) and unit["rejected_c2st"] == int((syn > threshold).sum())
                assert rej["guarantee"] == float(alpha) and rej["expected"] == pytest.approx(conformal_expected_rejection(len(held), float(alpha)), abs=1e-4)
                assert rej["expected"] <= float(alpha) and "split conformal" in result.out
    assert seen == {"conformal", "too few"}  # ~7 held-out images per class: enough for α = 0.2 (≥ 4), not for 0.1 (≥ 9)
