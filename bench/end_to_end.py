"""End-to-end timing of the main job: `ctqc run` on the built-in phantom data, stage by stage.

Runs ``ctqc run --config <preset>`` in a fresh temporary directory as a
subprocess (exactly what ``make demo`` runs), then reads each stage's wall time
from the run's ``manifest.json`` and prints them with the total. ``--device``
(auto, cpu, cuda) is passed to the run as ``--set device=…``. There is no plain
reference implementation of the whole pipeline to time beside it; the reference
points are the budget (600 s for the default preset on a 2-core CPU, ``make
demo``; 180 s on a GPU, issue 17's target for the paper pipeline) and the
device's bf16 matrix rate, timed in the same run (``bench/devicebench.py``) so
that figures from different machines can be set side by side. The last line is
the total wall time and its share of the budget.

Usage: python bench/end_to_end.py [--device auto|cpu|cuda] [--config default] [--budget SECONDS] [--keep DIR]
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

import devicebench

BUDGET = {"cpu": 600.0, "cuda": 180.0}  # seconds: make demo's on 2 CPU cores; the paper pipeline's on one GPU (issue 17)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    devicebench.add_device_argument(parser)
    parser.add_argument("--config", default="default", help="preset name or YAML path (default: default)")
    parser.add_argument("--budget", type=float, default=None, help="the wall-time target in seconds (default: 600 on the CPU, 180 on CUDA)")
    parser.add_argument("--keep", type=Path, help="run in this folder and keep it (default: a temporary folder, deleted)")
    args = parser.parse_args()
    device = devicebench.device_from_args(args.device)
    budget = args.budget or BUDGET[device.type]

    config = args.config
    if Path(config).is_file():
        config = str(Path(config).resolve())
    work = args.keep or Path(tempfile.mkdtemp(prefix="ctqc-e2e-"))
    work.mkdir(parents=True, exist_ok=True)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; load {os.getloadavg()[0]:.2f}; device {devicebench.describe(device)}")
    print(devicebench.rates_line(device, devicebench.matrix_rates(device)), flush=True)
    print(f"command: ctqc run --config {args.config} --set device={device.type} --new   (in {work})", flush=True)
    start = time.perf_counter()
    command = [sys.executable, "-m", "ctqc", "-q", "run", "--config", config, "--set", f"device={device.type}", "--new"]
    result = subprocess.run(command, cwd=work, capture_output=True, text=True)
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
    print(f"ctqc run --config {args.config} on {device.type}: {total:.0f} s wall = {total / budget:.0%} of the {budget:.0f} s budget")


if __name__ == "__main__":
    main()
