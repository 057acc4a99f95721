"""Every bad input: exit code 2, one line naming the culprit, no traceback, nothing written."""

import os

import numpy as np
import pytest
from PIL import Image

from tests.conftest import tree_snapshot


def make_folder(root, n_per_class=5, header="id, hemorrhage", image_dir="head_ct"):
    """A small valid dataset: 20×24 grayscale PNGs in ``root/image_dir`` plus labels.csv."""
    images = root / image_dir
    images.mkdir(parents=True, exist_ok=True)
    rows = [header]
    rng = np.random.default_rng(0)
    for n in range(2 * n_per_class):
        Image.fromarray(rng.integers(0, 255, (20, 24), dtype=np.uint8)).save(images / f"{n:03d}.png")
        rows.append(f"{n:03d}, {n % 2}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def _set_csv(root, text):
    (root / "labels.csv").write_text(text)


def _remove(path):
    path.unlink()


CASES = {
    # name: (setup(root) -> extra CLI args, expected fragment of the message)
    "missing folder": (lambda r: ["--data", r / "nope"], "data path not found"),
    "empty folder": (lambda r: (r / "empty").mkdir() or ["--data", r / "empty"], "data folder is empty"),
    "csv missing": (lambda r: _remove(make_folder(r) / "labels.csv") or [], "labels CSV not found"),
    "csv not utf-8": (lambda r: (make_folder(r) / "labels.csv").write_bytes(b"\xff\xfe\x00\x81id\x00") and [], "cannot read as CSV"),
    "csv ragged rows": (lambda r: _set_csv(make_folder(r), 'id,label\n"000,1\n001,0,5,6\n') or [], "labels.csv"),
    "csv empty file": (lambda r: _set_csv(make_folder(r), "") or [], "cannot read as CSV"),
    "csv header only": (lambda r: _set_csv(make_folder(r), "id, hemorrhage\n") or [], "header but no rows"),
    "csv without id column": (lambda r: _set_csv(make_folder(r), "name,hemorrhage\n000,1\n") or [], "no id column 'id'"),
    "csv without label column": (lambda r: _set_csv(make_folder(r), "id\n000\n") or [], "which column holds the labels"),
    "configured label column absent": (lambda r: make_folder(r) and ["--set", "data.label_column=diagnosis"], "no label column 'diagnosis'"),
    "id without image": (lambda r: _remove(make_folder(r) / "head_ct" / "003.png") or [], "'003'"),
    "image without label": (lambda r: _set_csv(make_folder(r), "id,h\n" + "".join(f"{n:03d},{n % 2}\n" for n in range(9))) or [], "009.png"),
    "duplicate ids": (lambda r: _set_csv(make_folder(r), "id,h\n000,0\n001,1\n000,1\n") or [], "duplicate id(s) '000'"),
    "duplicate ids, padded and not": (lambda r: _set_csv(make_folder(r), "id,h\n000,0\n001,1\n0,1\n") or [], "duplicate id"),
    "id leaves the folder": (lambda r: _set_csv(make_folder(r), "id,h\n../x,0\n001,1\n") or [], "'../x' is not a plain file name"),
    "corrupt image": (lambda r: (make_folder(r) / "head_ct" / "004.png").write_bytes(b"this is not a png") and [], "004.png: not a readable image"),
    "truncated image": (lambda r: _truncate(make_folder(r) / "head_ct" / "005.png") or [], "005.png"),
    "label not a configured class": (lambda r: _set_csv(make_folder(r), "id,h\n" + "".join(f"{n:03d},{2 if n == 7 else n % 2}\n" for n in range(10))) or [], "label '2' is not a configured class"),
    "only one class": (lambda r: _set_csv(make_folder(r), "id,h\n" + "".join(f"{n:03d},0\n" for n in range(10))) or [], "only one class present"),
    "too few images per class": (lambda r: _set_csv(make_folder(r, n_per_class=2), "id,h\n000,0\n001,1\n002,0\n003,1\n") or [], "needs at least 3 per class"),
    "too few for k-fold": (lambda r: make_folder(r) and ["--set", "split.scheme=kfold", "--set", "split.folds=5"], "needs at least 7 per class"),
    "decompression bomb": (lambda r: Image.new("L", (5000, 3000)).save(make_folder(r) / "head_ct" / "006.png") or ["--set", "data.max_image_pixels=10000000"], "decompression-bomb guard"),
    "ambiguous file for id": (lambda r: Image.new("L", (8, 8)).save(make_folder(r) / "head_ct" / "002.jpg") or [], "matches several files"),
    "image links outside": (lambda r: _link_outside(make_folder(r)) or [], "links outside the data folder"),
    "images_dir leaves folder": (lambda r: make_folder(r) and ["--set", "data.images_dir=../.."], "leaves the data folder"),
    "plain file as data": (lambda r: (r / "notes.txt").write_text("x") and ["--data", r / "notes.txt"], "expected a folder"),
    "npz without image arrays": (lambda r: np.savez(r / "d.npz", x=np.zeros(3)) or ["--data", r / "d.npz"], "no 'train_images'"),
    "npz with pickled objects": (lambda r: np.savez(r / "o.npz", train_images=np.array([{"a": 1}], dtype=object), train_labels=np.zeros(1)) or ["--data", r / "o.npz"], "not a readable .npz"),
    "npz label outside classes": (lambda r: np.savez(r / "m.npz", train_images=np.zeros((9, 8, 8), np.uint8), train_labels=np.arange(9) % 3) or ["--data", r / "m.npz"], "train_labels[2] = 2 is not a configured class"),
    "unknown config key": (lambda r: make_folder(r) and ["--set", "gan.epochz=3"], "unknown key 'gan.epochz'"),
    "bad config value": (lambda r: make_folder(r) and ["--set", "data.image_size=48"], "key 'data.image_size'"),
    "bad --set syntax": (lambda r: make_folder(r) and ["--set", "gan.epochs"], "expected KEY=VALUE"),
    "config file missing": (lambda r: make_folder(r) and ["--config", r / "missing.yaml"], "config file not found"),
    "config not a mapping": (lambda r: (r / "c.yaml").write_text("- a\n- b\n") and make_folder(r) and ["--config", r / "c.yaml"], "must be a YAML mapping"),
    "runs root not writable": (lambda r: (r / "afile").write_text("x") and make_folder(r) and ["--set", f"run.root={r / 'afile' / 'runs'}"], "cannot write run directories"),
}


def _truncate(path):
    path.write_bytes(path.read_bytes()[:60])


def _link_outside(root):
    outside = root.parent / "elsewhere.png"
    Image.new("L", (8, 8)).save(outside)
    (root / "head_ct" / "003.png").unlink()
    os.symlink(outside, root / "head_ct" / "003.png")


@pytest.mark.parametrize("name", list(CASES))
def test_bad_input_exits_2_with_one_line_and_writes_nothing(name, tmp_path, run_cli):
    setup, fragment = CASES[name]
    data_root = tmp_path / "data"
    data_root.mkdir()
    extra = setup(data_root)
    args = ["data", "prepare"] + (extra if "--data" in map(str, extra) else ["--data", data_root, *extra])
    before = tree_snapshot(tmp_path)
    result = run_cli(*args)
    assert result.code == 2, (result.code, result.err)
    lines = result.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.err
    assert fragment in lines[0], lines[0]
    assert "Traceback" not in result.err + result.out
    assert tree_snapshot(tmp_path) == before  # no run directory, no partial files
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


def test_unlabelled_images_can_be_skipped_with_a_warning(tmp_path, run_cli):
    root = make_folder(tmp_path / "data", n_per_class=5)
    _set_csv(root, "id,h\n" + "".join(f"{n:03d},{n % 2}\n" for n in range(9)))
    result = run_cli("data", "prepare", "--data", root, "--set", "data.unlabelled_images=skip")
    assert result.code == 0, result.err
    assert "1 image(s)" in result.out and "009.png" in result.out and "skipped" in result.out


def test_debug_shows_the_traceback(tmp_path, run_cli):
    with pytest.raises(Exception, match="data path not found"):
        run_cli("--debug", "data", "inspect", "--data", tmp_path / "nope")


def test_demo_data_refuses_a_non_empty_folder(tmp_path, run_cli):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("mine")
    result = run_cli("demo-data", tmp_path / "out", "--n-per-class", "3", "--size", "32")
    assert result.code == 2 and "already exists" in result.err
    assert (tmp_path / "out" / "keep.txt").read_text() == "mine"
