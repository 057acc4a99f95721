"""The presets travel with the package: after a regular (non-editable) install,
``--config paper`` resolves to the copy shipped in the wheel, from any directory."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parent.parent
# Build outputs and local state left out of the copy that is built: a stale build/ from
# an earlier in-tree build would otherwise go into the wheel and could hide a missing file.
NOT_SOURCE = shutil.ignore_patterns(".git", ".venv", "build", "dist", "runs", "*.egg-info", "__pycache__",
                                    ".pytest_cache")

# Run in a fresh interpreter whose only extra path is the install folder.
PROBE = """
import json, sys
import ctqc
from ctqc.config import load_config, preset_names, resolve_config_path
from ctqc.errors import UserError
try:
    resolve_config_path("no-such-preset")
    unknown = None
except UserError as exc:
    unknown = str(exc)
print(json.dumps({
    "package": ctqc.__file__,
    "paper": str(resolve_config_path("paper")),
    "name": load_config("paper").name,
    "image_size": load_config("paper").data.image_size,
    "presets": preset_names(),
    "unknown": unknown,
}))
"""


def _pip(*args: str, cwd: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "pip", *args, "--no-deps", "--no-input", "--disable-pip-version-check", "-q"],
        cwd=cwd, capture_output=True, text=True, timeout=180,
    )
    assert done.returncode == 0, f"pip {args[0]} failed:\n{done.stdout}\n{done.stderr}"


def test_presets_ship_in_the_wheel_and_resolve_by_name_outside_the_checkout(tmp_path: Path) -> None:
    source, wheels = tmp_path / "source", tmp_path / "wheels"
    target, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copytree(REPO, source, ignore=NOT_SOURCE)  # the repository root, as a fresh clone has it
    _pip("wheel", "--no-build-isolation", "-w", str(wheels), ".", cwd=source)
    (wheel,) = wheels.glob("ctqc-*.whl")
    shipped = {Path(name).name for name in zipfile.ZipFile(wheel).namelist() if name.startswith("ctqc/presets/")}
    assert {"default.yaml", "evidence.yaml", "paper.yaml", "smoke.yaml"} <= shipped

    _pip("install", "--target", str(target), str(wheel), cwd=elsewhere)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP")}
    env["PYTHONPATH"] = str(target)
    done = subprocess.run([sys.executable, "-c", PROBE], cwd=elsewhere, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.strip().splitlines()[-1])

    paper = yaml.safe_load((REPO / "configs" / "paper.yaml").read_text())
    assert Path(found["package"]).is_relative_to(target)  # the installed copy, not this checkout
    assert Path(found["paper"]).is_relative_to(target)
    assert Path(found["paper"]).read_text() == (REPO / "configs" / "paper.yaml").read_text()
    assert found["name"] == paper["name"] == "paper"
    assert found["image_size"] == paper["data"]["image_size"]
    presets = sorted(p.stem for p in (REPO / "configs").glob("*.yaml"))
    assert set(found["presets"]) == set(presets) and "evidence" in presets
    assert found["unknown"] is not None and ", ".join(presets) in found["unknown"]
