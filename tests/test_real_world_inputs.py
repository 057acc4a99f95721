"""Real-world inputs (issue 19): each kind decodes to the right pixel values, not just "it loads".

EXIF orientation, signed/float TIFF in Hounsfield units, RGB and float .npz, class-folder
spellings, ids with extensions or folders, DICOM without preamble/header or extension,
semicolon CSVs and pandas index columns, and the preprocessing version in the fingerprint.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from ctqc.config import DataConfig, DicomConfig
from ctqc.data import load_dataset
from ctqc.data.images import read_image
from ctqc.data.inspect import inspect_dataset
from ctqc.errors import UserError
from ctqc.splits import Splits
from tests.conftest import make_folder

MAX = 10**7


def _upright(h: int = 4, w: int = 6) -> np.ndarray:
    """An image with every pixel distinct (so any flip or rotation shows), 8-bit."""
    return (np.arange(h * w).reshape(h, w) * 10).astype(np.uint8)


#: How each EXIF orientation stores the upright image (the inverse of what viewers do to show it).
STORED = {
    1: lambda a: a,
    2: np.fliplr,
    3: lambda a: np.rot90(a, 2),
    4: np.flipud,
    5: lambda a: a.T,
    6: lambda a: np.rot90(a, 1),  # shown rotated 90° clockwise
    7: lambda a: np.rot90(a, 2).T,
    8: lambda a: np.rot90(a, -1),  # shown rotated 90° counter-clockwise
}


def _save_oriented(path, upright: np.ndarray, orientation: int, **kw) -> None:
    im = Image.fromarray(np.ascontiguousarray(STORED[orientation](upright)))
    exif = Image.Exif()
    exif[0x0112] = orientation
    im.save(path, exif=exif, **kw)


# ----------------------------------------------------------------------------- 1. EXIF orientation


@pytest.mark.parametrize("orientation", range(1, 9))
def test_every_exif_orientation_loads_as_viewers_show_it(tmp_path, orientation):
    upright = _upright()
    _save_oriented(tmp_path / "x.png", upright, orientation)
    gray, info = read_image(tmp_path / "x.png", max_pixels=MAX)
    np.testing.assert_array_equal(gray, upright / np.float32(255))
    assert (info.width, info.height) == (6, 4)  # the displayed size, not the stored (transposed) one
    assert info.orientation == orientation


def test_upside_down_jpeg_and_inspect_reports_the_tags(tmp_path):
    make_folder(tmp_path)
    upright = np.zeros((24, 20), np.uint8)
    upright[:6] = 255  # bright band at the top, as displayed
    _save_oriented(tmp_path / "head_ct" / "000.jpg", upright, 3, quality=95)
    _save_oriented(tmp_path / "head_ct" / "001.jpg", upright, 6, quality=95)
    (tmp_path / "head_ct" / "000.png").unlink()
    (tmp_path / "head_ct" / "001.png").unlink()
    data = load_dataset(DataConfig(path=tmp_path))
    for n in (0, 1):
        img = data.images[n, 0]
        assert img[:6, 6:26].mean() > 0.8 and img[-6:, 6:26].mean() < -0.8  # bright at the top, not the bottom or side
    report = inspect_dataset(data, Splits.make(data, _split(), 0))
    assert report["orientation"]["applied"] == {"3 (rotated 180°)": 1, "6 (rotated 90° clockwise)": 1}
    assert report["orientation"]["upright"] == 8


def _split():
    from ctqc.config import SplitConfig

    return SplitConfig()


# ----------------------------------------------------------------------------- 2. HU TIFF


def _ct_slice(dtype) -> np.ndarray:
    hu = np.full((20, 20), -1024, dtype)  # air
    hu[4:16, 4:16] = 40  # brain
    hu[2:4, 4:16] = 1000  # bone
    return hu


@pytest.mark.parametrize("dtype", [np.int16, np.float32])
def test_signed_and_float_tiff_in_hu_get_the_dicom_window(tmp_path, dtype):
    hu = _ct_slice(dtype)
    Image.fromarray(hu).save(tmp_path / "a.tif")
    hot = hu.copy()
    hot[0, 0] = 3000  # one metal pixel must not change the brain's value
    Image.fromarray(hot).save(tmp_path / "b.tif")
    for name in ("a.tif", "b.tif"):
        brain, info = read_image(tmp_path / name, max_pixels=MAX)
        assert brain[10, 10] == pytest.approx(0.5)  # L40/W80: 40 HU is the middle of the window
        assert brain[0, 19] == 0 and brain[3, 10] == 1  # air black, bone white
        assert "HU window brain" in info.handling and info.value_min == -1024
    assert read_image(tmp_path / "b.tif", max_pixels=MAX)[1].value_max == 3000
    bone, _ = read_image(tmp_path / "a.tif", max_pixels=MAX, dicom=DicomConfig(window="bone"))
    assert bone[10, 10] == pytest.approx((40 - (600 - 1400)) / 2800)  # the same presets as DICOM


def test_intensity_hu_windows_all_positive_slices_and_per_image_only_when_configured(tmp_path):
    crop = np.full((8, 8), 40, np.int32)
    crop[0] = 80  # a crop inside the head: no air, nothing negative
    Image.fromarray(crop).save(tmp_path / "c.tif")
    absolute, info = read_image(tmp_path / "c.tif", max_pixels=MAX)
    assert absolute[4, 4] == pytest.approx(40 / 65535) and info.handling == "/65535"  # no per-image stretch
    hu, info = read_image(tmp_path / "c.tif", max_pixels=MAX, intensity="hu")
    assert hu[4, 4] == pytest.approx(0.5) and hu[0, 0] == 1 and "data.intensity=hu" in info.handling
    stretched, _ = read_image(tmp_path / "c.tif", max_pixels=MAX, intensity="per_image")
    assert stretched[4, 4] == 0 and stretched[0, 0] == 1


def test_float_tiff_outside_every_rule_is_refused_naming_the_settings(tmp_path):
    Image.fromarray(np.linspace(0, 5000, 64, dtype=np.float32).reshape(8, 8)).save(tmp_path / "f.tif")
    with pytest.raises(UserError, match=r"f.tif: float values 0..5000 fit no intensity rule.*data.intensity=hu"):
        read_image(tmp_path / "f.tif", max_pixels=MAX)


def test_inspect_reports_intensity_handling_and_value_ranges(tmp_path):
    make_folder(tmp_path)
    Image.fromarray(_ct_slice(np.int16)).save(tmp_path / "head_ct" / "002.tif")
    (tmp_path / "head_ct" / "002.png").unlink()
    data = load_dataset(DataConfig(path=tmp_path))
    report = inspect_dataset(data, Splits.make(data, _split(), 0), "absolute")
    handling = report["intensity"]["handling"]
    assert report["intensity"]["setting"] == "absolute"
    assert handling["HU window brain (L40/W80) (values look like HU)"] == {"images": 1, "min": -1024.0, "max": 1000.0}
    assert handling["/255"]["images"] == 9 and 0 <= handling["/255"]["min"] <= handling["/255"]["max"] <= 255


# ----------------------------------------------------------------------------- 3. .npz RGB / float


def _npz(path, images, n=6):
    np.savez(path, train_images=images, train_labels=np.arange(n) % 2)
    return path


def test_npz_rgb_is_luma_and_dtype_is_reported(tmp_path):
    red = np.zeros((6, 8, 8, 3), np.uint8)
    red[..., 0] = 255  # pure red: luma 0.299, not the channel mean 0.333 or black
    data = load_dataset(DataConfig(path=_npz(tmp_path / "r.npz", red)))
    assert torch.allclose(data.images, torch.full_like(data.images, 0.299 * 2 - 1), atol=1e-5)
    info = data.source.image_info[0]
    assert info.mode == "uint8 RGB" and info.handling == "luma /255" and (info.value_min, info.value_max) == (0, 255)


@pytest.mark.parametrize(("scale", "handling"), [(1.0, "float [0, 1] kept"), (255.0, "float /255")])
def test_npz_float_arrays_keep_absolute_intensities(tmp_path, scale, handling):
    images = np.zeros((6, 8, 8), np.float32)
    images[0] = 0.25 * scale  # a flat dim image: per-image stretching would make it black
    images[1, :4] = 0.75 * scale  # half at 0.75, half at 0
    data = load_dataset(DataConfig(path=_npz(tmp_path / "f.npz", images)))
    assert torch.allclose(data.images[0], torch.full((1, 32, 32), -0.5), atol=1e-5)
    top, bottom = data.images[1, 0, :14], data.images[1, 0, 18:]
    assert torch.allclose(top, torch.full_like(top, 0.5), atol=1e-5) and torch.all(bottom == -1)
    info = data.source.image_info[0]
    assert info.mode == "float32" and info.handling == handling


def test_npz_signed_hu_arrays_are_windowed(tmp_path):
    images = np.stack([_ct_slice(np.int16)] * 6)
    data = load_dataset(DataConfig(path=_npz(tmp_path / "h.npz", images), image_size=32))
    gray = (data.images[0, 0] + 1) / 2
    assert float(gray.min()) == 0 and float(gray.max()) == pytest.approx(1, abs=1e-5)
    assert data.source.image_info[0].mode == "int16"


# ----------------------------------------------------------------------------- 4. class-folder names


def _class_folders(root, names, n=4):
    for k, name in enumerate(names):
        (root / name).mkdir(parents=True)
        for i in range(n):
            Image.new("L", (8, 8), 60 * k + i).save(root / name / f"{i}.png")
    return root


@pytest.mark.parametrize("names", [("normal", "hemorrhage"), ("Normal", "HAEMORRHAGE"), ("normal", "Hemorrhage")])
def test_class_folders_match_case_and_spelling(tmp_path, names):
    data = load_dataset(DataConfig(path=_class_folders(tmp_path, names)))
    assert data.class_counts() == {"normal": 4, "haemorrhage": 4}
    hem = data.images[data.labels == 1]
    assert torch.allclose(hem[:, 0, 16, 16], torch.tensor([60 + i for i in range(4)]) / 255 * 2 - 1, atol=1e-5)  # the right folder's pixels


def test_a_synthetic_folder_matching_no_class_is_refused_not_dropped(tmp_path):
    _class_folders(tmp_path, ("normal", "bleed"))
    with pytest.raises(UserError, match=r"bleed/ hold images but match no class.*data.classes=\{0: normal, 1: bleed\}"):
        load_dataset(DataConfig(path=tmp_path, format="folder"), require_all_classes=False)


# ----------------------------------------------------------------------------- 5. ids with extension / folder


@pytest.mark.parametrize("style", ["{n:03d}.png", "head_ct/{n:03d}.png", "head_ct\\{n:03d}.PNG", "{n}.png"])
def test_ids_with_extension_or_leading_folder_resolve_to_the_file(tmp_path, style):
    make_folder(tmp_path)
    plain = load_dataset(DataConfig(path=tmp_path))
    (tmp_path / "labels.csv").write_text("id,hemorrhage\n" + "".join(f"{style.format(n=n)},{n % 2}\n" for n in range(10)))
    data = load_dataset(DataConfig(path=tmp_path))
    assert torch.equal(data.images, plain.images) and data.labels.tolist() == plain.labels.tolist()


def test_an_id_folder_that_is_not_the_images_folder_is_refused(tmp_path):
    make_folder(tmp_path)
    (tmp_path / "other").mkdir()
    (tmp_path / "labels.csv").write_text("id,hemorrhage\n" + "".join(f"{'other' if n == 3 else 'head_ct'}/{n:03d}.png,{n % 2}\n" for n in range(10)))
    with pytest.raises(UserError, match="names the folder 'other', but the images are in 'head_ct'"):
        load_dataset(DataConfig(path=tmp_path))


# ----------------------------------------------------------------------------- 6. DICOM without preamble / extension


def _bare_dicom(path, hu, implicit=True):
    """A bare DICOM dataset (no 128-byte preamble, no 'DICM', no file-meta), stored as signed HU."""
    import pydicom
    from pydicom.dataset import Dataset

    ds = Dataset()
    ds.Rows, ds.Columns = hu.shape
    ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 1, 16, 16, 15, 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.RescaleSlope, ds.RescaleIntercept = 1, 0
    ds.PixelData = hu.astype(np.int16).tobytes()
    pydicom.dcmwrite(path, ds, implicit_vr=implicit, little_endian=True, enforce_file_format=False)
    return path


@pytest.mark.parametrize("implicit", [True, False])
def test_dicom_without_preamble_or_file_meta_is_read(tmp_path, implicit):
    hu = np.array([[-1024, 0, 40], [80, 1000, 20]])
    path = _bare_dicom(tmp_path / "bare.dcm", hu, implicit)
    assert path.read_bytes()[128:132] != b"DICM"
    gray, info = read_image(path, max_pixels=MAX)
    np.testing.assert_allclose(gray, [[0, 0, 0.5], [1, 1, 0.25]], atol=1e-6)
    assert info.format == "DICOM" and "no DICOM header" in info.handling


def test_dicom_files_without_extension_are_found_by_content(tmp_path):
    from tests.reliability.conftest import write_dicom

    rows = ["id,label"]
    for n in range(6):
        hu = np.full((8, 8), 40.0 if n % 2 else 0.0)
        if n < 3:
            write_dicom(tmp_path / f"IM{n:04d}", hu)  # with 'DICM', no extension
        else:
            _bare_dicom(tmp_path / f"IM{n:04d}", hu)  # no 'DICM' either: a forced read finds Rows/Columns
        rows.append(f"IM{n:04d},{n % 2}")
    (tmp_path / "labels.csv").write_text("\n".join(rows) + "\n")
    data = load_dataset(DataConfig(path=tmp_path))
    expected = torch.tensor([-1.0, 0.0] * 3)  # 0 HU → 0 (window bottom), 40 HU → 0.5
    assert torch.allclose(data.images[:, 0, 16, 16], expected, atol=1e-5)


def test_a_file_without_extension_that_is_not_dicom_is_named_with_the_reason(tmp_path):
    make_folder(tmp_path)
    (tmp_path / "head_ct" / "003.png").rename(tmp_path / "head_ct" / "IM003")
    (tmp_path / "head_ct" / "IM003").write_text("not an image")
    (tmp_path / "labels.csv").write_text((tmp_path / "labels.csv").read_text().replace("003,", "IM003,"))
    with pytest.raises(UserError, match=r"'IM003'.*IM003: not DICOM: no 'DICM' header"):
        load_dataset(DataConfig(path=tmp_path))


# ----------------------------------------------------------------------------- 10. spreadsheet / dataframe CSVs


def test_semicolon_csv_and_pandas_index_column(tmp_path):
    import pandas as pd

    make_folder(tmp_path)
    plain = load_dataset(DataConfig(path=tmp_path))
    (tmp_path / "labels.csv").write_text("id;hemorrhage\n" + "".join(f"{n:03d};{n % 2}\n" for n in range(10)))
    semicolon = load_dataset(DataConfig(path=tmp_path))
    assert semicolon.ids == plain.ids and semicolon.labels.tolist() == plain.labels.tolist() and torch.equal(semicolon.images, plain.images)
    pd.DataFrame({"id": [f"{n:03d}" for n in range(10)], "hemorrhage": [n % 2 for n in range(10)]}).to_csv(tmp_path / "labels.csv")  # index written
    indexed = load_dataset(DataConfig(path=tmp_path))
    assert indexed.labels.tolist() == plain.labels.tolist() and torch.equal(indexed.images, plain.images)
    assert any("pandas index" in w for w in indexed.source.warnings)


# ----------------------------------------------------------------------------- 11. fingerprint


def test_fingerprint_includes_the_preprocessing_version(tmp_path, monkeypatch):
    from ctqc.data import assemble

    make_folder(tmp_path)
    now = load_dataset(DataConfig(path=tmp_path)).source
    monkeypatch.setattr(assemble, "PREPROCESSING_VERSION", assemble.PREPROCESSING_VERSION - 1)
    before = load_dataset(DataConfig(path=tmp_path)).source
    assert before.content_hash == now.content_hash and before.fingerprint != now.fingerprint


def test_data_inspect_prints_orientation_intensity_and_value_ranges(tmp_path, run_cli):
    data = make_folder(tmp_path / "d")
    _save_oriented(data / "head_ct" / "000.png", _upright(20, 24), 6)
    Image.fromarray(_ct_slice(np.int16)).save(data / "head_ct" / "001.tif")
    (data / "head_ct" / "001.png").unlink()
    result = run_cli("data", "inspect", "--data", data)
    assert result.code == 0, result.err
    text = " ".join(result.out.split())
    assert "EXIF orientation applied: tag 6 (rotated 90° clockwise) × 1" in text
    assert "intensity (data.intensity=absolute):" in text
    assert "HU window brain (L40/W80) (values look like HU): 1 image(s), stored values -1024..1000" in text
    assert "/255: 9 image(s), stored values 0..254" in text
