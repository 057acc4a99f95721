"""Typed artefacts (``ctqc.artefacts``): every model round-trips, and every JSON file of a run validates.

The run is the report tests' smoke run (train → generate → score → filter, built once per
session), copied and finished with the stages that write the other artefacts (qc, selftest,
compare, report).
"""

from __future__ import annotations

import json
import math
import shutil

import pytest

from ctqc import atomic
from ctqc.artefacts import (
    AfterFilter,
    C2STResult,
    CompareSummary,
    Estimate,
    FilterSummary,
    FilterUnit,
    Manifest,
    QCMetrics,
    Scoring,
    Selftest,
    UnitScoring,
    read_artefact,
    write_artefact,
)
from ctqc.errors import UserError
from ctqc.layout import RunLayout
from tests.test_report import _copy_run, fabricate_downstream, shared_run

C2ST = {"auc": 0.91, "accuracy": 0.83, "p_value": 0.005, "n_real": 11, "n_synthetic": 8}
ESTIMATE = {"value": 120.0, "ci_low": 100.0, "ci_high": 140.0, "matched": 118.0, "floor": 30.0, "floor_ci_low": 20.0, "floor_ci_high": 45.0}


def examples() -> list:
    """One instance of every artefact model, with every kind of field filled."""
    unit = UnitScoring(fold=0, class_="normal", label=0, n_synthetic=8, n_reference=11, n_heldout=3, c2st=C2STResult(**C2ST), copy_threshold=0.02)
    filter_unit = FilterUnit(n_synthetic=8, kept=5, rejected_c2st=2, rejected_copy=1, c2st_before=C2STResult(**C2ST), c2st_after=C2STResult(auc=0.6, note="few images"), copy_threshold=None)
    conformal_unit = FilterUnit.model_validate(
        {
            "n_synthetic": 8, "kept": 5, "rejected_c2st": 2, "rejected_copy": 1, "c2st_before": C2ST, "copy_threshold": 0.02,
            "c2st_after": {"auc": 0.24, "p_value": 0.99, "p_value_two_sided": 0.02, "n_real": 17, "n_synthetic": 5, "note": "artefact"},
            "threshold": 0.61, "real_rejection": {"n": 17, "rate": 0.06, "ci": [0.01, 0.27], "expected": 0.0556, "guarantee": 0.1, "basis": "split conformal"},
            "calibration": {"ece": 0.17, "bins": [{"lower": 0.5, "upper": 0.6, "n": 19, "mean_score": 0.55, "observed": 0.42}], "n_real": 11, "n_synthetic": 8, "score": "not calibrated"},
            "diversity": {"k": 5, "n_real": 11, "draws": 20, "density_before": 1.1, "coverage_before": 0.8, "density_kept": 1.4, "coverage_kept": 0.5, "density_random": 1.1, "coverage_random": 0.7, "warning": "removed diversity"},
            "notes": ["a note"],
        }
    )  # fmt: skip
    metrics = QCMetrics.model_validate(
        {
            "extractor": "inception", "n_bootstrap": 200, "c2st_features": ["pixels", "fft"], "c2st_classifier": "logreg",
            "reference": "training images", "warnings": ["normal: few images"],
            "scopes": {"normal": {"n_real": 11, "n_synthetic": 8, "n_floor": 5, "fid": ESTIMATE, "kid": {**ESTIMATE, "std": 0.01}}},
            "c2st": {"normal": C2ST},
            "memorisation": {"normal": {"c_t": -3.5, "n_flagged": 1, "copy_threshold": 0.02, "pairs": [{"sample_id": "s", "file": "s.png", "train_id": "007", "correlation": 0.97, "ratio": 0.05, "flagged": True}]}},
            "after_filter": {"kept": {"normal": 5}, "scopes": {"normal": {"n_synthetic": 5, "fid": ESTIMATE}}},
            "domain_encoders": {"fold0": {"weights": "domain_fold0.pt", "n_images": 23}},
        }
    )  # fmt: skip
    selftest = Selftest.model_validate(
        {
            "n_images": 28, "features": ["pixels"], "classifier": "logreg", "threshold": 0.6,
            "null": {"auc": [0.49, 0.52], "p_values": [0.4, 0.9], "discarded_fraction": [0.0, 0.05], "pass": True},
            "planted": {"auroc": {"blur": {"low": 0.8, "medium": 0.95, "high": 1.0}}, "intensity_shift_units": {"brightness_spread": 0.06, "strengths": {"low": 1.0}}, "rising_with_strength": True, "medium_at_least_0.9": True, "pass": True},
            "copies": {"flagged": {"exact": 1.0}, "genuine_flagged": 0.0, "pass": True},
            "pass": True,
            "data": {"location": "built-in phantoms", "fingerprint": "abc", "images_used": "train + val of fold 0 (test never)"},
        }
    )  # fmt: skip
    compare = CompareSummary.model_validate(
        {
            "metrics": ["accuracy"], "arms": {"original": {"accuracy": {"mean": 0.7, "ci_low": 0.6, "ci_high": 0.8, "sd": 0.05, "n": 4}}},
            "comparisons": [{"arm": "original+synthetic", "reference": "original", "metric": "accuracy", "mean_diff": 0.02, "ci_low": -0.01, "ci_high": 0.05, "p_value": 0.3, "test": "wilcoxon", "n_pairs": 4, "note": "4 pairs"}],
            "skipped": {"original+filtered": "the filter has not run"}, "paper": {"original": {"label": "ResNet-50 (original)", "accuracy": 0.7651}},
            "seeds": [0, 1], "folds": [0], "config": {"classifier": {"arch": "resnet18"}}, "ci": "t", "paired_by": ["fold", "seed"],
            "test": "wilcoxon", "positive_class": "haemorrhage", "evaluated_on": "test", "notes": ["n"], "wall_seconds": 1.5,
            "processes": 2, "threads_per_process": 1, "torchrun_processes": 1,
        }
    )  # fmt: skip
    manifest = Manifest.model_validate(
        {
            "ctqc_version": "0.1.0", "git_commit": None, "created": "2026-01-01T00:00:00+00:00", "name": "smoke", "config_hash": "abc",
            "data": {"fingerprint": "f", "content_hash": "c", "kind": "phantom", "location": "built-in phantoms", "n_images": 32, "image_size": 32, "class_counts": {"normal": 16}, "warnings": []},
            "pipeline": True,
            "stages": {"data": {"status": "done", "started": "s", "finished": "f", "seconds": 0.1, "outputs": ["splits.csv"]}, "train": {"status": "failed", "started": "s", "finished": None, "error": "KeyboardInterrupt"}},
        }
    )  # fmt: skip
    return [
        Scoring(features=["pixels"], classifier="logreg", fitted_on="training images", units={"fold0/normal": unit}),
        FilterSummary(c2st_threshold=0.6, memorisation=True, features=["pixels"], classifier="logreg", kept=5, rejected=3, per_class={"fold0/normal": filter_unit}, fitted_on="training images"),
        FilterSummary(
            mode="conformal",
            max_real_rejection=0.1,
            after_check="kept vs held-out",
            memorisation=True,
            features=["pixels"],
            classifier="logreg",
            kept=5,
            rejected=3,
            per_class={"fold0/normal": conformal_unit},
            fitted_on="training images",
        ),
        metrics,
        selftest,
        compare,
        manifest,
    ]


@pytest.mark.parametrize("model", examples(), ids=lambda m: type(m).__name__)
def test_every_model_round_trips(model, tmp_path):
    path = tmp_path / "artefact.json"
    write_artefact(path, model)
    again = read_artefact(path, type(model))
    assert again == model
    assert json.loads(path.read_text()) == json.loads(atomic.json_text(again.model_dump(by_alias=True, exclude_unset=True)))


def test_nan_is_written_as_null_and_read_back_as_none(tmp_path):
    metrics = QCMetrics(scopes={"all": {"fid": Estimate(value=math.nan, floor=math.inf)}}, after_filter=AfterFilter())
    path = tmp_path / "metrics.json"
    write_artefact(path, metrics)
    text = path.read_text()
    assert "NaN" not in text and "Infinity" not in text
    assert json.loads(text)["scopes"]["all"]["fid"] == {"value": None, "floor": None}
    assert read_artefact(path, QCMetrics).scopes["all"].fid.value is None


def test_invalid_artefacts_are_refused_with_the_field_named(tmp_path):
    path = tmp_path / "summary.json"
    path.write_text(json.dumps({"arms": {"original": {"accuracy": {"mean": "high"}}}}))
    with pytest.raises(UserError, match=r"not a valid CompareSummary \(arms\.original\.accuracy\.mean"):
        read_artefact(path, CompareSummary)
    path.write_text(json.dumps({"scopes": {}, "typo": 1}))
    with pytest.raises(UserError, match="typo"):
        read_artefact(path, QCMetrics)


@pytest.mark.slow
def test_every_artefact_of_a_smoke_run_validates(tmp_path_factory, tmp_path):
    """qc, selftest, compare and report on a copy of the smoke run; every JSON artefact matches its model."""
    from ctqc.pipeline import run_pipeline
    from ctqc.run import Run

    path = _copy_run(shared_run("smoke", tmp_path_factory), tmp_path)
    run_pipeline(run=Run.open(path), stages=("qc", "selftest", "compare", "report"), progress=False, say=lambda _: None)
    layout = RunLayout(path)
    models = {
        layout.manifest: Manifest,
        layout.scoring: Scoring,
        layout.filter_summary: FilterSummary,
        layout.metrics: QCMetrics,
        layout.selftest: Selftest,
        layout.compare_summary: CompareSummary,
    }
    for file, model in models.items():
        text = file.read_text()
        assert "NaN" not in text and "Infinity" not in text, file
        artefact = read_artefact(file, model)
        # what the writer set is what the file holds: re-writing the model gives the same JSON
        assert json.loads(atomic.json_text(artefact.model_dump(by_alias=True, exclude_unset=True))) == json.loads(text), file
    manifest = read_artefact(layout.manifest, Manifest)
    assert {s for s, r in manifest.stages.items() if r.status == "done"} >= {"data", "train", "generate", "score", "filter", "qc", "selftest", "compare", "report"}
    assert read_artefact(layout.metrics, QCMetrics).after_filter is not None
    summary = json.loads(layout.report_summary.read_text())
    assert summary["sections"] == {s: "ran" for s in summary["sections"]} and not summary["problems"]


def test_fabricated_downstream_files_follow_the_models(tmp_path_factory, tmp_path):
    """The report tests' hand-written files are valid artefacts (so they test what the stages write)."""
    path = _copy_run(shared_run("smoke", tmp_path_factory), tmp_path)
    fabricate_downstream(path)
    layout = RunLayout(path)
    for file, model in ((layout.metrics, QCMetrics), (layout.selftest, Selftest), (layout.compare_summary, CompareSummary)):
        read_artefact(file, model)
    shutil.rmtree(path)


def test_planted_check_shows_a_medium_share_with_its_intervals():
    """The self-test's CLI line and report cell: pooled share, Wilson interval, range over splits — or only what is recorded."""
    from ctqc.artefacts import PlantedCheck

    full = PlantedCheck(
        removed={"noise": {"medium": 0.9511}},
        genuine_removed={"noise": {"medium": 0.0409}},
        wilson_95={"noise": {"medium": {"removed": [0.9137, 0.9728], "genuine_removed": [0.0216, 0.0761]}}},
        by_split={"noise": {"medium": {"removed": [0.89, 1.0, 0.93, 0.96, 0.98], "genuine_removed": [0.0, 0.09, 0.05, 0.02, 0.05]}}},
    )
    assert full.medium_share("removed", "noise") == "95% (Wilson 91%–97%, splits 89%–100%)"
    assert full.medium_share("genuine_removed", "noise") == "4% (Wilson 2%–8%, splits 0%–9%)"
    older = PlantedCheck(removed={"noise": {"medium": 0.89}})  # a selftest.json from before the intervals
    assert older.medium_share("removed", "noise") == "89%" and older.medium_share("removed", "blur") == "–"
