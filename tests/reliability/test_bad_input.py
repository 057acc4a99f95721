"""The bad-input catalogue: every command, every kind of mistake.

Each case prepares a working folder (data, configs, a copy of a trained run…),
runs one ``ctqc`` command in-process and checks the contract of a user mistake:
exit code 2, exactly one ``error:`` line on stderr naming the culprit, no
traceback, and the working folder — data, runs, ``runs/latest`` — exactly as
before (nothing created, nothing half-written, a run's manifest unchanged).

``tests/reliability/README.md`` holds this table; ``test_readme.py`` keeps the
two identical (regenerate it with ``python -m tests.reliability.test_bad_input``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from tests.conftest import make_folder, tree_snapshot
from tests.reliability.conftest import MARKER, Exploit, SharedRuns, copy_run, set_pool_file, write_dicom


@dataclass(frozen=True)
class Case:
    id: str
    command: str  # the ctqc command exercised ("" for the bare command line)
    what: str  # the mistake, for the README
    setup: Callable[[Path, SharedRuns], list]  # prepares the working folder, returns the CLI arguments
    expect: str  # fragment of the error line that names the culprit


# ----------------------------------------------------------------------------- set-up helpers


def _prepare(mutate: Callable[[Path], list | None]) -> Callable[[Path, SharedRuns], list]:
    """`ctqc data prepare --data DATA` on a valid folder changed by ``mutate`` (which may return extra args)."""

    def setup(root: Path, runs: SharedRuns) -> list:
        data = root / "data"
        data.mkdir()
        extra = mutate(data) or []
        return ["data", "prepare"] + (extra if "--data" in map(str, extra) else ["--data", data, *extra])

    return setup


def _csv(text: str) -> Callable[[Path, SharedRuns], list]:
    """`ctqc data prepare` on a valid folder whose labels.csv is ``text``."""
    return _prepare(lambda d: make_folder(d) and (d / "labels.csv").write_text(text) and None)


def _rows(n: int, label=lambda n: n % 2) -> str:
    return "id,h\n" + "".join(f"{i:03d},{label(i)}\n" for i in range(n))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:60])


def _link_outside(data: Path) -> None:
    outside = data.parent / "elsewhere.png"
    Image.new("L", (8, 8)).save(outside)
    (data / "head_ct" / "003.png").unlink()
    os.symlink(outside, data / "head_ct" / "003.png")


def _dicom_folder(data: Path, pixels: bool = True, corrupt: bool = False) -> None:
    """Ten 16×16 DICOM slices and labels.csv; ``s4.dcm`` without pixel data, or not DICOM at all."""
    rows = ["id,label"]
    for n in range(10):
        write_dicom(data / f"s{n}.dcm", np.full((16, 16), 40.0), pixels=pixels or n != 4)
        rows.append(f"s{n},{n % 2}")
    if corrupt:
        (data / "s4.dcm").write_bytes(b"DICM but not really")
    (data / "labels.csv").write_text("\n".join(rows) + "\n")


def _class_folders(data: Path, *names: str) -> None:
    """Class subfolders (no labels.csv) of five 12×12 PNGs each."""
    for k, name in enumerate(names):
        _mkdir(data / name)
        for i in range(5):
            Image.new("L", (12, 12), 40 * k + i).save(data / name / f"{i}.png")


def _float_tiff_out_of_range(data: Path) -> None:
    """004 becomes a float TIFF of 0..5000: neither HU, [0, 1] nor [0, 255]."""
    make_folder(data)
    (data / "head_ct" / "004.png").unlink()
    Image.fromarray(np.linspace(0, 5000, 480, dtype=np.float32).reshape(20, 24)).save(data / "head_ct" / "004.tif")


def _headerless_not_dicom(data: Path) -> None:
    """s4.dcm is a bare dataset (no preamble, no 'DICM') without image rows/columns."""
    import pydicom
    from pydicom.dataset import Dataset

    _dicom_folder(data)
    ds = Dataset()
    ds.PatientID = "x"
    pydicom.dcmwrite(data / "s4.dcm", ds, implicit_vr=True, little_endian=True, enforce_file_format=False)


def _id_without_extension_not_dicom(data: Path) -> None:
    """labels.csv names IM003, a file without extension that is text, not DICOM."""
    make_folder(data)
    (data / "head_ct" / "003.png").unlink()
    (data / "head_ct" / "IM003").write_text("not an image")
    (data / "labels.csv").write_text((data / "labels.csv").read_text().replace("003,", "IM003,"))


_HELD: list = []  # locks the held-run cases keep until the session ends


def _held_by_another_process(run: Path) -> None:
    """Hold the run's lock through a second open file (as another process would), recording a holder."""
    from filelock import FileLock

    lock = FileLock(run / ".lock", timeout=0, thread_local=False)
    lock.acquire()
    _HELD.append(lock)
    (run / ".lock").write_text('{"pid": 4242, "host": "elsewhere", "command": "ctqc train", "since": "2025-01-01 12:00:00"}')


def _cmd(*args) -> Callable[[Path, SharedRuns], list]:
    """A command needing nothing but the (empty) working folder."""
    return lambda root, runs: list(args)


def _on_run(kind: str | None, *args, change: Callable[[Path], None] | None = None) -> Callable[[Path, SharedRuns], list]:
    """``args`` against a copy of the session's ``kind`` run (``runs/latest``) altered by ``change``.

    ``kind=None`` prepares a fresh run (``data prepare`` only: no GAN trained).
    """

    def setup(root: Path, runs: SharedRuns) -> list:
        if kind is None:
            from ctqc.config import load_config
            from ctqc.stages.prepare import prepare_run

            run = prepare_run(load_config("smoke", [f"run.root={root / 'runs'}"])).run.path
        else:
            run = copy_run(runs.get(kind), root)
        if change is not None:
            change(run)
        return [a(run) if callable(a) else a for a in args]

    return setup


def _byo(command: str, synthetic: Callable[[Path], Path] | None = None, out: Callable[[Path], Path] | None = None, real_per_class: int = 6) -> Callable[[Path, SharedRuns], list]:
    """Bring-your-own ``filter``/``qc``: real class subfolders, a synthetic folder and an output path."""

    def setup(root: Path, runs: SharedRuns) -> list:
        real = root / "real"
        rng = np.random.default_rng(0)
        for name in ("normal", "haemorrhage"):
            (real / name).mkdir(parents=True)
            for i in range(real_per_class):
                Image.fromarray(rng.integers(0, 255, (16, 16), dtype=np.uint8)).save(real / name / f"{i}.png")
        syn = synthetic(root) if synthetic is not None else _images_in(root / "syn" / "normal", 4).parent
        target = out(root) if out is not None else root / "out"
        return [command, "--real", real, "--synthetic", syn, "--out", target]

    return setup


def _images_in(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.new("L", (16, 16), 40 * i).save(folder / f"{i}.png")
    return folder


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True)
    return path


def _file(path: Path, text: str = "x") -> Path:
    path.write_text(text)
    return path


def _occupied(root: Path) -> Path:
    _file(_mkdir(root / "occupied") / "notes.txt", "mine")
    return root / "occupied"


def _pickle_bomb(run: Path) -> None:
    """generator.pt replaced by a pickle whose loading would run code (create a marker file)."""
    import pickle

    (run / "gan" / "fold0" / "normal" / "checkpoints" / "generator.pt").write_bytes(pickle.dumps({"meta": Exploit(run.parent / MARKER)}))


def _huge_png(run: Path) -> None:
    """The first synthetic image replaced by a PNG declaring 20000×20000 pixels (a decompression bomb)."""
    first = pd.read_csv(run / "samples" / "index.csv")["file"][0]
    Image.new("1", (20000, 20000)).save(run / "samples" / first)


def _regenerate(run: Path) -> None:
    """`ctqc generate --seed 9` on a filtered run, a second after its filter finished."""
    from ctqc.run import Run
    from ctqc.stages.generate import generate

    time.sleep(1.1)  # the manifest's timestamps have a resolution of one second
    generate(Run(run), seed=9)


def _change_data_after_prepare(root: Path, runs: SharedRuns) -> list:
    from ctqc.config import load_config
    from ctqc.stages.prepare import prepare_run

    data = make_folder(root / "data")
    prepare_run(load_config("smoke", [f"run.root={root / 'runs'}"], data))
    Image.new("L", (20, 24), 7).save(data / "head_ct" / "004.png")
    return ["train", "--resume"]


# ----------------------------------------------------------------------------- the catalogue

CASES = [
    # --- data folder, CSV, images, DICOM, NPZ (through `ctqc data prepare`, which every data command shares)
    Case("data-missing-folder", "data prepare", "--data names a missing folder", _prepare(lambda d: ["--data", d / "nope"]), "data path not found"),
    Case("data-empty-folder", "data prepare", "empty data folder", _prepare(lambda d: ["--data", _mkdir(d / "empty")]), "data folder is empty"),
    Case("data-plain-file", "data prepare", "--data is a text file", _prepare(lambda d: ["--data", _file(d / "notes.txt")]), "expected a folder"),
    Case("csv-missing", "data prepare", "no labels.csv", _prepare(lambda d: make_folder(d) and (d / "labels.csv").unlink()), "labels CSV not found"),
    Case("csv-not-utf8", "data prepare", "labels.csv is binary", _prepare(lambda d: make_folder(d) and (d / "labels.csv").write_bytes(b"\xff\xfe\x00\x81id\x00") and None), "cannot read as CSV"),
    Case("csv-ragged", "data prepare", "unbalanced quote, extra fields", _csv('id,label\n"000,1\n001,0,5,6\n'), "labels.csv"),
    Case("csv-empty", "data prepare", "labels.csv is empty", _csv(""), "cannot read as CSV"),
    Case("csv-header-only", "data prepare", "header, no rows", _csv("id, hemorrhage\n"), "header but no rows"),
    Case("csv-no-id-column", "data prepare", "no id column", _csv("name,hemorrhage\n000,1\n"), "no id column 'id'"),
    Case("csv-no-label-column", "data prepare", "no label column", _csv("id\n000\n"), "which column holds the labels"),
    Case("csv-label-column-absent", "data prepare", "data.label_column names a missing column", _prepare(lambda d: make_folder(d) and ["--set", "data.label_column=diagnosis"]), "no label column 'diagnosis'"),
    Case("csv-empty-id", "data prepare", "a row with an empty id", _csv("id,h\n000,0\n,1\n"), "row 3 has an empty id"),
    Case("id-without-image", "data prepare", "an id with no image file", _prepare(lambda d: make_folder(d) and (d / "head_ct" / "003.png").unlink()), "'003'"),
    Case("image-without-label", "data prepare", "an image with no row", _csv(_rows(9)), "009.png"),
    Case("duplicate-ids", "data prepare", "an id twice", _csv("id,h\n000,0\n001,1\n000,1\n"), "duplicate id(s) '000'"),
    Case("duplicate-ids-padded", "data prepare", "`000` and `0`", _csv("id,h\n000,0\n001,1\n0,1\n"), "duplicate id"),
    Case("id-leaves-folder", "data prepare", "id `../x`", _csv("id,h\n../x,0\n001,1\n"), "'../x' is not a plain file name"),
    Case("id-absolute-path", "data prepare", "id `/etc/passwd`", _csv("id,h\n/etc/passwd,0\n001,1\n"), "'/etc/passwd' is not a plain file name"),
    Case("image-links-outside", "data prepare", "an image is a symlink out of the folder", _prepare(lambda d: make_folder(d) and _link_outside(d)), "links outside the data folder"),
    Case("images-dir-leaves-folder", "data prepare", "data.images_dir=../..", _prepare(lambda d: make_folder(d) and ["--set", "data.images_dir=../.."]), "leaves the data folder"),
    Case("images-dir-missing", "data prepare", "data.images_dir names a missing folder", _prepare(lambda d: make_folder(d) and ["--set", "data.images_dir=scans"]), "images folder not found"),
    Case("image-corrupt", "data prepare", "a .png that is text", _prepare(lambda d: make_folder(d) and (d / "head_ct" / "004.png").write_bytes(b"not a png") and None), "004.png: not a readable image"),
    Case("image-truncated", "data prepare", "a cut-off PNG", _prepare(lambda d: make_folder(d) and _truncate(d / "head_ct" / "005.png")), "005.png"),
    Case("image-ambiguous", "data prepare", "`002.png` and `002.jpg`", _prepare(lambda d: make_folder(d) and Image.new("L", (8, 8)).save(d / "head_ct" / "002.jpg")), "matches several files"),
    Case("decompression-bomb", "data prepare", "a PNG over data.max_image_pixels", _prepare(lambda d: make_folder(d) and Image.new("L", (5000, 3000)).save(d / "head_ct" / "006.png") or ["--set", "data.max_image_pixels=10000000"]), "decompression-bomb guard"),
    Case("decompression-bomb-header", "data prepare", "a 1-bit PNG declaring 30000×30000 px", _prepare(lambda d: make_folder(d) and Image.new("1", (30000, 30000)).save(d / "head_ct" / "006.png")), "decompression-bomb guard"),
    Case("label-not-a-class", "data prepare", "label 2 with classes 0/1", _csv(_rows(10, lambda i: 2 if i == 7 else i % 2)), "label '2' is not a configured class"),
    Case("one-class", "data prepare", "every label 0", _csv(_rows(10, lambda i: 0)), "only one class present"),
    Case("too-few-per-class", "data prepare", "2 images per class", _prepare(lambda d: make_folder(d, n_per_class=2) and (d / "labels.csv").write_text("id,h\n000,0\n001,1\n002,0\n003,1\n") and None), "needs at least 3 per class"),
    Case("too-few-for-kfold", "data prepare", "5 per class for 5-fold", _prepare(lambda d: make_folder(d) and ["--set", "split.scheme=kfold", "--set", "split.folds=5"]), "needs at least 7 per class"),
    Case("dicom-corrupt", "data prepare", "a .dcm that is not DICOM", _prepare(lambda d: _dicom_folder(d, corrupt=True)), "s4.dcm: not a readable DICOM file"),
    Case("dicom-no-pixels", "data prepare", "a DICOM header without pixel data", _prepare(lambda d: _dicom_folder(d, pixels=False)), "s4.dcm: DICOM file has no pixel data"),
    Case("dicom-window-incomplete", "data inspect", "data.dicom.window=custom without level/width", _prepare(lambda d: _dicom_folder(d) or ["--set", "data.dicom.window=custom"]), "data.dicom"),
    Case("image-values-fit-no-rule", "data prepare", "a float TIFF of 0..5000 (not HU, [0, 1] or [0, 255])", _prepare(_float_tiff_out_of_range), "004.tif: float values 0..5000 fit no intensity rule"),
    Case("class-folders-unmatched", "data prepare", "class subfolders normal/ and bleed/, no labels.csv", _prepare(lambda d: _class_folders(d, "normal", "bleed")), "bleed/ hold images but match no class"),
    Case("class-folders-twice", "data prepare", "subfolders hemorrhage/ and haemorrhage/", _prepare(lambda d: _class_folders(d, "normal", "hemorrhage", "haemorrhage")), "both name class 1"),
    Case("id-folder-not-images-folder", "data prepare", "ids `scans/000.png` with the images in head_ct/", _csv("id,h\n" + "".join(f"scans/{i:03d}.png,{i % 2}\n" for i in range(10))), "names the folder 'scans'"),
    Case("id-without-extension-not-dicom", "data prepare", "an id naming a file without extension that is not DICOM", _prepare(_id_without_extension_not_dicom), "IM003: not DICOM"),
    Case("dicom-headerless-no-image", "data prepare", "a bare DICOM dataset (no preamble/'DICM') without rows/columns", _prepare(_headerless_not_dicom), "s4.dcm: not a readable DICOM file (no preamble or 'DICM' file-meta header"),
    Case("npz-garbage", "data inspect", "a .npz that is text", lambda root, runs: ["data", "inspect", "--data", _file(root / "d.npz", "not a zip")], "not a readable .npz"),
    Case("npz-no-image-arrays", "data prepare", ".npz without train_images", _prepare(lambda d: np.savez(d / "d.npz", x=np.zeros(3)) or ["--data", d / "d.npz"]), "no 'train_images'"),
    Case("npz-pickled-objects", "data prepare", ".npz holding pickled objects", _prepare(lambda d: np.savez(d / "o.npz", train_images=np.array([{"a": 1}], dtype=object), train_labels=np.zeros(1)) or ["--data", d / "o.npz"]), "not a readable .npz"),
    Case("npz-label-not-a-class", "data prepare", ".npz label 2 with classes 0/1", _prepare(lambda d: np.savez(d / "m.npz", train_images=np.zeros((9, 8, 8), np.uint8), train_labels=np.arange(9) % 3) or ["--data", d / "m.npz"]), "train_labels[2] = 2 is not a configured class"),
    Case("npz-labels-missing", "data inspect", ".npz with images but no labels", lambda root, runs: np.savez(root / "l.npz", train_images=np.zeros((9, 8, 8), np.uint8)) or ["data", "inspect", "--data", root / "l.npz"], "has 'train_images' but no 'train_labels'"),
    # --- configs and --set overrides
    Case("config-unknown-key", "data prepare", "--set gan.epochz=3", _prepare(lambda d: make_folder(d) and ["--set", "gan.epochz=3"]), "unknown key 'gan.epochz'"),
    Case("config-bad-value", "data prepare", "--set data.image_size=48", _prepare(lambda d: make_folder(d) and ["--set", "data.image_size=48"]), "key 'data.image_size'"),
    Case("set-without-value", "data prepare", "--set gan.epochs", _prepare(lambda d: make_folder(d) and ["--set", "gan.epochs"]), "expected KEY=VALUE"),
    Case("set-unparsable", "data inspect", "--set gan.epochs=[1", _cmd("data", "inspect", "--set", "gan.epochs=[1"), "cannot parse value"),
    Case("set-value-as-section", "data inspect", "--set seed.x=1", _cmd("data", "inspect", "--set", "seed.x=1"), "'seed' is a value, not a section"),
    Case("config-file-missing", "data prepare", "--config missing.yaml", _prepare(lambda d: make_folder(d) and ["--config", d / "missing.yaml"]), "config file not found"),
    Case("config-not-a-mapping", "data prepare", "a YAML list as config", _prepare(lambda d: make_folder(d) and ["--config", _file(d / "c.yaml", "- a\n- b\n")]), "must be a YAML mapping"),
    Case("config-invalid-yaml", "data inspect", "a config that is not YAML", lambda root, runs: ["data", "inspect", "--config", _file(root / "c.yaml", "gan: {epochs: 3\n")], "invalid YAML"),
    Case("config-unknown-preset", "data inspect", "--config nosuch", _cmd("data", "inspect", "--config", "nosuch"), "unknown config 'nosuch'"),
    Case("split-fractions-too-large", "data inspect", "val + test fractions ≥ 0.9", _cmd("data", "inspect", "--set", "split.val_fraction=0.5", "--set", "split.test_fraction=0.45"), "val_fraction + test_fraction"),
    Case("run-name-with-slash", "data prepare", "--set name=../escape", _prepare(lambda d: make_folder(d) and ["--set", "name=../escape"]), "key 'name'"),
    Case("runs-root-not-writable", "data prepare", "run.root under a plain file", _prepare(lambda d: make_folder(d) and ["--set", f"run.root={_file(d / 'afile') / 'runs'}"]), "cannot write run directories"),
    # --- ctqc train
    Case("train-resume-with-set", "train", "--resume with --set", _on_run("trained", "train", "--resume", "--set", "gan.epochs=3"), "--resume continues a run with its saved config"),
    Case("train-run-without-resume", "train", "--run without --resume", _on_run("trained", "train", "--run", lambda r: r), "--run is only used with --resume"),
    Case("train-resume-no-run", "train", "--resume with no run yet", _cmd("train", "--resume"), "no run found"),
    Case("train-resume-not-a-run", "train", "--run names a folder without manifest", lambda root, runs: ["train", "--resume", "--run", _mkdir(root / "somewhere")], "not a ctqc run directory"),
    Case("train-resume-data-changed", "train", "an image changed since `data prepare`", _change_data_after_prepare, "the data changed since this run was created"),
    Case("train-resume-corrupt-manifest", "train", "manifest.json cut off", _on_run("trained", "train", "--resume", change=lambda r: _truncate(r / "manifest.json")), "unreadable manifest"),
    Case("train-resume-config-edited", "train", "config.yaml with an unknown key", _on_run("trained", "train", "--resume", change=lambda r: _file(r / "config.yaml", (r / "config.yaml").read_text() + "extra: 1\n")), "unknown key 'extra'"),
    Case("train-resume-corrupt-checkpoint", "train", "last.pt is garbage", _on_run("trained", "train", "--resume", change=lambda r: _file(r / "gan" / "fold0" / "normal" / "checkpoints" / "last.pt", "garbage") and (r / "gan" / "fold0" / "normal" / "checkpoints" / "generator.pt").unlink()), "not a loadable ctqc checkpoint"),
    Case("train-epochs-zero", "train", "--set gan.epochs=0", _cmd("train", "--config", "smoke", "--set", "gan.epochs=0"), "key 'gan.epochs'"),
    # --- ctqc generate
    Case("generate-before-train", "generate", "no GAN trained yet", _on_run(None, "generate"), "stage 'train' has not run; run `ctqc train` first"),
    Case("generate-n-zero", "generate", "--n 0", _on_run("trained", "generate", "--n", "0"), "Invalid value for '--n'"),
    Case("generate-missing-generator", "generate", "generator.pt deleted", _on_run("trained", "generate", change=lambda r: (r / "gan" / "fold0" / "normal" / "checkpoints" / "generator.pt").unlink()), "generator.pt is missing"),
    Case("generate-pickle-exploit", "generate", "generator.pt is a code-running pickle", _on_run("trained", "generate", change=_pickle_bomb), "not a loadable ctqc checkpoint"),
    Case("generate-run-held", "generate", "another process holds the run", _on_run("trained", "generate", change=_held_by_another_process), "in use by pid 4242 on elsewhere"),
    Case("generate-run-missing", "generate", "--run names a missing folder", lambda root, runs: ["generate", "--run", root / "gone"], "run directory not found"),
    # --- ctqc filter (a run, and bring-your-own folders)
    Case("filter-threshold-above-1", "filter", "--c2st-threshold 1.5", _on_run("trained", "filter", "--c2st-threshold", "1.5"), "--c2st-threshold must be between 0 and 1"),
    Case("filter-threshold-zero", "filter", "--c2st-threshold 0", _on_run("trained", "filter", "--c2st-threshold", "0"), "--c2st-threshold must be between 0 and 1"),
    Case("filter-threshold-not-a-number", "filter", "--c2st-threshold high", _on_run("trained", "filter", "--c2st-threshold", "high"), "Invalid value for '--c2st-threshold'"),
    Case("filter-before-train", "filter", "no synthetic pool yet", _on_run(None, "filter"), "stage 'generate' has not run; run `ctqc train` first"),
    Case("filter-set-on-a-run", "filter", "--set without --real/--synthetic/--out", _on_run("trained", "filter", "--set", "qc.n_splits=3"), "apply to --real/--synthetic/--out"),
    Case("filter-pool-file-leaves-run", "filter", "samples/index.csv names ../../../etc/passwd", _on_run("trained", "filter", change=lambda r: set_pool_file(r, "../../../etc/passwd")), "leaves"),
    Case("filter-pool-decompression-bomb", "filter", "a synthetic PNG declaring 20000×20000 px", _on_run("trained", "filter", change=_huge_png), "decompression-bomb guard"),
    Case("byo-synthetic-empty", "filter", "--synthetic folder with no images", _byo("filter", synthetic=lambda root: _mkdir(root / "syn")), "data folder is empty"),
    Case("byo-synthetic-empty-classes", "filter", "--synthetic class subfolders without images", _byo("filter", synthetic=lambda root: _mkdir(root / "syn" / "normal").parent), "hold no images"),
    Case("byo-synthetic-not-a-folder", "filter", "--synthetic is a file", _byo("filter", synthetic=lambda root: _file(root / "syn.png")), "not a folder"),
    Case("byo-missing-out", "filter", "--real and --synthetic without --out", lambda root, runs: _byo("filter")(root, runs)[:-2], "need all of --real DIR --synthetic DIR --out DIR"),
    Case("byo-out-occupied", "filter", "--out is someone's folder", _byo("filter", out=_occupied), "is not an earlier ctqc filter output"),
    Case("byo-out-under-a-file", "filter", "--out inside a plain file", _byo("filter", out=lambda root: _file(root / "afile") / "out"), "is not a writable folder"),
    Case("byo-too-few-real", "filter", "3 real images per class", _byo("filter", real_per_class=3), "QC needs at least 4 per class"),
    Case("byo-synthetic-class-unmatched", "filter", "--synthetic subfolders normal/ and bleed/", _byo("filter", synthetic=lambda root: _images_in(root / "syn" / "bleed", 3) and _images_in(root / "syn" / "normal", 3).parent), "bleed/ hold images but match no class"),
    Case("byo-run-and-real", "filter", "--run with --real", lambda root, runs: [*_byo("filter")(root, runs), "--run", root], "alternatives"),
    # --- ctqc qc
    Case("qc-before-train", "qc", "no synthetic pool yet", _on_run(None, "qc"), "stage 'generate' has not run; run `ctqc train` first"),
    Case("qc-real-missing", "qc", "--real names a missing folder", lambda root, runs: ["qc", "--real", root / "nope", "--synthetic", _images_in(root / "syn" / "normal", 4).parent, "--out", root / "out"], "--real"),
    Case("qc-out-occupied", "qc", "--out is someone's folder", _byo("qc", out=_occupied), "is not an earlier ctqc qc output"),
    Case("qc-synthetic-unknown-classes", "qc", "--synthetic subfolders named after no class", _byo("qc", synthetic=lambda root: _images_in(root / "syn" / "cats", 3).parent), "cats/ hold images but match no class"),
    # --- ctqc compare
    Case("compare-before-train", "compare", "no synthetic pool yet", _on_run(None, "compare"), "run `ctqc train` first"),
    Case("compare-jobs-negative", "compare", "--jobs -1", _on_run("trained", "compare", "--jobs", "-1"), "--jobs must be at least 1"),
    Case("compare-arm-unknown", "compare", "--arm bogus", _on_run("trained", "compare", "--arm", "bogus"), "unknown arm 'bogus'"),
    Case("compare-arm-empty", "compare", "--arm ','", _on_run("trained", "compare", "--arm", ","), "no arms to compare"),
    Case("compare-filtered-arm-before-filter", "compare", "--arm original+filtered before `ctqc filter`", _on_run("trained", "compare", "--arm", "original+filtered"), "run `ctqc filter` first"),
    Case("compare-index-missing", "compare", "samples/index.csv deleted", _on_run("trained", "compare", change=lambda r: (r / "samples" / "index.csv").unlink()), "index.csv is missing"),
    Case("compare-pool-regenerated", "compare", "`ctqc generate` after `ctqc filter`", _on_run("filtered", "compare", change=_regenerate), "run `ctqc filter` again"),
    Case("compare-pool-file-leaves-run", "compare", "samples/index.csv names ../../x.png", _on_run("trained", "compare", change=lambda r: set_pool_file(r, "../../x.png")), "leaves"),
    Case("compare-pool-corrupt-png", "compare", "a synthetic PNG cut off", _on_run("trained", "compare", change=lambda r: _truncate(r / "samples" / pd.read_csv(r / "samples" / "index.csv")["file"][0])), "cannot read synthetic image"),
    # --- ctqc report
    Case("report-no-run", "report", "no run yet", _cmd("report"), "no run found"),
    Case("report-out-is-folder", "report", "--out names a folder", _on_run("trained", "report", "--out", lambda r: r.parent), "is a folder"),
    Case("report-out-folder-missing", "report", "--out in a missing folder", _on_run("trained", "report", "--out", lambda r: r.parent / "nope" / "r.html"), "does not exist"),
    Case("report-out-without-html", "report", "--out with --no-html", _on_run("trained", "report", "--no-html", "--out", lambda r: r.parent / "r.html"), "cannot be combined with --no-html"),
    # --- ctqc run
    Case("run-run-with-set", "run", "--run with --set", _on_run("trained", "run", "--run", lambda r: r, "--set", "gan.epochs=3"), "--run finishes an existing run with its saved config"),
    Case("run-threshold-out-of-range", "run", "--set qc.c2st_threshold=1.5", _cmd("run", "--config", "smoke", "--set", "qc.c2st_threshold=1.5"), "key 'qc.c2st_threshold'"),
    Case("run-no-arms", "run", "--set compare.arms=[]", _cmd("run", "--config", "smoke", "--set", "compare.arms=[]"), "key 'compare.arms'"),
    Case("run-data-missing", "run", "--data names a missing folder", lambda root, runs: ["run", "--config", "smoke", "--data", root / "nope"], "data path not found"),
    # --- ctqc selftest, demo-data, and the command line itself
    Case("selftest-too-few-permutations", "selftest", "--permutations 5", _cmd("selftest", "--permutations", "5"), "Invalid value for '--permutations'"),
    Case("selftest-bad-value", "selftest", "--set qc.n_splits=1", _cmd("selftest", "--set", "qc.n_splits=1"), "key 'qc.n_splits'"),
    Case("selftest-out-under-a-file", "selftest", "--out inside a plain file", lambda root, runs: ["selftest", "--out", _file(root / "afile") / "s.json"], "cannot write"),
    Case("selftest-out-is-folder", "selftest", "--out names a folder", lambda root, runs: ["selftest", "--out", root], "is a folder"),
    Case("demo-data-occupied", "demo-data", "OUT is a non-empty folder", lambda root, runs: ["demo-data", _occupied(root), "--n-per-class", "3", "--size", "32"], "already exists"),
    Case("demo-data-under-a-file", "demo-data", "OUT inside a plain file", lambda root, runs: ["demo-data", _file(root / "afile") / "out", "--n-per-class", "3", "--size", "32"], "cannot write"),
    Case("demo-data-difficulty", "demo-data", "--difficulty 2", lambda root, runs: ["demo-data", root / "out", "--difficulty", "2"], "Invalid value for '--difficulty'"),
    Case("unknown-command", "", "`ctqc trian`", _cmd("trian"), "No such command 'trian'"),
    Case("unknown-option", "data inspect", "`--bogus`", _cmd("data", "inspect", "--bogus"), "No such option: --bogus"),
]


# ----------------------------------------------------------------------------- the tests


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")  # torch, refusing the crafted pickle
@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_exits_2_with_one_line_and_changes_nothing(case, tmp_path, run_cli, shared_runs):
    args = case.setup(tmp_path, shared_runs)
    before = tree_snapshot(tmp_path)
    result = run_cli(*args)
    assert result.code == 2, (result.code, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err
    assert case.expect in lines[0], lines[0]
    assert "Traceback" not in result.err + result.out
    assert tree_snapshot(tmp_path) == before  # no run created, no partial file, the manifest as it was
    assert not any(tmp_path.rglob(MARKER))  # no pickle ran


def markdown_table() -> str:
    """The catalogue as the README's markdown table."""
    rows = ["| # | case | command | the mistake | the error line names |", "|---|---|---|---|---|"]
    for n, case in enumerate(CASES, 1):
        what = case.what.replace("|", "\\|")
        rows.append(f"| {n} | `{case.id}` | `{' '.join(['ctqc', case.command]).strip()}` | {what} | `{case.expect}` |")
    return "\n".join(rows)


def test_unlabelled_images_can_be_skipped_with_a_warning(tmp_path, run_cli):
    root = make_folder(tmp_path / "data", n_per_class=5)
    (root / "labels.csv").write_text(_rows(9))
    result = run_cli("data", "prepare", "--data", root, "--set", "data.unlabelled_images=skip")
    assert result.code == 0, result.err
    assert "1 image(s)" in result.out and "009.png" in result.out and "skipped" in result.out


def test_debug_shows_the_traceback(tmp_path, run_cli):
    with pytest.raises(Exception, match="data path not found"):
        run_cli("--debug", "data", "inspect", "--data", tmp_path / "nope")


if __name__ == "__main__":
    print(markdown_table())
