"""`ctqc compare`: arm construction without leakage, the end-to-end stage, resume, bad input."""

import dataclasses
import json
import pickle

import numpy as np
import pandas as pd
import pytest
import torch

from ctqc.artefacts import CompareSummary
from ctqc.atomic import jsonable
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
    for arm in [a for a in ARMS if a != "original+duplicated"]:  # (its real images repeat: tested below)
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


def test_the_duplicated_arm_repeats_real_images_to_the_synthetic_arms_class_counts(fold_data):
    real = list(fold_data.train.ids)
    dup = build_arm("original+duplicated", fold_data, seed=0, keys=[0, 1])
    syn = build_arm("original+synthetic", fold_data, seed=0, keys=[0, 1])
    assert (dup.n_real, dup.n_synthetic, len(dup.ids)) == (49, 0, 49) and dup.images.shape[0] == 49
    assert np.bincount(dup.targets).tolist() == np.bincount(syn.targets).tolist()  # same count per class
    assert set(dup.ids) == set(real)  # only real training images (so never validation or test ones)
    counts = pd.Series(dup.ids).value_counts()
    assert counts.min() >= 1 and counts.max() - counts.min() <= 1  # whole copies first, then a remainder
    by_id = dict(zip(real, fold_data.train.images))
    assert all(torch.equal(img, by_id[i]) for i, img in zip(dup.ids, dup.images))  # each image with its own pixels
    labels = dict(zip(real, fold_data.train.labels))
    assert all(t == labels[i] for i, t in zip(dup.ids, dup.targets))
    assert not dup.augment and build_arm("original+duplicated", fold_data, seed=0, keys=[0, 1], augment_all=True).augment


def test_dose_arms_draw_ratio_times_the_real_count_and_use_the_extension_beyond_the_pool(fold_data):
    n_real = np.bincount(np.searchsorted([0, 1], fold_data.train.labels)).tolist()  # per class
    half = build_arm("original+synthetic-x0.5", fold_data, seed=0, keys=[0, 1])
    assert half.n_synthetic == sum(round(0.5 * n) for n in n_real) and half.n_real == 29
    assert all(i.startswith("syn_") for i in half.ids[29:]) and len(set(half.ids)) == len(half.ids)
    assert np.bincount(half.targets[29:]).tolist() == [round(0.5 * n) for n in n_real]
    with pytest.raises(RuntimeError, match="beyond the pool"):  # 2 × ~15 real per class > 10 in the pool, no extension
        build_arm("original+synthetic-x2", fold_data, seed=0, keys=[0, 1])
    extra = {k: (torch.full((30, 1, 32, 32), 0.5 + k / 4), tuple(f"ext_{k}_0_{i:05d}" for i in range(30))) for k in (0, 1)}
    double = build_arm("original+synthetic-x2", dataclasses.replace(fold_data, extension=extra), seed=0, keys=[0, 1])
    assert double.n_synthetic == 2 * 29 and np.bincount(double.targets[29:]).tolist() == [2 * n for n in n_real]
    ext = [i for i in double.ids if i.startswith("ext_")]
    assert len(ext) == 2 * 29 - 20  # the whole pool first, then the extension's first images
    assert all(t == int(i.split("_")[1]) for i, t in zip(double.ids, double.targets) if i.startswith(("ext_", "syn_")))
    assert torch.equal(double.images[[double.ids.index(e) for e in ext[:1]]][0], extra[int(ext[0].split("_")[1])][0][0])


def test_filter_arms_need_the_filter(fold_data):
    no_filter = dataclasses.replace(fold_data, kept=None)
    with pytest.raises(UserError, match="ctqc filter"):
        build_arm("original+filtered", no_filter, seed=0, keys=[0, 1])


def test_each_filter_strategy_has_its_filtered_arm_and_its_own_same_size_random_control(fold_data):
    """filter/<strategy>/kept.csv → original+filtered-<strategy> (exactly its kept images) and original+random-subset-<strategy>
    (a random draw from the whole pool with its per-class counts); the plain names stay the default strategy's."""
    from ctqc.config import arm_strategy, strategy_arm
    from ctqc.stages.compare.arms import arm_order

    label_kept = frozenset(fold_data.pool["sample_id"].iloc[[3, 4, 10, 11, 12]])  # 2 normal, 3 haemorrhage
    fd = dataclasses.replace(fold_data, strategy_kept={"label": label_kept})
    held_out = set(fd.val.ids) | set(fd.test.ids)
    default = build_arm("original+filtered", fd, seed=0, keys=[0, 1])
    assert {i for i in default.ids if i.startswith("syn_")} == fd.kept  # unchanged by the further strategy
    filtered = build_arm("original+filtered-label", fd, seed=0, keys=[0, 1])
    assert {i for i in filtered.ids if i.startswith("syn_")} == label_kept and filtered.n_real == 29 and not set(filtered.ids) & held_out
    draws = set()
    for seed in range(6):
        control = build_arm("original+random-subset-label", fd, seed=seed, keys=[0, 1])
        syn = [i for i in control.ids if i.startswith("syn_")]
        assert sorted(i.split("_")[1] for i in syn) == ["0", "0", "1", "1", "1"] and control.n_real == 29  # the label set's per-class counts
        assert all(t == int(i.split("_")[1]) for i, t in zip(control.ids, control.targets) if i.startswith("syn_")) and not set(control.ids) & held_out
        draws.add(tuple(syn))
    assert len(draws) > 1  # drawn at random from the pool, not the kept set
    assert build_arm("original+random-subset-label", fd, seed=2, keys=[0, 1]).ids == build_arm("original+random-subset-label", fd, seed=2, keys=[0, 1]).ids
    with pytest.raises(UserError, match="ctqc filter --strategy both"):
        build_arm("original+filtered-both", fd, seed=0, keys=[0, 1])
    # one naming rule, and each strategy's pair sits right after the default's arm of the same kind
    assert strategy_arm("original+filtered", "label") == "original+filtered-label" and arm_strategy("original+random-subset-both") == ("original+random-subset", "both")
    assert arm_strategy("original+filtered") is None and arm_strategy("original+filtered-foo") is None
    names = ["original+random-subset-label", "original+random-subset", "original+filtered-both", "original+filtered-label", "original+filtered", "original"]
    assert sorted(names, key=arm_order) == ["original", "original+filtered", "original+filtered-label", "original+filtered-both", "original+random-subset", "original+random-subset-label"]
    pairs = comparisons_for(["original", "original+synthetic", "original+filtered", "original+filtered-label", "original+random-subset", "original+random-subset-label"])
    assert ("original+filtered-label", "original+random-subset-label") in pairs and ("original+filtered-label", "original+synthetic") in pairs
    assert ("original+filtered-label", "original+random-subset") not in pairs


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


def test_an_arm_identical_to_another_is_trained_once_and_recorded_under_both(fold_data, tmp_path):
    """With nothing kept, original+filtered is the original arm image for image: same `training`, another signature and file."""
    from ctqc.stages.compare.jobs import same_training_record

    cfg = Config(data=DataConfig(phantom=PhantomConfig(n_per_class=20, size=32)))
    empty = dataclasses.replace(fold_data, kept=frozenset())
    original = make_job(cfg, empty, "original", 0, [0, 1], tmp_path, threads=1)
    filtered = make_job(cfg, empty, "original+filtered", 0, [0, 1], tmp_path, threads=1)
    assert filtered.training == original.training and filtered.signature != original.signature
    assert make_job(cfg, fold_data, "original+filtered", 0, [0, 1], tmp_path, threads=1).training != original.training  # 4 kept: other data
    assert make_job(cfg, empty, "original", 1, [0, 1], tmp_path, threads=1).training != original.training  # another seed
    trained = {"format": 1, "key": original.key, "signature": original.signature, "row": {"arm": "original", "seconds": 12.5, "balanced_accuracy": 0.8}, "predictions": {"id": ["a"]}}
    copy = same_training_record(trained, filtered)
    assert copy["key"] == filtered.key and copy["signature"] == filtered.signature and copy["same_training_as"] == original.key
    assert copy["row"] == {"arm": "original+filtered", "seconds": 0.0, "balanced_accuracy": 0.8} and copy["predictions"] == trained["predictions"]
    assert json.loads(filtered.out.read_text()) == copy  # on disk, so that a resume finds it


def test_compare_end_to_end_resume_and_filter_arms(run_cli, tmp_path):
    assert run_cli("-q", "train", "--config", "smoke", "--set", "gan.epochs=1").code == 0
    run = (tmp_path / "runs" / "latest").resolve()
    result = run_cli("compare")
    assert result.code == 0, result.err
    assert "Acc." in result.out and "original+synthetic" in result.out and "skipped" in result.out and "Δ balanced accuracy" in result.out

    folder = run / "compare"
    results = pd.read_csv(folder / "results.csv")
    assert list(results.columns[: len(RESULT_COLUMNS)]) == RESULT_COLUMNS
    arms = ["original", "original+classical", "synthetic-only", "original+synthetic", "original+duplicated"]
    assert len(results) == 5 * 1 * 2 and list(results["arm"].unique()) == arms and set(results["seed"]) == {0, 1}
    splits = pd.read_csv(run / "splits.csv", dtype={"id": str})
    test_ids = set(splits.loc[splits["role"] == "test", "id"])
    val_ids = set(splits.loc[splits["role"] == "val", "id"])
    assert (results["n_test"] == len(test_ids)).all() and (results["n_val"] == len(val_ids)).all()
    assert results.loc[results["arm"] == "synthetic-only", "n_train_real"].eq(0).all()
    assert results.loc[results["arm"] == "original+synthetic", "n_train_synthetic"].eq(16).all()
    n_real = results.loc[results["arm"] == "original", "n_train_real"]
    assert results.loc[results["arm"] == "original+duplicated", "n_train_real"].eq(n_real.iloc[0] + 16).all()  # as many images, all real
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
    assert again.code == 0 and "trained 0, reused 10" in again.out
    lost = folder / "units" / "original+synthetic__f0__s1.json"
    before = json.loads(lost.read_text())
    lost.unlink()
    resumed = run_cli("compare")
    assert resumed.code == 0 and "trained 1, reused 9" in resumed.out
    after = json.loads(lost.read_text())
    timeless = lambda h: [{k: v for k, v in e.items() if k != "train_seconds"} for e in h]
    assert after["predictions"] == before["predictions"] and timeless(after["history"]) == timeless(before["history"])

    # once the filter has run, the filtered arm and its random control join, and so does each further strategy's pair
    index = pd.read_csv(run / "samples" / "index.csv")
    kept = index.groupby("label").head(3)  # 3 per class "kept" by the default strategy
    with Run(run).stage("filter"):
        (run / "filter" / "label").mkdir(parents=True, exist_ok=True)
        kept.to_csv(run / "filter" / "kept.csv", index=False)
        index.groupby("label").tail(2).to_csv(run / "filter" / "label" / "kept.csv", index=False)  # 2 per class by --strategy label
    result = run_cli("compare", "--seeds", "1", "--arm", "original,original+filtered,original+random-subset,original+filtered-both")
    assert result.code == 0, result.err
    assert "trained 4, reused 1" in result.out
    results = pd.read_csv(folder / "results.csv")
    arms = ["original", "original+filtered", "original+filtered-label", "original+random-subset", "original+random-subset-label"]
    assert list(results["arm"]) == arms and list(results["n_train_synthetic"]) == [0, 6, 4, 6, 4]
    label_ids = set(index.groupby("label").tail(2)["sample_id"])
    units = {a: json.loads((folder / "units" / f"{a}__f0__s0.json").read_text())["train_ids"] for a in arms}
    assert {i for i in units["original+filtered-label"] if i.startswith("syn_")} == label_ids
    control = [i for i in units["original+random-subset-label"] if i.startswith("syn_")]
    assert sorted(index.set_index("sample_id").loc[control, "label"]) == [0, 0, 1, 1]  # the label set's per-class counts
    summary = json.loads((folder / "summary.json").read_text())
    pairs = {(c["arm"], c["reference"]) for c in summary["comparisons"]}
    assert pairs == {*((a, "original") for a in arms[1:]), ("original+filtered", "original+random-subset"), ("original+filtered-label", "original+random-subset-label")}
    assert summary["primary"] == [["original+filtered", "original+random-subset"]]  # the default strategy's; the synthetic control did not run
    assert summary["skipped"] == {"original+filtered-both": "strategy both has not run: run `ctqc filter --strategy both` to add this arm"}
    assert summary["seeds"] == [0] and summary["dose_response"] == []
    nothing = run_cli("compare", "--arm", "original+filtered-both,original+filtered-realism")
    assert nothing.code == 2 and "no arm left to train" in nothing.err and "realism is the default strategy: its arm is original+filtered" in nothing.err

    # dose-response: ×0.5 draws from the pool; ×3 needs more than the pool holds and draws fresh images from the fold's generator
    n_real = int(results.loc[0, "n_train_real"])
    result = run_cli("compare", "--seeds", "1", "--arm", "original", "--ratio", "3,0.5")
    assert result.code == 0, result.err
    results = pd.read_csv(folder / "results.csv")
    assert list(results["arm"]) == ["original", "original+synthetic-x0.5", "original+synthetic-x3"]
    assert list(results["n_train_synthetic"]) == [0, round(0.5 * n_real), 3 * n_real]  # (balanced classes: even counts)
    summary = json.loads((folder / "summary.json").read_text())
    points = {p["ratio"]: p for p in summary["dose_response"]}
    assert points[0.5]["extended"] == 0 and points[3]["extended"] == 3 * n_real - 16 and points[3]["skipped"] is None
    unit = json.loads((folder / "units" / "original+synthetic-x3__f0__s0.json").read_text())
    assert sum(i.startswith("ext_") for i in unit["train_ids"]) == 3 * n_real - 16 and not set(unit["train_ids"]) & (test_ids | val_ids)
    assert {(c["arm"], c["reference"]) for c in summary["comparisons"]} == {("original+synthetic-x0.5", "original"), ("original+synthetic-x3", "original")}
    again = run_cli("compare", "--seeds", "1", "--arm", "original", "--ratio", "0.5,3")  # the extension is drawn the same way again
    assert again.code == 0 and "trained 0, reused 3" in again.out
    # a pool without its generator (images brought from elsewhere) cannot be extended: that ratio is skipped, with the reason
    for ckpt in (run / "gan").rglob("generator.pt"):
        ckpt.unlink()
    result = run_cli("compare", "--seeds", "1", "--arm", "original", "--ratio", "0.5,3")
    assert result.code == 0, result.err
    summary = json.loads((folder / "summary.json").read_text())
    assert "original+synthetic-x3" in summary["skipped"] and "no generator" in summary["skipped"]["original+synthetic-x3"]
    assert [p["skipped"] is None for p in summary["dose_response"]] == [True, False]
    assert run_cli("compare", "--ratio", "0").code == 2 and run_cli("compare", "--ratio", "x").code == 2


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


def test_the_summary_repeats_the_comparisons_without_degenerate_trainings():
    """Sensitivity analysis: a replicate with a degenerate training of either arm is left out; without any, none is made."""
    from ctqc.stages.compare import summarise

    rng = np.random.default_rng(0)
    ids, labels = [f"t{i}" for i in range(40)], np.tile([0, 1], 20)
    predictions, rows = {}, []
    for arm, right in (("original", 0.7), ("original+synthetic", 0.9)):
        for seed in range(3):
            pred = np.where(rng.random(40) < right, labels, 1 - labels)
            degenerate = arm == "original+synthetic" and seed == 2
            if degenerate:
                pred = np.zeros(40, dtype=int)  # one class for every image
            predictions[f"{arm}__f0__s{seed}"] = {"id": ids, "label": labels.tolist(), "pred": pred.tolist()}
            acc = float((pred == labels).mean())
            rows.append({"arm": arm, "fold": 0, "seed": seed, "degenerate": degenerate, **dict.fromkeys(("accuracy", "sensitivity", "specificity", "balanced_accuracy", "roc_auc"), acc)})
    results = pd.DataFrame(rows)
    cfg = Config(data=DataConfig(phantom=PhantomConfig(n_per_class=20, size=32)))
    summary = summarise(results, cfg, ["original", "original+synthetic"], {}, [0, 1, 2], [0], predictions)
    CompareSummary.model_validate(jsonable(summary))  # what summary.json holds
    sens = summary["sensitivity"]
    assert sens["excluded"] == {"original": 0, "original+synthetic": 1} and "left out" in sens["rule"]
    main = [c for c in summary["comparisons"] if c["metric"] == "balanced_accuracy"][0]
    (alone,) = sens["comparisons"]
    assert (main["n_replicates"], alone["n_replicates"]) == (3, 2) and alone["n_images"] == 40
    assert alone["estimate"] > main["estimate"]  # the degenerate seed dragged the synthetic arm down
    assert alone["line"].startswith("original+synthetic − original") and alone["role"] == "secondary"
    results["degenerate"] = False
    assert summarise(results, cfg, ["original", "original+synthetic"], {}, [0, 1, 2], [0], predictions)["sensitivity"] is None


def test_the_glance_shows_the_operating_point_the_primary_comparisons_and_the_sensitivity_line(tmp_path):
    from ctqc.artefacts import FilterSummary, write_artefact
    from ctqc.cli.show import glance_lines
    from ctqc.layout import RunLayout

    layout = RunLayout(tmp_path)
    assert glance_lines(layout) == []  # nothing has run
    c2st = {"auc": 0.9, "p_value": 0.01}
    unit = {"n_synthetic": 100, "kept": 4, "rejected_c2st": 95, "rejected_copy": 1, "c2st_before": c2st, "c2st_after": c2st, "copy_threshold": 0.1}
    filt = {"c2st_threshold": 0.6, "memorisation": True, "features": ["pixels"], "classifier": "logreg", "kept": 4, "rejected": 96, "per_class": {"fold0/normal": unit}, "fitted_on": "x"}
    layout.filter.mkdir()
    write_artefact(layout.filter_summary, FilterSummary.model_validate(filt))
    comp = lambda arm, ref, role, line: {"arm": arm, "reference": ref, "metric": "balanced_accuracy", "role": role, "line": line}
    summary = {
        "estimand": "balanced accuracy of the trained pipeline",
        "primary": [["original+filtered", "original+random-subset"], ["original+filtered", "original+synthetic"]],
        "comparisons": [
            comp("original+synthetic", "original", "secondary", "S"),
            comp("original+filtered", "original+synthetic", "primary", "P2"),
            comp("original+filtered", "original+random-subset", "primary", "P1"),
        ],
        "sensitivity": {"excluded": {"original": 2}, "comparisons": [comp("original+filtered", "original+random-subset", "primary", "P1b")]},
    }
    layout.compare.mkdir()
    write_artefact(layout.compare_summary, CompareSummary.model_validate(summary))
    lines = glance_lines(layout)
    assert lines[0].startswith("filter: kept 4 of 100 synthetic images at C2ST threshold 0.6") and "fold0/normal 4/100" in lines[0]
    assert lines[1:] == ["estimand: balanced accuracy of the trained pipeline", "primary P1", "primary P2", "without the 2 degenerate training(s): P1b"]
    conformal = {**filt, "mode": "conformal", "max_real_rejection": 0.1, "c2st_threshold": None}
    write_artefact(layout.filter_summary, FilterSummary.model_validate(conformal))
    assert glance_lines(layout)[0].startswith("filter: kept 4 of 100 synthetic images at split conformal, at most 0.1 of genuine images rejected")
    # further strategies get a line each; a default strategy other than realism is named instead of the C2ST threshold
    strategy = lambda kept: {"description": "d", "kept": kept, "rejected": 100 - kept, "per_class": {"fold0/normal": {"n_synthetic": 100, "kept": kept}}}
    with_label = {**filt, "strategies": {"realism": strategy(4), "label": strategy(70)}, "label_threshold": 0.5}
    write_artefact(layout.filter_summary, FilterSummary.model_validate(with_label))
    assert glance_lines(layout)[:2] == [lines[0], "filter strategy label: kept 70 of 100; fold0/normal 70/100"]
    label_default = {**with_label, "strategy": "label", "strategies": {"label": strategy(4)}}
    write_artefact(layout.filter_summary, FilterSummary.model_validate(label_default))
    assert glance_lines(layout)[0].startswith("filter: kept 4 of 100 synthetic images by strategy label (d; label threshold 0.5)")
