"""Privacy: patient tags of DICOM inputs appear in no file ctqc writes and in none of its output.

:func:`~tests.reliability.conftest.privacy_run` runs every stage (train, generate,
filter, qc, compare, report) on DICOM slices whose PatientName, PatientID and
PatientBirthDate are distinctive strings; every byte written under the run
directory — checkpoints, PNG text chunks, CSVs, the self-contained HTML report —
and the console output are searched for them, whole and in parts.
"""

from __future__ import annotations

from tests.reliability.conftest import PATIENT_TAGS


def _needles() -> list[bytes]:
    """Each tag whole and each of its parts (``Zyxwvut``, ``Qwertyuiop``), as bytes."""
    parts = {v for value in PATIENT_TAGS.values() for v in (value, *value.split("^"))}
    return sorted(p.encode() for p in parts)


def test_patient_tags_are_in_no_written_file(privacy_run):
    run, _ = privacy_run
    files = [p for p in run.rglob("*") if p.is_file()]
    stages = {p.relative_to(run).parts[0] for p in files}
    assert {"gan", "samples", "filter", "qc", "compare", "report", "manifest.json", "splits.csv"} <= stages  # every stage wrote
    for path in files:
        content = path.read_bytes()
        for needle in _needles():
            assert needle not in content, f"{path.relative_to(run)} contains {needle!r}"


def test_patient_tags_are_not_printed(privacy_run):
    _, console = privacy_run
    assert "report:" in console
    for needle in _needles():
        assert needle.decode() not in console
