"""1 Run summary: provenance (manifest.json), the resolved config, stage timings, package versions."""

from __future__ import annotations

import importlib.metadata
import platform

from ctqc.artefacts import Manifest
from reports.rundata import RunData
from reports.sections.common import Section, duration

VERSION_PACKAGES = ["torch", "torchvision", "torch-fidelity", "scikit-learn", "umap-learn", "numpy", "pandas", "matplotlib", "seaborn", "Jinja2"]


def versions() -> list[tuple[str, str]]:
    """(package, version) of the libraries behind the numbers, as installed where the report is rendered."""
    out = []
    for pkg in VERSION_PACKAGES:
        try:
            out.append((pkg, importlib.metadata.version(pkg)))
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def build(run: RunData) -> Section:
    m = run.manifest()
    ran = m is not None
    m = m or Manifest()
    data = m.data
    recorded = {k: v for k, v in m.stages.items() if k != "report"}  # "report" would describe an earlier rendering
    stages = [
        {
            "name": name,
            "status": entry.status,
            "started": entry.started or "–",
            "finished": entry.finished or "–",
            "seconds": duration(entry.seconds),
            "outputs": len(entry.outputs),
            "error": entry.error,
        }
        for name, entry in recorded.items()
    ]
    total = sum(entry.seconds or 0 for entry in recorded.values())
    size = data.image_size if data.image_size is not None else "?"
    facts = [
        ("run", m.name or run.path.name),
        ("created", m.created or "–"),
        ("ctqc version (run)", m.ctqc_version or "–"),
        ("git commit (run)", m.git_commit or "not recorded (not a git checkout)"),
        ("config hash", m.config_hash or "–"),
        ("data", f"{data.location or '–'} ({data.kind or '?'})"),
        ("data fingerprint", data.fingerprint or "–"),
        ("content hash", data.content_hash or "–"),
        ("images", f"{data.n_images if data.n_images is not None else '–'} at {size}×{size} px"),
    ]
    summary = {
        "path": str(run.path),
        "name": m.name,
        "created": m.created,
        "ctqc_version": m.ctqc_version,
        "git_commit": m.git_commit,
        "config_hash": m.config_hash,
        "data_fingerprint": data.fingerprint,
        "stages": {k: {"status": v.status, "seconds": v.seconds} for k, v in recorded.items()},
    }
    content = {
        "facts": facts,
        "data_warnings": list(data.warnings),
        "config_text": run.config_text(),
        "versions": versions(),
        "python": platform.python_version(),
        "stages": stages,
        "total_seconds": duration(total),
    }
    return Section("run", "Run summary", ran, content, summary)
