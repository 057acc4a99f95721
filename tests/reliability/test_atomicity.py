"""Atomicity: every file ctqc writes goes to a temporary name first and is renamed into place.

The uninterrupted reference pipeline ran under an audit hook
(:mod:`tests.reliability.write_audit`) that logged every file opened for
writing. Inside the run directory each of them must be a temporary — a hidden
``.<name>.<pid>.<random>.tmp`` file, or a file inside such a folder or a
hidden staging folder (``.samples.new``…) that is renamed whole — with one
exception by design: ``gan/fold*/*/stats.jsonl``, the append-only training log
(``gan/trainer.py``), which resuming truncates to the checkpoint's step and
whose readers skip a cut-off last line; and ``.lock``, the run's lock file
(``ctqc.runlock``), which records its holder in place and holds no results.

The other half — a reader never sees a partial file even when the writer is
killed in the middle — is :mod:`tests.reliability.test_kill_resume`: after
each of its SIGKILLs during manifest, checkpoint, unit, CSV, PNG, HTML and
folder writes, every visible file of the run parses whole.
"""

from __future__ import annotations

import fnmatch
import re
from pathlib import Path

TEMPORARY = re.compile(r"\..+\.\d+\.[a-z0-9_]{8}\.tmp|\..+\.new")  # a component of a temporary path
APPEND_ONLY = ["gan/fold*/*/stats.jsonl"]
LOCK_FILES = [".lock"]  # ctqc.runlock: the run's lock (holder pid while held, empty otherwise); holds no results


def test_every_file_in_a_run_is_written_under_a_temporary_name(reference_pipeline: Path):
    runs = reference_pipeline.parent
    log = (runs.parent / "writes.log").read_text().splitlines()
    writes = [Path(line.split("\t")[0]) for line in log]
    inside = [p for p in writes if p.is_relative_to(runs) and len(p.relative_to(runs).parts) > 1]  # in a run
    assert len(inside) > 50  # the hook saw the run being written
    direct = []
    for path in inside:
        rel = path.relative_to(runs)
        parts = rel.parts[1:]  # below runs/<run>/ (or its temporary name during creation)
        if any(TEMPORARY.fullmatch(part) for part in rel.parts) or any(fnmatch.fnmatch("/".join(parts), g) for g in APPEND_ONLY + LOCK_FILES):
            continue
        direct.append(str(rel))
    assert direct == [], f"written in place, not through ctqc.atomic: {sorted(set(direct))[:10]}"
    names = {p.name for p in inside}
    for made in ("manifest.json", "last.pt", "generator.pt", "results.csv", "kept.csv", "metrics.json", "report.html"):
        assert any(n.startswith(f".{made}.") or n == made for n in names), f"no write of {made} was seen"
