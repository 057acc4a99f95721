"""`ctqc report`: one self-contained HTML file and summary.json, from run-directory files only.

Runs shared by this module and tests/test_report_browser.py (built once per session):

- ``smoke``: a real smoke run on the built-in phantoms, ``train`` → ``generate`` → ``score`` →
  ``filter`` (t-SNE only);
- ``full``: a copy of it plus fabricated ``qc/metrics.json``, ``qc/selftest.json`` and
  ``compare/`` files that follow the artefact models (:mod:`ctqc.artefacts`) with chosen numbers;
- ``xss``: a ``train`` + ``generate`` run over a data folder with a file named
  ``<img src=x onerror=alert(1)>.png`` and a class named ``<script>``;
- ``xss_full``: a copy of it with the fabricated downstream files, so user
  strings reach every section.
"""

from __future__ import annotations

import base64
import io
import json
import shutil
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.conftest import paired_t, t_test_summary

XSS_FILE_ID = "<img src=x onerror=alert(1)>"
XSS_CLASS = "<script>"
ARMS = ["original", "original+classical", "synthetic-only", "original+synthetic", "original+filtered"]
_RUNS: dict[str, Path] = {}

# a size-matched gap as ``ctqc qc`` stores it (qc/metrics.json, ``Estimate.gap``)
KID_GAP = {
    "estimate": -0.004,
    "ci_low": -0.007,
    "ci_high": -0.001,
    "synthetic": 0.002,
    "floor": 0.006,
    "n": 11,
    "n_bootstrap": 200,
    "draws": 10,
    "verdict": "below the floor (copying signal)",
    "interval": "95 % basic bootstrap interval",
}


# ----------------------------------------------------------------------------- shared runs


def _train(root: Path, data: Path | None = None, extra: tuple[str, ...] = (), stages: tuple[str, ...] = ("train", "generate")) -> Path:
    from ctqc.config import load_config
    from ctqc.pipeline import run_pipeline

    cfg = load_config("smoke", [f"run.root={root}", *extra], data)
    return run_pipeline(cfg, stages=stages, progress=False, say=lambda _: None).run.path


def shared_run(name: str, tmp_path_factory) -> Path:
    """One of the session's runs (see the module docstring), built on first use."""
    if name in _RUNS:
        return _RUNS[name]
    if name == "smoke":
        # t-SNE only: UMAP's numba compilation costs ~20-60 s per process here and adds nothing to the report's tests
        path = _train(tmp_path_factory.mktemp("report_smoke") / "runs", extra=("qc.embeddings=[tsne]",), stages=("train", "generate", "score", "filter"))
    elif name == "full":
        path = _copy_run(shared_run("smoke", tmp_path_factory), tmp_path_factory.mktemp("report_full"))
        fabricate_downstream(path)
    elif name == "xss":
        data = write_xss_data(tmp_path_factory.mktemp("xss_data") / "data")
        path = _train(tmp_path_factory.mktemp("report_xss") / "runs", data, ("gan.epochs=1", f"data.classes={{0: normal, 1: '{XSS_CLASS}'}}"))
    elif name == "xss_full":
        path = _copy_run(shared_run("xss", tmp_path_factory), tmp_path_factory.mktemp("report_xss_full"))
        fabricate_downstream(path)
    else:
        raise KeyError(name)
    _RUNS[name] = path
    return path


def _copy_run(src: Path, parent: Path) -> Path:
    dst = parent / src.name
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("report"))
    manifest = json.loads((dst / "manifest.json").read_text())
    manifest["stages"].pop("report", None)
    (dst / "manifest.json").write_text(json.dumps(manifest))
    return dst


def write_xss_data(folder: Path) -> Path:
    """The phantom demo data with image 000 renamed to an HTML payload (classes keep keys 0/1)."""
    from ctqc.demo_data import write_kaggle_layout
    from ctqc.phantoms import PhantomSpec

    write_kaggle_layout(folder, PhantomSpec(n_per_class=16, size=64, seed=0))
    (folder / "head_ct" / "000.png").rename(folder / "head_ct" / f"{XSS_FILE_ID}.png")
    labels = (folder / "labels.csv").read_text().splitlines()
    (folder / "labels.csv").write_text("\n".join(line.replace("000,", f"{XSS_FILE_ID},", 1) if line.startswith("000,") else line for line in labels) + "\n")
    return folder


def fabricate_downstream(run: Path) -> dict:
    """qc/metrics.json, qc/selftest.json and compare/* following the artefact models, with chosen numbers.

    The run's own qc/scores.csv (score stage) stays: the calibration plot reads it. Returns the
    numbers the report must show.
    """
    splits = pd.read_csv(run / "splits.csv", dtype={"id": str})
    index = pd.read_csv(run / "samples" / "index.csv")
    classes = list(dict.fromkeys(splits["class"]))
    rng = np.random.default_rng(0)
    ci = lambda v, lo, hi, f, flo, fhi: {"value": v, "ci_low": lo, "ci_high": hi, "floor": f, "floor_ci_low": flo, "floor_ci_high": fhi}  # noqa: E731
    scopes = {
        "all": {
            "n_real": 23,
            "n_synthetic": 16,
            "n_floor": 11,
            "fid": ci(120.0, 100.0, 140.0, 30.0, 20.0, 45.0),
            "kid": {**ci(0.05, 0.03, 0.07, 0.001, -0.002, 0.004), "std": 0.01, "gap": KID_GAP},
            "precision": ci(0.4, 0.3, 0.5, 0.8, 0.7, 0.9),
            "recall": ci(0.2, 0.1, 0.3, 0.8, 0.7, 0.9),
        }
    }
    scopes[classes[0]] = {"n_real": 11, "n_synthetic": 8, "n_floor": 5, "fid": ci(40.0, 25.0, 60.0, 35.0, 22.0, 50.0)}  # overlapping: no evidence of a gap
    scopes[classes[1]] = {"n_real": 12, "fid": {"value": 55.0, "floor": 33.0}}  # no CIs at all
    pair_train = splits[(splits["role"] == "train") & (splits["class"] == classes[1])]["id"].iloc[0]
    pair_file = index[index["class"] == classes[1]]["file"].iloc[0]
    metrics = {
        "extractor": "inception-v3 pool3",
        "n_bootstrap": 200,
        "warnings": [f"{classes[1]}: only 12 real images; FID is biased upwards at this size"],
        "scopes": scopes,
        "c2st": {
            classes[0]: {"auc": 0.912, "accuracy": 0.83, "p_value": 1 / 201, "n_real": 11, "n_synthetic": 8},
            classes[1]: {"auc": 0.55, "accuracy": 0.5, "p_value": 0.31, "n_real": 12, "n_synthetic": 8},
        },
        "memorisation": {
            classes[0]: {"c_t": -0.4, "n_flagged": 0, "pairs": []},
            classes[1]: {"c_t": -3.5, "n_flagged": 1, "pairs": [{"sample_id": pair_file[:-4], "file": pair_file, "train_id": pair_train, "correlation": 0.97, "ratio": 0.05}]},
        },
    }
    (run / "qc").mkdir(exist_ok=True)
    (run / "qc" / "metrics.json").write_text(json.dumps(metrics))
    selftest = {
        "n_images": 178, "features": ["pixels", "fft", "histogram"], "classifier": "logreg", "threshold": 0.6,
        "null": {"auc": [0.49, 0.52, 0.45], "p_values": [0.4, 0.9, 0.09], "discarded_fraction": [0.02, 0.07, 0.0], "pass": True},
        "planted": {"auroc": {"checkerboard": {"low": 0.892, "medium": 0.956, "high": 0.956}, "intensity_shift": {"low": 0.625, "medium": 0.875, "high": 0.953}}, "rising_with_strength": True, "medium_at_least_0.9": False, "pass": False},
        "copies": {"flagged": {"exact": 1.0, "noisy": 1.0, "shifted_1px": 1.0, "flipped": 1.0}, "genuine_flagged": 0.0, "pass": True},
        "set_level": {
            "n_repeats": 10, "n_distinct": 5, "set_size": 89, "mmd_permutations": 200, "c2st_permutations": 20,
            "defects": {"reduced_diversity": {"mmd_detected": 1.0, "c2st_detected": 0.7}, "duplicated": {"mmd_detected": 0.9, "c2st_detected": 0.3}, "typical_images": {"mmd_detected": 0.6, "c2st_detected": 0.2, "judged": False}},
            "null": {"mmd_rejected": 0.1}, "dedup": {"threshold": 0.99, "flagged": {"exact": 1.0, "near": 0.97}, "genuine_flagged": 0.02, "pass": True},
            "detected_at_least_0.9": True, "null_rejected_at_most_0.2": True, "pass": True,
        },
        "pass": False,
        "data": {"location": "built-in phantoms", "fingerprint": "x", "images_used": "train + val of fold 0 (test never)"},
    }  # fmt: skip
    (run / "qc" / "selftest.json").write_text(json.dumps(selftest))
    results = []
    for arm_i, arm in enumerate(ARMS):
        for seed in range(5):
            acc = float(np.clip(0.75 + 0.02 * arm_i - (0.15 if arm == "synthetic-only" else 0) + rng.normal(0, 0.03), 0, 1))
            results.append(
                {
                    "arm": arm,
                    "fold": 0,
                    "seed": seed,
                    "n_train_real": 0 if arm == "synthetic-only" else 23,
                    "n_train_synthetic": 0 if arm == "original" else 16,
                    "n_val": 5,
                    "n_test": 4,
                    "accuracy": acc,
                    "sensitivity": acc + 0.02,
                    "specificity": acc - 0.02,
                    "balanced_accuracy": acc,
                    "roc_auc": min(1.0, acc + 0.05),
                    "best_epoch": 1,
                    "epochs_run": 2,
                    "seconds": 1.5,
                }
            )
    (run / "compare" / "predictions").mkdir(parents=True)
    pd.DataFrame(results).to_csv(run / "compare" / "results.csv", index=False)
    stat = lambda m, lo, hi: {"mean": m, "ci_low": lo, "ci_high": hi, "n": 5}  # noqa: E731
    metric_names = ("accuracy", "sensitivity", "specificity", "balanced_accuracy", "roc_auc")
    summary = t_test_summary(
        list(metric_names),
        {arm: {m: stat(0.70 + 0.02 * i, 0.62 + 0.02 * i, 0.78 + 0.02 * i) for m in metric_names} for i, arm in enumerate(ARMS)},
        (
            paired_t("synthetic-only", -0.16, -0.22, -0.10, 0.0004, note="5 pairs: few for a paired test"),
            paired_t("original+filtered", 0.01, -0.05, 0.07, 0.7, metric="accuracy"),
        ),
        skipped={"original+random-subset": "the filter kept no images, so there is no subset size to match"},
        paper={
            "original": {"label": "ResNet-50 (original)", "accuracy": 0.7651, "sensitivity": 0.7237, "specificity": 0.8304},
            "synthetic-only": {"label": "ResNet-50 (only DA)", "accuracy": 0.6061, "sensitivity": 0.9315, "specificity": 0.6848},
        },
        notes=["paper, 'only DA' row: shown as printed"],
        config={"arch": "resnet18"},
    )
    (run / "compare" / "summary.json").write_text(json.dumps(summary))
    return {"metrics": metrics, "summary": summary}


def report_of(name: str, tmp_path_factory):
    """(run path, ReportResult) — the report of a shared run, rendered once per session."""
    key = f"report:{name}"
    if key not in _RUNS:
        from ctqc.run import Run
        from ctqc.stages.report import make_report

        run = shared_run(name, tmp_path_factory)
        _RUNS[key] = make_report(Run.open(run))  # type: ignore[assignment]
    return shared_run(name, tmp_path_factory), _RUNS[key]


@pytest.fixture(scope="module")
def smoke_report(tmp_path_factory):
    return report_of("smoke", tmp_path_factory)


@pytest.fixture(scope="module")
def full_report(tmp_path_factory):
    return report_of("full", tmp_path_factory)


@pytest.fixture(scope="module")
def xss_report(tmp_path_factory):
    return report_of("xss", tmp_path_factory)


@pytest.fixture(scope="module")
def xss_full_report(tmp_path_factory):
    return report_of("xss_full", tmp_path_factory)


# ----------------------------------------------------------------------------- HTML helpers


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.sections: dict[str, str] = {}
        self._section: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        self.tags.append((tag, attrs))
        if tag == "section":
            self._section, self._text = attrs.get("id"), []

    def handle_endtag(self, tag):
        if tag == "section" and self._section:
            self.sections[self._section] = " ".join(" ".join(self._text).split())
            self._section = None

    def handle_data(self, data):
        if self._section:
            self._text.append(data)


def parse(html: str) -> _Tags:
    p = _Tags()
    p.feed(html)
    return p


SECTION_IDS = ["run", "data", "gan", "samples", "metrics", "embeddings", "c2st", "memorisation", "filter", "classification", "selftest", "conclusion"]


# ----------------------------------------------------------------------------- tests


def test_full_report_renders_every_section_with_the_saved_numbers(full_report):
    run, result = full_report
    html = result.html_path.read_text()
    doc = parse(html)
    assert list(doc.sections) == SECTION_IDS
    assert result.summary["sections"] == {s: "ran" for s in SECTION_IDS}
    text = doc.sections
    # 1 run summary: fingerprint, collapsible config, stage timings
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["data"]["fingerprint"] in text["run"] and "epochs: 2" in text["run"]
    assert any(t == "details" for t, _ in doc.tags) and "train" in text["run"]
    # 2 data: class counts, split sizes, example real images with their ids
    splits = pd.read_csv(run / "splits.csv", dtype={"id": str})
    first_train = splits[(splits["role"] == "train") & (splits["class"] == "normal")]["id"].iloc[0]
    train = splits[(splits["fold"] == 0) & (splits["role"] == "train")]
    assert f"train {(train['class'] == 'normal').sum()} {(train['class'] == 'haemorrhage').sum()} {len(train)}" in text["data"]
    assert first_train in text["data"] and "normal 16" in text["data"]
    # 5 distribution metrics with CIs and floors, and how to read them
    assert "120 [100, 140]" in text["metrics"] and "30 [20, 45]" in text["metrics"] and "How to read" in text["metrics"]
    assert "lies above the real-vs-real floor" in text["metrics"] and "no evidence of a distribution gap" in text["metrics"] and "without CIs no conclusion is drawn" in text["metrics"]
    assert "not size-matched" in text["metrics"]  # the FID entries above carry no gap: an older metrics.json
    # the stored size-matched gap decides KID's verdict (its full-pool CI lies above the floor's, its gap below 0)
    assert "KID at the floor's n (11) 0.002 vs floor 0.006: difference \u22120.004" in text["metrics"]
    assert "a copying signal, see the memorisation section" in text["metrics"] and "−0.004 [−0.007, −0.001]" in text["metrics"]
    # 7 C2ST: per-class AUC with permutation p; histogram with threshold; calibration from qc/scores.csv
    assert "0.912" in text["c2st"] and "p = 0.005" in text["c2st"] and "Calibration plot: not available" not in text["c2st"]
    # 8 memorisation: the fabricated pair and C_T
    assert "\u22123.5" in text["memorisation"] and "evidence of copying" in text["memorisation"]
    # 10 classification: Table 1 layout, paired differences, paper reference, skipped arm
    for arm in ARMS:
        assert arm in text["classification"]
    assert "70.0 % [62.0, 78.0]" in text["classification"] and "+2.1" in text["classification"] and "−3.0 to +7.2" in text["classification"]
    assert "ResNet-50 (only DA) 60.61 %" in text["classification"] and "original+random-subset" in text["classification"]
    assert "[1] 5 pairs: few for a paired test" in text["classification"] and "shown as printed" in text["classification"]
    assert "few for a paired test)." in text["conclusion"]  # the stage's caveat travels with the sentence
    # 11 self-test verdicts
    assert "0.875" in text["selftest"] and "fail" in text["selftest"]
    # (d) set-level defects: MMD and C2ST detection rates side by side, the typical images marked as not judged, dedup
    assert "duplicated 90" in text["selftest"] and "typical images (recorded, not judged)" in text["selftest"]
    assert "exact 100" in text["selftest"] and "near 97" in text["selftest"] and "correlation ≥ 0.99" in text["selftest"]
    assert saved_selftest_pass(result) is True
    # the global tests per fold and class: the linear C2ST next to the kernel MMD (scored by the smoke run)
    assert "MMD² (RBF)" in text["c2st"] and "MMD permutation p" in text["c2st"]
    # 12 conclusion: only what the numbers support
    conclusion = text["conclusion"]
    assert "‘original+filtered’ changed balanced accuracy by +2.1 points (95 % CI −3.0 to +7.2, p = 0.41" in conclusion
    assert "the CI includes 0, so there is no evidence of a difference" in conclusion
    assert "‘original+synthetic’ changed balanced accuracy by +5.0 points" in conclusion and "evidence of an improvement" in conclusion
    assert "‘synthetic-only’ changed balanced accuracy by −16.0 points" in conclusion and "evidence of a decrease" in conclusion
    assert "accuracy by +1.0" not in conclusion  # one headline metric, not every metric
    # summary.json: the headline numbers for scripts
    saved = json.loads(result.summary_path.read_text())
    assert saved == json.loads(json.dumps(result.summary, default=str))
    assert saved["distribution_metrics"]["scopes"]["all"]["fid"]["value"] == 120.0
    assert saved["classification"]["comparisons"][0]["mean_diff"] == 0.021
    assert saved["c2st"]["qc"]["normal"]["auc"] == 0.912 and saved["selftest"]["pass"] is False
    assert any("no evidence of a difference" in line for line in saved["conclusions"])


def saved_selftest_pass(result):
    """summary.json's verdict of the self-test's part (d)."""
    return json.loads(result.summary_path.read_text())["selftest"]["set_level_pass"]


def test_report_is_self_contained(full_report):
    """No script, stylesheet link, font or remote URL; every image an embedded, decodable PNG."""
    _, result = full_report
    html = result.html_path.read_text()
    doc = parse(html)
    tags = {t for t, _ in doc.tags}
    assert not tags & {"script", "link", "iframe", "object", "embed", "base"}
    assert "@import" not in html and "url(" not in html and "@font-face" not in html
    for tag, attrs in doc.tags:
        for key in ("src", "href", "srcset", "poster", "action"):
            value = attrs.get(key)
            if value is not None:
                assert value.startswith("data:image/png;base64,") or (key == "href" and value.startswith("#")), (tag, key, value[:60])
    images = [a["src"] for t, a in doc.tags if t == "img"]
    assert len(images) > 40
    for src in images:
        with Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1]))) as im:
            assert im.format == "PNG" and min(im.size) > 0
    assert "Content-Security-Policy" in html and "default-src 'none'" in html


def test_train_only_run_renders_with_other_sections_marked_not_run(xss_report):
    run, result = xss_report
    html = result.html_path.read_text()
    doc = parse(html)
    assert list(doc.sections) == SECTION_IDS
    ran = {k for k, v in result.summary["sections"].items() if v == "ran"}
    assert ran == {"run", "data", "gan", "samples", "conclusion"}
    for sid, command in (
        ("metrics", "ctqc qc"),
        ("embeddings", "ctqc filter"),
        ("c2st", "ctqc filter"),
        ("memorisation", "ctqc filter"),
        ("filter", "ctqc filter"),
        ("classification", "ctqc compare"),
    ):
        assert doc.sections[sid].endswith(f"not run — run {command}"), doc.sections[sid]
    assert "not run — run ctqc selftest --out" in doc.sections["selftest"]
    assert "No conclusion is drawn about" in doc.sections["conclusion"]
    # GAN training and samples are there: grids, and a thumbnail per synthetic image
    assert "epoch 1" in doc.sections["gan"]
    n_samples = len(pd.read_csv(run / "samples" / "index.csv"))
    assert html.count('title="synthetic ') == n_samples


def test_user_strings_are_escaped(xss_report, xss_full_report):
    """File names and class names are user data: never emitted as markup."""
    for run, result in (xss_report, xss_full_report):
        splits = pd.read_csv(run / "splits.csv", dtype={"id": str})
        assert XSS_FILE_ID in set(splits["id"]) and XSS_CLASS in set(splits["class"])
        html = result.html_path.read_text()
        assert "<script" not in html.lower()
        assert "<img src=x" not in html and "onerror=alert" not in html.replace("onerror=alert(1)&gt;", "")
        assert "&lt;script&gt;" in html
        summary_text = result.summary_path.read_text()
        assert XSS_CLASS in summary_text  # JSON keeps the real name; only HTML escapes
    # the payload is the first normal training image (seed 0), so it is shown, escaped, as an example
    run, result = xss_report
    assert pd.read_csv(run / "splits.csv", dtype={"id": str}).set_index("id").loc[XSS_FILE_ID, "role"] == "train"
    assert "&lt;img src=x onerror=alert(1)&gt;" in result.html_path.read_text()


def test_cli_report_writes_html_summary_and_manifest_stage(tmp_path_factory, run_cli, tmp_path):
    run = _copy_run(shared_run("smoke", tmp_path_factory), tmp_path / "copy")
    out = tmp_path / "mail" / "report.html"
    out.parent.mkdir()
    result = run_cli("report", "--run", run, "--html", "--out", out)
    assert result.code == 0, result.err
    html = (run / "report" / "report.html").read_bytes()
    assert out.read_bytes() == html and "report.html" in result.out
    assert len(html) < 3_000_000  # a smoke run's report: thumbnails, grids and figures embedded
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["stages"]["report"]["status"] == "done"
    assert manifest["stages"]["report"]["outputs"] == ["report/report.html", "report/summary.json"]
    assert not list((run / "report").glob(".*.tmp"))
    shown = run_cli("report", "--run", run, "--json")
    assert shown.code == 0, shown.err
    assert json.loads(shown.out) == json.loads((run / "report" / "summary.json").read_text())
    assert json.loads(shown.out)["filter"]["kept"] + json.loads(shown.out)["filter"]["rejected"] == 16
    refused = run_cli("report", "--run", run, "--no-html", "--out", tmp_path / "x.html")
    assert refused.code == 2 and "--out" in refused.err
    missing = run_cli("report", "--run", tmp_path / "nope")
    assert missing.code == 2 and "not found" in missing.err


def test_galleries_are_capped_and_thumbnails_small(tmp_path_factory, tmp_path):
    """A big pool does not make a big report: at most MAX_SAMPLES per class, each thumbnail ≤ 64 px."""
    from ctqc.run import Run
    from ctqc.stages.report import make_report
    from reports.sections import MAX_GALLERY, MAX_SAMPLES

    run = _copy_run(shared_run("smoke", tmp_path_factory), tmp_path)
    index = pd.read_csv(run / "samples" / "index.csv")
    rows = []
    for _, r in index.iterrows():  # 25 copies of each sample, as 256-px images
        with Image.open(run / "samples" / r["file"]) as im:
            big = im.resize((256, 256))
        for k in range(25):
            name = r["file"].replace(".png", f"_{k:02d}.png")
            big.save(run / "samples" / name)
            rows.append({**r.to_dict(), "file": name, "sample_id": name[:-4]})
    pd.DataFrame(rows).to_csv(run / "samples" / "index.csv", index=False)
    rejected = pd.read_csv(run / "filter" / "rejected.csv", dtype=str)
    big_rejected = pd.concat([rejected.assign(file=rejected["file"].str.replace(".png", f"_{k:02d}.png")) for k in range(25)])
    big_rejected.to_csv(run / "filter" / "rejected.csv", index=False)
    result = make_report(Run.open(run), real_images=False)
    doc = parse(result.html_path.read_text())
    imgs = [a for t, a in doc.tags if t == "img"]
    assert sum(a.get("title", "").startswith("synthetic normal") for a in imgs) == MAX_SAMPLES
    assert sum("rejected" in a.get("title", "") for a in imgs) == MAX_GALLERY
    for a in imgs:
        if a.get("title", "").startswith("synthetic "):
            assert int(a["width"]) <= 64 and int(a["height"]) <= 64
    assert "real images were not requested" in doc.sections["data"]


def test_partial_and_unreadable_files_render(tmp_path_factory, tmp_path):
    """Every key of metrics.json / compare/summary.json is optional; a corrupt file is named, not fatal."""
    from reports.render import build_report

    run = _copy_run(shared_run("smoke", tmp_path_factory), tmp_path)
    (run / "qc" / "metrics.json").write_text(json.dumps({"scopes": {"all": {"fid": {"value": 12.5}}}}))
    (run / "compare").mkdir()
    (run / "compare" / "summary.json").write_text(json.dumps({"arms": {"original": {"accuracy": {"mean": 0.7}}}}))
    (run / "qc" / "selftest.json").write_text("{not json")
    report = build_report(run)
    doc = parse(report.html)
    assert report.summary["sections"]["metrics"] == "ran" and "12.5" in doc.sections["metrics"]
    assert report.summary["sections"]["classification"] == "ran" and "70.0 %" in doc.sections["classification"]
    assert "no paired comparisons" in doc.sections["conclusion"]
    assert report.summary["sections"]["selftest"] == "not run"
    assert any("qc/selftest.json" in p for p in report.summary["problems"]) and "qc/selftest.json: not valid JSON" in report.html


def test_conclusion_sentences_follow_the_confidence_interval():
    from reports.conclusion import c2st_sentence, comparison_sentence, fmt_p

    base = {"arm": "original+filtered", "reference": "original", "metric": "balanced_accuracy", "p_value": 0.41, "n_pairs": 15}
    same = comparison_sentence({**base, "mean_diff": 0.021, "ci_low": -0.03, "ci_high": 0.072})
    assert same.startswith("‘original+filtered’ changed balanced accuracy by +2.1 points (95 % CI −3.0 to +7.2, p = 0.41, 15 paired")
    assert "compared with no augmentation (original)" in same and "no evidence of a difference" in same
    better = comparison_sentence({**base, "mean_diff": 0.04, "ci_low": 0.001, "ci_high": 0.08, "p_value": 0.04})
    assert "evidence of an improvement" in better and "no evidence" not in better
    no_ci = comparison_sentence({**base, "mean_diff": 0.04, "ci_low": None, "ci_high": None})
    assert "not evidence of a difference" in no_ci
    assert comparison_sentence({**base, "mean_diff": None}) is None
    assert fmt_p(1 / 201) == "p = 0.005" and fmt_p(0.0001) == "p < 0.001" and fmt_p(0.05) == "p = 0.05" and fmt_p(1.0) == "p = 1"
    assert "tells the synthetic images from real ones" in c2st_sentence("normal", {"auc": 0.99, "p_value": 1 / 201})
    assert "no evidence" in c2st_sentence("normal", {"auc": 0.56, "p_value": 0.3})


def test_templates_autoescape():
    from reports.render import environment

    template = environment().from_string("{{ x }}")
    assert template.render(x="<script>alert(1)</script>") == "&lt;script&gt;alert(1)&lt;/script&gt;"
    assert environment().get_template("report.html.j2").environment.autoescape is True


def test_kfold_run_shows_every_fold(tmp_path_factory, tmp_path):
    """Runs with several folds: split sizes and GAN summaries per fold; figures and grids for fold 0."""
    from reports.render import build_report

    run = _copy_run(shared_run("smoke", tmp_path_factory), tmp_path)
    splits = pd.read_csv(run / "splits.csv", dtype={"id": str})
    pd.concat([splits, splits.assign(fold=1)]).to_csv(run / "splits.csv", index=False)
    shutil.copytree(run / "gan" / "fold0", run / "gan" / "fold1")
    index = pd.read_csv(run / "samples" / "index.csv")
    pd.concat([index, index.assign(fold=1)]).to_csv(run / "samples" / "index.csv", index=False)
    report = build_report(run)
    doc = parse(report.html)
    assert report.summary["data"]["folds"] == 2 and set(report.summary["gan"]) == {"fold0/normal", "fold0/haemorrhage", "fold1/normal", "fold1/haemorrhage"}
    assert "fold 1 / haemorrhage" in doc.sections["gan"] and "split (fold 0)" in doc.sections["data"]
    assert report.html.count("<figcaption>epoch 2</figcaption>") == 2  # grids of fold 0 only


def test_reports_imports_only_the_layout_artefacts_and_foundations():
    """reports/ reads run files; it never imports stage, pipeline or QC code (import-linter checks the same)."""
    import ast

    import reports

    allowed = {"ctqc.layout", "ctqc.arms", "ctqc.artefacts", "ctqc.paper", "ctqc.errors", "ctqc.atomic", "ctqc.numbers"}
    for file in Path(reports.__file__).parent.rglob("*.py"):
        for node in ast.walk(ast.parse(file.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            for name in names:
                if name == "ctqc":
                    assert isinstance(node, ast.ImportFrom) and [a.name for a in node.names] == ["__version__"], (file, name)
                elif name.startswith("ctqc."):
                    assert name in allowed, (file, name)


def test_filter_section_shows_operating_point_calibration_after_check_and_diversity(tmp_path_factory, tmp_path):
    """The smoke run's own filter.json (fixed threshold), then the same run's filter.json in conformal mode with an
    after-check well below 0.5 and a diversity warning: each shown with its numbers and two-sided wording."""
    from ctqc.artefacts import FilterSummary, read_artefact, write_artefact
    from reports.render import build_report

    run = _copy_run(shared_run("smoke", tmp_path_factory), tmp_path)
    real = read_artefact(run / "filter" / "filter.json", FilterSummary)
    text = parse(build_report(run).html).sections["filter"]
    assert "p(synthetic) > 0.6" in text and "calibrated p(synthetic)" in text and "genuine rejected" in text and "ECE" in text
    # the frozen filter on fresh images (new draws from the smoke run's generators), its kept images vs held-out reals
    assert "The frozen filter on fresh images" in text and "new draws from each fold's generator" in text
    for unit in real.per_class.values():
        assert unit.frozen is not None and unit.frozen.source == "generator" and unit.frozen.n == unit.n_synthetic
    assert "C2ST after (kept vs held-out real)" in text and "two-sided" in text and "well below 0.5 is an artefact" in text
    for unit in real.per_class.values():  # the smoke run's numbers, as computed from its stored scores
        assert unit.calibration is not None and f"of {unit.real_rejection.n} held-out" in text
    assert "Diversity: density and coverage" in text
    # ctqc qc ran after a filter that kept fewer than two images per class: said so, not "not run"
    (run / "qc" / "metrics.json").write_text(json.dumps({"extractor": "inception", "scopes": {}, "after_filter": {"kept": {"normal": 0, "haemorrhage": 1}, "scopes": {}}}))
    after = parse(build_report(run).html).sections["filter"].split("Distribution metrics before vs after", 1)[1][:300]
    assert "kept fewer than two images in every class" in after and "Not run" not in after

    filt = json.loads((run / "filter" / "filter.json").read_text())
    filt.update(mode="conformal", max_real_rejection=0.1)
    filt.pop("c2st_threshold")
    first = next(iter(filt["per_class"]))
    filt["per_class"][first].update(
        threshold=0.613,
        real_rejection={"n": 17, "rate": 0.0588, "ci": [0.0105, 0.2698], "expected": 0.0556, "guarantee": 0.1, "basis": "split conformal"},
        c2st_after={
            "auc": 0.2412,
            "accuracy": 0.3,
            "p_value": 0.99,
            "p_value_two_sided": 0.015,
            "n_real": 17,
            "n_synthetic": 40,
            "note": "AUC well below 0.5: an artefact of the comparison, not evidence of realism",
        },
        diversity={
            "k": 5,
            "n_real": 72,
            "draws": 20,
            "density_before": 1.31,
            "coverage_before": 0.83,
            "density_kept": 1.62,
            "coverage_kept": 0.41,
            "density_random": 1.29,
            "coverage_random": 0.66,
            "warning": "the kept images cover 0.41 of the real neighbourhoods, same-size random subsets 0.66: the filter removed diversity",
        },
    )
    write_artefact(run / "filter" / "filter.json", FilterSummary.model_validate(filt))
    report = build_report(run)
    doc = parse(report.html)
    text = doc.sections["filter"]
    assert "split conformal, at most 0.1 of genuine images rejected" in text and "--max-real-rejection" in text
    assert "0.613" in text and "5.6% ≤ 0.1 (split conformal, n = 17)" in text
    assert "AUC 0.241 (two-sided p = 0.015) — AUC well below 0.5: an artefact of the comparison, not evidence of realism" in text
    assert "0.83 → 0.41" in text and "0.66" in text and "1.31 → 1.62" in text and "the filter removed diversity" in text
    assert f"{first}: the kept images score AUC 0.241 against held-out real images (two-sided p = 0.015), well below 0.5 — an artefact" in doc.sections["conclusion"]
    assert "split conformal" in doc.sections["conclusion"] and "None" not in doc.sections["conclusion"]
    assert report.summary["filter"]["mode"] == "conformal" and report.summary["filter"]["per_class"][first]["threshold"] == 0.613


def test_metrics_section_shows_extractors_side_by_side_and_says_whether_they_agree(tmp_path_factory, tmp_path):
    """With several extractors (qc.metric_features as a list), each metric's pool / kept / random values sit side by side per extractor."""
    from reports.render import build_report

    run = _copy_run(shared_run("smoke", tmp_path_factory), tmp_path)
    e = lambda v: {"value": v, "ci_low": v - 1, "ci_high": v + 1}  # noqa: E731
    scope = lambda fid, mmd: {"n_real": 11, "n_synthetic": 16, "n_floor": 5, "fid": e(fid), "rbf_mmd": e(mmd)}  # noqa: E731
    sets = {
        "inception": {"pool": {"normal": scope(50, 9)}, "kept": {"normal": scope(30, 5)}, "random": {"normal": scope(52, 8)}},
        "dinov2-vits14": {"pool": {"normal": scope(700, 4)}, "kept": {"normal": scope(500, 6)}, "random": {"normal": scope(710, 3)}},
    }
    metrics = {"extractor": "inception", "extractors": list(sets), "scopes": sets["inception"]["pool"], "by_extractor": sets}
    (run / "qc" / "metrics.json").write_text(json.dumps(metrics))
    text = parse(build_report(run).html).sections["metrics"]
    assert "Extractors side by side" in text
    assert "inception: pool · kept · random" in text and "dinov2-vits14: pool · kept · random" in text
    assert "50 [49, 51] · 30 [29, 31] · 52 [51, 53]" in text and "700 [699, 701] · 500 [499, 501] · 710 [709, 711]" in text
    assert "kept > pool > random subset" in text  # FID: lower is better, on both extractors
    assert "RBF-MMD (inception)" in text  # the headline table names the kernel MMD after its extractor (CMMD only on CLIP ViT-L/14-336)
    # RBF-MMD: inception ranks kept best, DINOv2 ranks the random subset best — they disagree on that row only
    assert "same way in 1 of 2 class × metric rows; they disagree on normal RBF-MMD" in text


def test_filter_section_shows_the_strategies_side_by_side(tmp_path_factory, tmp_path):
    """`ctqc filter --strategy label --strategy both` on the smoke run: each strategy's kept per fold × class, next to the default's."""
    from ctqc.run import Run
    from ctqc.stages.filter import FilterOptions, run_filter
    from reports.render import build_report

    run = _copy_run(shared_run("smoke", tmp_path_factory), tmp_path)
    result = run_filter(Run(run), FilterOptions(strategies=("label", "both"), label_threshold=0.6))
    assert list(result.strategies) == ["realism", "label", "both"]
    report = build_report(run)
    text = parse(report.html).sections["filter"]
    assert "Selection strategies" in text and "default: realism; label threshold 0.6" in text and "realism: kept" in text and "both: kept" in text
    table = report.html.split("Selection strategies", 1)[1].split("</table>", 1)[0]
    for unit in result.per_class:
        row = table.split(f"<tr><td>{unit}</td>", 1)[1].split("</tr>", 1)[0]
        kept = [cell.split("</td>", 1)[0] for cell in row.split('<td class="r">')[1:]]
        assert kept == [f"{s.per_class[unit].kept}/{s.per_class[unit].n_synthetic}" for s in result.strategies.values()]
        assert row.count("held-out") == 3  # each strategy's genuine rejection
    assert report.summary["filter"]["strategy"] == "realism"
    assert report.summary["filter"]["strategies"] == {n: {u: v.kept for u, v in s.per_class.items()} for n, s in result.strategies.items()}
