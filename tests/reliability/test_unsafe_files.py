"""Unsafe files: pickles that would run code, paths that leave their folder, HTML in user strings.

The bad-input catalogue (``test_bad_input.py``) already refuses, with exit 2,
a code-running ``generator.pt``, ids and pool files that leave their folder
and decompression bombs in the data and the pool; ``tests/test_report.py``
checks that file and class names are escaped in every report section. Here:
every ``torch.load`` in ctqc is ``weights_only=True``; crafted pickles in each
place ctqc loads one are refused without running; the report never reads a
file outside its run; a run *name* carrying HTML is escaped.
"""

from __future__ import annotations

import pickle
import re

import pytest
import torch
from PIL import Image

from tests.reliability.conftest import MARKER, REPO, Exploit, copy_run, set_pool_file


def test_every_torch_load_is_weights_only():
    calls = []
    for source in sorted(p for d in ("ctqc", "gan", "classify", "reports") for p in (REPO / d).rglob("*.py")):
        for match in re.finditer(r"torch\.load\(([^)]*)\)", source.read_text(encoding="utf-8")):
            calls.append((source.relative_to(REPO), match.group(1)))
    assert len(calls) >= 3  # gan checkpoints, the domain encoder, pretrained classifier weights
    assert all("weights_only=True" in args for _, args in calls), calls


@pytest.mark.filterwarnings("ignore:Detected pickle protocol:UserWarning")  # torch, refusing the crafted pickle
@pytest.mark.parametrize(
    ("target", "args"),
    [
        ("gan/fold0/normal/checkpoints/last.pt", ["train", "--resume"]),
        ("gan/fold0/normal/checkpoints/generator.pt", ["generate"]),
    ],
)
def test_crafted_checkpoints_are_refused_without_running(tmp_path, run_cli, shared_runs, target, args):
    run = copy_run(shared_runs.get("trained"), tmp_path)
    marker = tmp_path / MARKER
    for fmt in ("pickle", "torch"):
        path = run / target
        if fmt == "pickle":
            path.write_bytes(pickle.dumps({"meta": Exploit(marker)}))
        else:
            torch.save({"G": Exploit(marker)}, path)  # a real torch zip with a code-running record
        if target.endswith("last.pt"):
            (path.parent / "generator.pt").unlink(missing_ok=True)  # unfinished: resume must load last.pt
        result = run_cli(*args)
        assert result.code == 2 and "not a loadable ctqc checkpoint" in result.err and "unsafe" in result.err, result.err
        assert not marker.exists()


def test_crafted_domain_encoder_is_refused_without_running(tmp_path):
    from ctqc.errors import UserError
    from ctqc.qc.domain import load_encoder

    torch.save({"head.weight": Exploit(tmp_path / MARKER)}, tmp_path / "domain-fold0.pt")
    with pytest.raises(UserError, match="not a loadable domain encoder"):
        load_encoder(tmp_path / "domain-fold0.pt")
    assert not (tmp_path / MARKER).exists()


def test_report_never_embeds_a_file_outside_the_run(tmp_path, run_cli, shared_runs):
    """samples/index.csv pointing at an image outside the run: noted, not read into the report."""
    run = copy_run(shared_runs.get("trained"), tmp_path)
    secret = tmp_path / "secret.png"
    Image.new("L", (32, 32), 123).save(secret)
    set_pool_file(run, "../../secret.png")
    result = run_cli("report", "--no-html")
    assert result.code == 0, result.err
    clean = run_cli("report")
    assert clean.code == 0, clean.err
    html = (run / "report" / "report.html").read_text()
    assert "../../secret.png: points outside the run directory" in html
    from reports.images import picture_from_file

    leaked = picture_from_file(secret).uri.split(",")[1]
    assert leaked not in html


def test_run_name_with_html_is_escaped_in_the_report(privacy_run):
    """The run's name (a --set value) reaches the report's title and header as text, never as markup."""
    run, _ = privacy_run
    html = (run / "report" / "report.html").read_text()
    assert "<img src=x" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
