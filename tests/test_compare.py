"""`ctqc compare`: arm construction without leakage, the end-to-end stage, resume, bad input."""

import dataclasses
import json
import pickle

import numpy as np
import pandas as pd
import pytest
import torch

from ctqc.config import Config, DataConfig, PhantomConfig, SplitConfig
from ctqc.data import load_dataset
from ctqc.errors import UserError
from ctqc.run import Run
from ctqc.splits import Splits
from ctqc.stages.compare import ARMS, RESULT_COLUMNS, FoldData, build_arm, comparisons_for, make_job, training_seed


@pytest.fixture(scope="module")
def fold_data():
    """A 40-image phantom fold with a fake pool of 10 synthetic images per class, 3 + 1 of them kept."""
    data = load_dataset(DataConfig(phantom=PhantomConfig(n_per_class=20, size=32)))
    splits = Splits.make(data, SplitConfig(), seed=0)
    dev = splits.development(data, 0)
    labels = np.repeat([0, 1], 10)
    pool = pd.DataFrame({"sample_id": [f"syn_{k}_0_{i:05d}" for k, i in zip(labels, range(20))], "label": labels, "fold": 0})
    kept = frozenset(pool["sample_id"].iloc[[0, 1, 2, 15]])
    images = torch.linspace(-1, 1, 20).repeat_interleave(32 * 32).reshape(20, 1, 32, 32)
    return FoldData(0, dev.train, dev.val, splits.held_out_test(data, 0), pool, images, kept)


def test_arms_have_the_right_images_and_never_val_or_test(fold_data):
    real = set(fold_data.train.ids)
    held_out = set(fold_data.val.ids) | set(fold_data.test.ids)
    assert len(real) == 29 and len(held_out) == 11  # 40 − 7 val − 4 test (the paper's fractions)
    expected = {  # arm: (real images, synthetic images)
        "original": (29, 0),
        "original+classical": (29, 0),
        "synthetic-only": (0, 20),
        "original+synthetic": (29, 20),
        "original+filtered": (29, 4),
        "original+random-subset": (29, 4),
    }
    for arm in ARMS:
        a = build_arm(arm, fold_data, seed=0, keys=[0, 1])
        n_real, n_syn = expected[arm]
        assert (a.n_real, a.n_synthetic) == (n_real, n_syn), arm
        assert len(a.ids) == len(set(a.ids)) == len(a.targets) == a.images.shape[0] == n_real + n_syn
        assert not set(a.ids) & held_out, arm  # no validation or test image ever trains
        assert (set(a.ids) & real) == (real if n_real else set())
        assert a.augment == (arm == "original+classical")
        syn = [i for i in a.ids if i.startswith("syn_")]
        assert all(t == int(i.split("_")[1]) for i, t in zip(a.ids, a.targets) if i.startswith("syn_"))  # synthetic labels kept
        if arm == "original+filtered":
            assert set(syn) == fold_data.kept
        if arm == "original+random-subset":  # the filtered set's per-class sizes: 3 normal, 1 haemorrhage
            assert sorted(i.split("_")[1] for i in syn) == ["0", "0", "0", "1"]
    draws = {tuple(build_arm("original+random-subset", fold_data, seed=s, keys=[0, 1]).ids) for s in range(5)}
    assert len(draws) > 1  # a fresh subset per seed ...
    assert build_arm("original+random-subset", fold_data, seed=3, keys=[0, 1]).ids == build_arm("original+random-subset", fold_data, seed=3, keys=[0, 1]).ids  # ... reproducibly
    # the synthetic images are the pool's own pixels
    syn_only = build_arm("synthetic-only", fold_data, seed=0, keys=[0, 1])
    assert torch.equal(syn_only.images, fold_data.pool_images)


def test_filter_arms_need_the_filter(fold_data):
    no_filter = dataclasses.replace(fold_data, kept=None)
    with pytest.raises(UserError, match="ctqc filter"):
        build_arm("original+filtered", no_filter, seed=0, keys=[0, 1])


def test_seeds_are_shared_across_arms_and_differ_across_folds_and_seeds():
    seeds = {(f, s): training_seed(0, f, s) for f in range(3) for s in range(3)}
    assert len(set(seeds.values())) == 9 and training_seed(0, 1, 2) == seeds[(1, 2)]
    assert ("original+filtered", "original+random-subset") in comparisons_for(list(ARMS))
    assert ("original+filtered", "original+synthetic") in comparisons_for(list(ARMS))
    assert [a for a, ref in comparisons_for(list(ARMS)) if ref == "original"] == list(ARMS[1:])


def test_a_job_is_picklable_and_its_signature_follows_its_inputs(fold_data, tmp_path):
    cfg = Config(data=DataConfig(phantom=PhantomConfig(n_per_class=20, size=32)))
    job = make_job(cfg, fold_data, "original+filtered", 0, [0, 1], tmp_path, threads=1)
    assert job.key == "original+filtered__f0__s0" and job.out == tmp_path / "original+filtered__f0__s0.json"
    assert job.train_x.shape == (29 + 4, 1, 32, 32) and job.train_x.dtype == np.float32 and len(job.train_ids) == 33
    assert (job.n_real, job.n_synthetic, job.torch_seed) == (29, 4, training_seed(cfg.seed, 0, 0))
    assert len(job.signature) == 24 and make_job(cfg, fold_data, "original+filtered", 0, [0, 1], tmp_path, threads=1).signature == job.signature
    assert pickle.loads(pickle.dumps(job)).signature == job.signature  # what a worker process receives
    refiltered = dataclasses.replace(fold_data, kept=frozenset(sorted(fold_data.kept)[:2]))
    assert make_job(cfg, refiltered, "original+filtered", 0, [0, 1], tmp_path, threads=1).signature != job.signature
    assert make_job(cfg, fold_data, "original+filtered", 1, [0, 1], tmp_path, threads=1).signature != job.signature


def test_compare_end_to_end_resume_and_filter_arms(run_cli, tmp_path):
    assert run_cli("-q", "train", "--config", "smoke", "--set", "gan.epochs=1").code == 0
    run = (tmp_path / "runs" / "latest").resolve()
    result = run_cli("compare")
    assert result.code == 0, result.err
    assert "Acc." in result.out and "original+synthetic" in result.out and "skipped" in result.out and "Δ balanced accuracy" in result.out

    folder = run / "compare"
    results = pd.read_csv(folder / "results.csv")
    assert list(results.columns[: len(RESULT_COLUMNS)]) == RESULT_COLUMNS
    arms = ["original", "original+classical", "synthetic-only", "original+synthetic"]
    assert len(results) == 4 * 1 * 2 and list(results["arm"].unique()) == arms and set(results["seed"]) == {0, 1}
    splits = pd.read_csv(run / "splits.csv", dtype={"id": str})
    test_ids = set(splits.loc[splits["role"] == "test", "id"])
    val_ids = set(splits.loc[splits["role"] == "val", "id"])
    assert (results["n_test"] == len(test_ids)).all() and (results["n_val"] == len(val_ids)).all()
    assert results.loc[results["arm"] == "synthetic-only", "n_train_real"].eq(0).all()
    assert results.loc[results["arm"] == "original+synthetic", "n_train_synthetic"].eq(16).all()
    assert results[["accuracy", "balanced_accuracy"]].apply(lambda c: c.between(0, 1)).all().all()

    for _, row in results.iterrows():  # per-image predictions on exactly the test images
        pred = pd.read_csv(folder / "predictions" / f"{row['arm']}__f0__s{row['seed']}.csv", dtype={"id": str})
        assert list(pred.columns[:4]) == ["id", "label", "pred", "prob"] and set(pred["id"]) == test_ids
        assert (pred["label"] == pred["pred"]).mean() == pytest.approx(row["accuracy"])
        unit = json.loads((folder / "units" / f"{row['arm']}__f0__s{row['seed']}.json").read_text())
        assert not set(unit["train_ids"]) & (test_ids | val_ids)  # audited from what was really trained on

    summary = json.loads((folder / "summary.json").read_text())
    assert summary["metrics"] == ["accuracy", "sensitivity", "specificity", "balanced_accuracy", "roc_auc"]
    assert set(summary["arms"]) == set(arms) and summary["seeds"] == [0, 1] and summary["folds"] == [0]
    acc = summary["arms"]["original"]["accuracy"]
    assert acc["n"] == 2 and acc["mean"] == pytest.approx(results.loc[results["arm"] == "original", "accuracy"].mean())
    assert set(summary["skipped"]) == {"original+filtered", "original+random-subset"}
    assert summary["paper"]["original"]["accuracy"] == 0.7651
    n_test = len(test_ids)
    ba = summary["arms"]["original"]["balanced_accuracy"]  # image level: seeds averaged per image, images resampled
    assert ba["n_images"] == n_test and ba["n_replicates"] == 2 and 0 <= ba["ci_low"] <= ba["mean"] <= ba["ci_high"] <= 1
    assert ba["mean"] == pytest.approx(results.loc[results["arm"] == "original", "balanced_accuracy"].mean())  # linear in correctness
    assert ba["over_trainings"]["n"] == 2 and "test images" in ba["interval"]
    assert summary["degenerate_trainings"]["original"] == int(results.loc[results["arm"] == "original", "degenerate"].sum())
    comp = [c for c in summary["comparisons"] if c["arm"] == "original+synthetic" and c["metric"] == "balanced_accuracy"][0]
    assert comp["reference"] == "original" and comp["over_trainings"]["test"] == "wilcoxon" and comp["n_pairs"] == 2
    assert comp["role"] == "secondary" and comp["n_images"] == n_test and comp["n_replicates"] == 2 and "averaged over training seeds" in comp["estimand"]
    assert comp["verdict"] in ("evidence of an improvement", "evidence of a decrease", "no evidence of a difference", "not estimable")
    if comp["verdict"] != "not estimable":
        assert -1 <= comp["ci_low"] <= comp["mean_diff"] <= comp["ci_high"] <= 1 and 0 < comp["p_value"] <= comp["p_adjusted"] <= 1 and comp["mdd"] > 0
    assert comp["line"] in result.out and results["degenerate"].dtype == bool
    table = (folder / "table.txt").read_text()
    assert "Accuracy" in table and "Sensitivity" in table and "76.51" in table and "skipped" in table
    assert "estimand: balanced accuracy of the trained pipeline" in table and comp["line"] in table and "degen." in table
    assert Run(run).stage_status("compare") == "done"

    # a re-run trains nothing; a lost unit is retrained alone, with the same numbers
    again = run_cli("compare")
    assert again.code == 0 and "trained 0, reused 8" in again.out
    lost = folder / "units" / "original+synthetic__f0__s1.json"
    before = json.loads(lost.read_text())
    lost.unlink()
    resumed = run_cli("compare")
    assert resumed.code == 0 and "trained 1, reused 7" in resumed.out
    after = json.loads(lost.read_text())
    timeless = lambda h: [{k: v for k, v in e.items() if k != "train_seconds"} for e in h]
    assert after["predictions"] == before["predictions"] and timeless(after["history"]) == timeless(before["history"])

    # once the filter has run, the filtered arm and its random control join
    index = pd.read_csv(run / "samples" / "index.csv")
    kept = index.groupby("label").head(3)  # 3 per class "kept"
    with Run(run).stage("filter"):
        (run / "filter").mkdir(exist_ok=True)
        kept.to_csv(run / "filter" / "kept.csv", index=False)
    result = run_cli("compare", "--seeds", "1", "--arm", "original,original+filtered")  # (the random-subset arm: see above)
    assert result.code == 0, result.err
    assert "trained 1, reused 1" in result.out
    results = pd.read_csv(folder / "results.csv")
    assert list(results["arm"]) == ["original", "original+filtered"] and list(results["n_train_synthetic"]) == [0, 6]
    summary = json.loads((folder / "summary.json").read_text())
    assert {(c["arm"], c["reference"]) for c in summary["comparisons"]} == {("original+filtered", "original")}
    assert summary["primary"] == []  # the random-subset and synthetic controls did not run
    assert summary["skipped"] == {} and summary["seeds"] == [0]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["compare", "--arm", "bogus"], "unknown arm 'bogus'"),
        (["compare", "--seeds", "0"], "--seeds must be at least 1"),
        (["compare"], "run `ctqc train` first"),
    ],
)
def test_compare_bad_input(run_cli, args, message):
    assert run_cli("-q", "data", "prepare", "--config", "smoke").code == 0  # a run without GAN samples
    result = run_cli(*args)
    assert result.code == 2 and message in result.err
    assert len(result.err.strip().splitlines()) == 1 and "Traceback" not in result.err


def test_compare_without_a_run(run_cli):
    result = run_cli("compare")
    assert result.code == 2 and "no run found" in result.err


def test_a_constant_output_model_is_flagged_degenerate(fold_data, tmp_path, monkeypatch):
    """A training whose model predicts one class for every image gets degenerate = true; a normal one does not."""
    from classify.training import FitResult
    from ctqc.stages.compare import jobs, summarise

    class Constant(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = torch.nn.Parameter(torch.tensor([2.0, -2.0]))  # always class 0

        def forward(self, x):
            return self.bias.expand(x.shape[0], 2)

    monkeypatch.setattr(jobs, "fit_classifier", lambda *a, **k: FitResult(model=Constant(), best_epoch=1, epochs_run=1))
    cfg = Config(data=DataConfig(phantom=PhantomConfig(n_per_class=20, size=32)))
    job = make_job(cfg, fold_data, "original", 0, [0, 1], tmp_path, threads=1)
    record = jobs.train_unit(job)
    assert record["row"]["degenerate"] is True and set(record["predictions"]["pred"]) == {0}
    assert record["row"]["specificity"] == 1 and record["row"]["sensitivity"] == 0
    assert not jobs.is_degenerate([0, 1, 0], [1, 1, 0]) and jobs.is_degenerate([0, 1], [1, 1])
    # ... and the summary counts it per arm, from results.csv's column
    results = pd.DataFrame([record["row"]])
    summary = summarise(results, cfg, ["original"], {}, [0], [0], {record["key"]: record["predictions"]})
    assert summary["degenerate_trainings"]["original"] == 1
