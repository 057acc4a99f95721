"""Shared set-up of the reliability suite: ctqc as a real subprocess, and small runs built once.

Every run in this suite uses the ``smoke`` preset with :data:`LIGHT` on top (a GAN
of width 8, no embeddings, few bootstrap replicates, one seed per arm), so a whole
``ctqc run`` takes seconds on two CPU cores. Tests that need a trained run copy
one of the session's runs (:func:`copy_run`) instead of training their own.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CTQC = [sys.executable, "-m", "ctqc"]
#: ``--set`` overrides on top of ``--config smoke`` for every run of the suite.
LIGHT = [
    "gan.width=8",
    "qc.embeddings=[]",
    "qc.n_bootstrap=20",
    "qc.metric_features=domain",
    "classifier.max_epochs=1",
    "compare.seeds=1",
    "compare.jobs=1",
    "compare.arms=[original,original+filtered]",
]


def light_args(*extra: str) -> list[str]:
    """``--config smoke --set …`` for a CLI call: :data:`LIGHT` plus ``extra`` overrides."""
    args = ["--config", "smoke"]
    for item in (*LIGHT, *extra):
        args += ["--set", item]
    return args


def ctqc(*args, cwd: Path, failpoint: str | None = None, audit_log: Path | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run ``python -m ctqc ARGS`` in ``cwd``.

    ``failpoint`` sets ``CTQC_FAILPOINT`` (see :mod:`ctqc.atomic`); ``audit_log`` runs it
    through :mod:`tests.reliability.write_audit`, which logs every file opened for writing.
    """
    env = {k: v for k, v in os.environ.items() if k != "CTQC_FAILPOINT"}
    env.update(PYTHONPATH=str(REPO), COLUMNS="200")
    if failpoint:
        env["CTQC_FAILPOINT"] = failpoint
    entry = CTQC if audit_log is None else [sys.executable, "-m", "tests.reliability.write_audit", str(audit_log)]
    return subprocess.run([*entry, *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def stages(run: Path) -> dict:
    """The manifest's stage entries."""
    return json.loads((run / "manifest.json").read_text())["stages"]


def copy_run(src: Path, root: Path, before: tuple[str, ...] = ()) -> Path:
    """Copy the run ``src`` to ``root/runs/`` and point ``root/runs/latest`` at the copy.

    ``before`` names stages to take back out (their folder and manifest entry): the copy
    is then the run as it was before those stages ran.
    """
    dst = root / "runs" / src.name
    shutil.copytree(src, dst, symlinks=True, ignore=shutil.ignore_patterns(*before))
    (root / "runs" / "latest").symlink_to(src.name)
    if before:
        manifest = json.loads((dst / "manifest.json").read_text())
        for stage in before:
            manifest["stages"].pop(stage, None)
        (dst / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return dst


def visible_files(root: Path) -> list[Path]:
    """Files under ``root`` that readers look at: hidden names (temporaries, staging folders) excluded."""
    return sorted(p for p in root.rglob("*") if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts))


def temporaries(root: Path) -> list[Path]:
    """Hidden temporary files and folders (``.<name>.<pid>.<random>.tmp``) under ``root``."""
    return sorted(root.rglob(".*.tmp"))


def stamps(root: Path) -> dict[str, tuple[int, int]]:
    """(inode, mtime in ns) of every visible file: an atomic rewrite changes both."""
    return {str(p.relative_to(root)): (p.stat().st_ino, p.stat().st_mtime_ns) for p in visible_files(root)}


def assert_every_file_parses(root: Path) -> int:
    """Every visible file under ``root`` is complete: JSON, CSV, YAML, checkpoints, PNGs, HTML load whole.

    Returns how many files were checked. ``stats.jsonl`` is appended line by line (by design);
    its lines are checked too.
    """
    import numpy as np
    import pandas as pd
    import torch
    import yaml
    from PIL import Image

    checked = 0
    for path in visible_files(root):
        suffix = path.suffix
        try:
            if suffix == ".json":
                json.loads(path.read_text(encoding="utf-8"))
            elif suffix == ".jsonl":
                [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
            elif suffix == ".csv":
                pd.read_csv(path)
            elif suffix in (".yaml", ".yml"):
                yaml.safe_load(path.read_text(encoding="utf-8"))
            elif suffix == ".pt":
                torch.load(path, map_location="cpu", weights_only=True)
            elif suffix == ".png":
                with Image.open(path) as im:
                    im.load()
            elif suffix == ".npz":
                with np.load(path, allow_pickle=False) as z:
                    [z[k] for k in z.files]
            elif suffix == ".html":
                assert path.read_text(encoding="utf-8").rstrip().endswith("</html>")
            else:
                path.read_bytes().decode("utf-8")
        except Exception as exc:  # noqa: BLE001 - any failure to load is the finding
            raise AssertionError(f"{path}: incomplete or unreadable ({exc.__class__.__name__}: {exc})") from exc
        checked += 1
    return checked


#: Wall-clock fields of ctqc's outputs: the only parts that may differ between identical runs.
TIMING_COLUMNS = ["seconds", "train_images_per_second"]  # compare/results.csv


def without_timings(obj):
    """A JSON value without its wall-clock fields (keys ending in ``seconds``, e.g. the domain encoder's ``fit_seconds``)."""
    if isinstance(obj, dict):
        return {k: without_timings(v) for k, v in obj.items() if not str(k).endswith("seconds")}
    if isinstance(obj, list):
        return [without_timings(v) for v in obj]
    return obj


def outputs_without_timings(run: Path) -> dict[str, object]:
    """The numbers a run produced: qc/metrics.json and filter/filter.json without timings, the CSVs as text."""
    import pandas as pd

    out: dict[str, object] = {rel: without_timings(json.loads((run / rel).read_text())) for rel in ("qc/metrics.json", "filter/filter.json")}
    for rel in ("filter/kept.csv", "filter/rejected.csv", "samples/index.csv", "qc/scores.csv", "qc/embeddings.csv"):
        out[rel] = (run / rel).read_text() if (run / rel).is_file() else None  # embeddings.csv: only with qc.embeddings
    out["compare/results.csv"] = pd.read_csv(run / "compare" / "results.csv").drop(columns=TIMING_COLUMNS).to_csv(index=False)
    return out


def assert_same_gan(a: Path, b: Path) -> None:
    """Same final GAN weights (every tensor of last.pt and generator.pt) and the same synthetic pixels."""
    import numpy as np
    import pandas as pd
    import torch
    from PIL import Image

    for unit in ("normal", "haemorrhage"):
        for name in ("last.pt", "generator.pt"):
            ca = torch.load(a / "gan" / "fold0" / unit / "checkpoints" / name, weights_only=True)
            cb = torch.load(b / "gan" / "fold0" / unit / "checkpoints" / name, weights_only=True)
            assert ca["epoch"] == cb["epoch"] and ca["step"] == cb["step"]
            for part in ("G", "D", "G_ema"):
                for key, tensor in (ca.get(part) or {}).items():
                    assert torch.equal(tensor, cb[part][key]), (unit, name, part, key)
    index_a, index_b = (pd.read_csv(r / "samples" / "index.csv") for r in (a, b))
    pd.testing.assert_frame_equal(index_a, index_b)
    for file in index_a["file"]:
        assert np.array_equal(np.asarray(Image.open(a / "samples" / file)), np.asarray(Image.open(b / "samples" / file))), file


#: The whole job, small: one GAN checkpoint and one sample grid per epoch, 2 arms × 2 seeds compared.
PIPELINE_SETTINGS = ("gan.epochs=2", "gan.checkpoint_every=1", "gan.grid_every=1", "compare.seeds=2")
PIPELINE = ("run", "--no-selftest", *light_args(*PIPELINE_SETTINGS))


class SharedRuns:
    """The session's runs, built in-process on first use: ``trained`` (train) and ``filtered`` (train + filter)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self._runs: dict[str, Path] = {}

    def get(self, kind: str) -> Path:
        if kind not in self._runs:
            self._runs[kind] = self._build(kind)
        return self._runs[kind]

    def _build(self, kind: str) -> Path:
        from ctqc.config import load_config
        from ctqc.pipeline import run_pipeline
        from ctqc.run import Run

        quiet = {"progress": False, "say": lambda _: None}
        if kind == "trained":
            cfg = load_config("smoke", [*LIGHT, f"run.root={self.base / kind}"])
            return run_pipeline(cfg, new=True, stages=("train", "generate"), **quiet).run.path
        if kind == "filtered":
            path = copy_run(self.get("trained"), self.base / kind)
            run_pipeline(run=Run(path), stages=("score", "filter"), **quiet)
            return path
        raise KeyError(kind)


@pytest.fixture(scope="session")
def shared_runs(tmp_path_factory) -> SharedRuns:
    return SharedRuns(tmp_path_factory.mktemp("shared_runs"))


@pytest.fixture(scope="session")
def reference_pipeline(tmp_path_factory) -> Path:
    """An uninterrupted :data:`PIPELINE` run (a real subprocess), the yardstick of resumed and repeated runs.

    Run under :mod:`tests.reliability.write_audit`: ``writes.log`` beside ``runs/`` lists every file it wrote.
    """
    cwd = tmp_path_factory.mktemp("reference_pipeline")
    result = ctqc(*PIPELINE, cwd=cwd, audit_log=cwd / "writes.log")
    assert result.returncode == 0, result.stderr[-3000:]
    return (cwd / "runs" / "latest").resolve()


MARKER = "ctqc-exploit-ran"


class Exploit:
    """Unpickling this creates the file ``path`` (named :data:`MARKER`): what a malicious checkpoint would do."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (exec, (f"open({self.path!r}, 'w').write('pwned')",))


def set_pool_file(run: Path, name: str) -> None:
    """Make ``samples/index.csv`` name ``name`` as the first synthetic image's file (as anyone could edit it)."""
    import pandas as pd

    index = pd.read_csv(run / "samples" / "index.csv", dtype=str)
    index.loc[0, "file"] = name
    index.to_csv(run / "samples" / "index.csv", index=False)


#: Patient-identifying DICOM tags of the privacy data set: distinctive, so a match is never chance.
PATIENT_TAGS = {"PatientName": "Zyxwvut^Qwertyuiop", "PatientID": "PID-8C7F3A91E2", "PatientBirthDate": "19230917"}
XSS_NAME = "<img src=x onerror=alert(1)>"


def write_dicom(path: Path, hu, tags: dict[str, str] | None = None, pixels: bool = True) -> Path:
    """A single-slice CT DICOM of the Hounsfield units ``hu`` (rescale intercept −1024), with ``tags`` set.

    ``pixels=False`` leaves out the pixel data (a header-only file).
    """
    import numpy as np
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    for tag, value in (tags or {}).items():
        setattr(ds, tag, value)
    ds.Rows, ds.Columns = np.shape(hu)
    ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 1, 16, 16, 15, 0
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.RescaleSlope, ds.RescaleIntercept = 1.0, -1024.0
    if pixels:
        ds.PixelData = np.clip(np.round(np.asarray(hu) + 1024), 0, 4095).astype(np.uint16).tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def write_dicom_dataset(folder: Path, n_per_class: int = 12) -> Path:
    """Head-like CT slices as DICOM (40×48 px, a bright bleed in class 1) carrying :data:`PATIENT_TAGS`, plus labels.csv."""
    import numpy as np

    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = ["id,label"]
    yy, xx = np.mgrid[:40, :48]
    for n in range(2 * n_per_class):
        head = ((yy - 20) / 18) ** 2 + ((xx - 24) / 22) ** 2 < 1
        hu = np.where(head, rng.normal(35, 6, head.shape), -1000.0)
        if n % 2:
            cy, cx = rng.integers(12, 28), rng.integers(14, 34)
            hu[(yy - cy) ** 2 + (xx - cx) ** 2 < 16] += 40
        write_dicom(folder / f"slice{n:02d}.dcm", hu, PATIENT_TAGS)
        rows.append(f"slice{n:02d},{n % 2}")
    (folder / "labels.csv").write_text("\n".join(rows) + "\n")
    return folder


@pytest.fixture(scope="session")
def privacy_run(tmp_path_factory) -> tuple[Path, str]:
    """``ctqc run`` (every stage but the self-test) on :func:`write_dicom_dataset`, named :data:`XSS_NAME`.

    Returns the run and everything the command printed.
    """
    cwd = tmp_path_factory.mktemp("privacy")
    data = write_dicom_dataset(cwd / "dicom")
    result = ctqc("run", "--no-selftest", "--data", data, *light_args("gan.epochs=1", f"name={XSS_NAME}"), cwd=cwd)
    assert result.returncode == 0, result.stderr[-3000:]
    return (cwd / "runs" / "latest").resolve(), result.stdout + result.stderr
