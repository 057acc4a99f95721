"""Decoding and preprocessing of messy real-world images."""

import numpy as np
import pytest
import torch
from PIL import Image

from ctqc.config import DataConfig, DicomConfig
from ctqc.data import load_dataset
from ctqc.data.images import preprocess, read_image
from ctqc.errors import UserError


def _gradient(h, w):
    y, x = np.mgrid[0:h, 0:w]
    return ((x + y) / (h + w - 2) * 255).astype(np.uint8)


def _write_mixed_folder(root):
    """Like the Kaggle set: non-square, modes L/RGB/RGBA, a JPEG, plus 16-bit PNG and TIFF."""
    images = root / "head_ct"
    images.mkdir(parents=True)
    g = _gradient(300, 420)
    Image.fromarray((g.astype(np.uint16) * 257)).save(images / "000.png")
    Image.fromarray(np.stack([g] * 3, -1)).resize((500, 260)).save(images / "001.png")
    Image.fromarray(np.dstack([g, g, g, np.full_like(g, 255)])).save(images / "002.png")
    Image.fromarray(_gradient(233, 350)).save(images / "003.jpg", quality=90)
    Image.fromarray(_gradient(640, 512).astype(np.uint16) * 200).save(images / "004.tif")
    Image.fromarray(_gradient(210, 200)).save(images / "005.bmp")
    (root / "labels.csv").write_text("id, hemorrhage\n000, 0\n001, 1\n002, 0\n003, 1\n004, 0\n005, 1\n")


def test_mixed_modes_and_sizes_load_into_one_float_tensor(tmp_path):
    _write_mixed_folder(tmp_path)
    data = load_dataset(DataConfig(path=tmp_path))
    assert data.images.dtype == torch.float32
    assert tuple(data.images.shape) == (6, 1, 32, 32)
    assert data.images.min() >= -1 and data.images.max() <= 1
    assert data.ids == ("000", "001", "002", "003", "004", "005")
    assert data.labels.tolist() == [0, 1, 0, 1, 0, 1]
    assert data.class_counts() == {"normal": 3, "haemorrhage": 3}
    modes = [i.mode for i in data.source.image_info]
    assert modes[1:3] == ["RGB", "RGBA"] and modes[0].startswith("I")
    # every image keeps its dark corner/padding and its bright content
    assert all(float(img.max()) > 0.5 and float(img.min()) < -0.9 for img in data.images)


def test_sixteen_bit_matches_eight_bit(tmp_path):
    g = _gradient(40, 60)
    Image.fromarray(g).save(tmp_path / "a.png")
    Image.fromarray(g.astype(np.uint16) * 257).save(tmp_path / "b.png")
    a, info_a = read_image(tmp_path / "a.png", max_pixels=10**6)
    b, info_b = read_image(tmp_path / "b.png", max_pixels=10**6)
    assert info_a.mode == "L" and info_b.mode != "L"
    np.testing.assert_allclose(a, b, atol=1e-6)


def test_transparent_pixels_become_black_and_rgb_becomes_luma(tmp_path):
    rgba = np.zeros((10, 10, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[:5, :, 3] = 255  # top half opaque, bottom half transparent
    Image.fromarray(rgba).save(tmp_path / "t.png")
    gray, _ = read_image(tmp_path / "t.png", max_pixels=10**6)
    assert np.allclose(gray[:5], 200 / 255, atol=1e-3) and np.all(gray[5:] == 0)
    Image.fromarray(np.dstack([np.full((4, 4), v, np.uint8) for v in (255, 0, 0)])).save(tmp_path / "r.png")
    red, _ = read_image(tmp_path / "r.png", max_pixels=10**6)
    assert red.mean() == pytest.approx(0.299, abs=0.005)


def test_preprocess_pads_with_black_keeping_aspect_ratio():
    wide = np.ones((50, 100), np.float32)  # white, twice as wide as high
    out = preprocess(wide, 32)
    assert out.shape == (1, 32, 32)
    column = out[0, :, 16]
    assert torch.all(column[:7] == -1) and torch.all(column[-7:] == -1)  # ~8 rows of padding top and bottom
    assert torch.allclose(column[9:23], torch.ones(14))
    assert torch.allclose(out[0, 16, :], torch.ones(32))  # full width kept


def test_preprocess_antialiases_when_shrinking():
    stripes = np.zeros((256, 256), np.float32)
    stripes[:, ::2] = 1.0  # 1-px stripes alias badly without a low-pass filter
    out = preprocess(stripes, 32)
    assert out.std() < 0.05 and out.mean() == pytest.approx(0.0, abs=0.05)


def test_decompression_bomb_is_refused_before_decoding(tmp_path):
    Image.new("L", (3000, 3000)).save(tmp_path / "big.png")
    with pytest.raises(UserError, match="decompression-bomb guard"):
        read_image(tmp_path / "big.png", max_pixels=1_000_000)


def _dicom(path, hu, photometric="MONOCHROME2", slope=1.0, intercept=-1024.0):
    pytest.importorskip("pydicom")
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.2"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.PatientName = "Doe^Jane"
    ds.PatientID = "SECRET-ID-123"
    ds.PatientBirthDate = "19700101"
    stored = np.round((np.asarray(hu, np.float64) - intercept) / slope).astype(np.uint16)
    ds.Rows, ds.Columns = stored.shape
    ds.SamplesPerPixel, ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 1, 16, 16, 15, 0
    ds.PhotometricInterpretation = photometric
    ds.RescaleSlope, ds.RescaleIntercept = slope, intercept
    ds.PixelData = stored.tobytes()
    ds.save_as(path, enforce_file_format=True)
    return path


def test_dicom_hounsfield_windowing_and_monochrome1(tmp_path):
    hu = np.array([[-1000, 0, 40], [80, 1000, 20]], dtype=np.float64)
    brain, info = read_image(_dicom(tmp_path / "a.dcm", hu), max_pixels=10**6, dicom=DicomConfig(window="brain"))
    assert info.format == "DICOM"
    # brain window L40/W80: 0 HU → 0, 40 HU → 0.5, 80 HU → 1; outside clipped
    np.testing.assert_allclose(brain, [[0, 0, 0.5], [1, 1, 0.25]], atol=1e-6)
    bone, _ = read_image(tmp_path / "a.dcm", max_pixels=10**6, dicom=DicomConfig(window="bone"))
    assert bone[1, 1] == pytest.approx((1000 - (600 - 1400)) / 2800)
    inverted, _ = read_image(_dicom(tmp_path / "b.dcm", hu, photometric="MONOCHROME1"), max_pixels=10**6)
    np.testing.assert_allclose(inverted, 1 - brain, atol=1e-6)
    scaled, _ = read_image(_dicom(tmp_path / "c.dcm", hu, slope=2.0, intercept=-2048.0), max_pixels=10**6)
    np.testing.assert_allclose(scaled, brain, atol=1e-6)


def test_dicom_folder_loads_and_patient_tags_go_nowhere(tmp_path, run_cli):
    data = tmp_path / "dcm"
    data.mkdir()
    rng = np.random.default_rng(0)
    rows = ["id,label"]
    for n in range(12):
        _dicom(data / f"s{n:02d}.dcm", rng.uniform(-100, 120, size=(40, 50)))
        rows.append(f"s{n:02d},{n % 2}")
    (data / "labels.csv").write_text("\n".join(rows) + "\n")
    loaded = load_dataset(DataConfig(path=data))
    assert tuple(loaded.images.shape) == (12, 1, 32, 32)
    result = run_cli("data", "prepare", "--data", data, "--set", "split.val_fraction=0.25", "--set", "split.test_fraction=0.25")
    assert result.code == 0, result.err
    written = b"".join(p.read_bytes() for p in (tmp_path / "runs").rglob("*") if p.is_file())
    for secret in (b"Doe", b"SECRET-ID-123", b"19700101"):
        assert secret not in written
        assert secret.decode() not in result.out + result.err
