"""End-to-end timing of the main job: `ctqc run` on the built-in phantom data, stage by stage.

Runs ``ctqc run --config <preset>`` in a fresh temporary directory as a
subprocess (exactly what ``make demo`` runs), then reads each stage's wall time
from the run's ``manifest.json`` and prints them with the total. The reference
point is the issue's budget (600 s for the default preset on a 2-core CPU);
the last line is the total wall time and its share of that budget.

Usage: python bench/end_to_end.py [--config default] [--budget 600] [--keep DIR]
Machine load distorts the figure badly on 2 cores: run it on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="default", help="preset name or YAML path (default: default)")
    parser.add_argument("--budget", type=float, default=600.0, help="the wall-time target in seconds (default 600)")
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it (default: a temporary folder, deleted)")
    args = parser.parse_args()

    config = args.config
    if Path(config).is_file():
        config = str(Path(config).resolve())
    work = args.keep or Path(tempfile.mkdtemp(prefix="ctqc-e2e-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; load {os.getloadavg()[0]:.2f}")
    print(f"command: ctqc run --config {args.config} --new   (in {work})")
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-m", "ctqc", "-q", "run", "--config", config, "--new"], cwd=work, capture_output=True, text=True)
    total = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"ctqc run failed ({result.returncode}):\n{result.stderr[-2000:]}")
    manifest = json.loads((work / "runs" / "latest" / "manifest.json").read_text())
    print(f"{'stage':10s} {'seconds':>8s}")
    for stage, entry in manifest["stages"].items():
        print(f"{stage:10s} {entry.get('seconds', 0):8.1f}")
    accounted = sum(e.get("seconds", 0) for e in manifest["stages"].values())
    print(f"{'(start-up, data, report rendering)':10s} {total - accounted:8.1f}")
    print(result.stdout.strip().splitlines()[-1])
    if args.keep is None:
        shutil.rmtree(work, ignore_errors=True)
    print(f"ctqc run --config {args.config}: {total:.0f} s wall = {total / args.budget:.0%} of the {args.budget:.0f} s budget")


if __name__ == "__main__":
    main()
