"""The train stage with its GANs one after another (``gan.jobs=1``) vs side by side (``gan.jobs=0``), interleaved in one run.

Both contenders run ``ctqc train`` (the train stage, then generate) on the built-in
phantom data in a fresh temporary folder, as a subprocess, with the preset's
settings and ``--set gan.epochs=E`` (default: a tenth of the default preset's 250):

- one after another (``gan.jobs=1``): one process, every core's thread on each GAN in
  turn (ctqc's behaviour until 2026-11-30, the reference);
- side by side (``gan.jobs=0``): one spawned process per core, one GAN each
  (:mod:`ctqc.pool`; process start-up included).

Pairs alternate which contender goes first. Each run's train-stage seconds are read
from its ``manifest.json``; the last line gives the medians and the median of the
per-pair ratios one-after-another / side-by-side (> 1: side by side is faster).
``OMP_NUM_THREADS`` is removed from the runs' environment (it caps the cores ctqc
splits, :func:`ctqc.pool.available_cores`). The two contenders' GANs are not bit-identical (one thread vs several per GAN sums
in another order): same settings, same seeds, statistically the same GANs.

    python bench/gan_side_by_side.py [--pairs 4] [--epochs 25] [--config default]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CONTENDERS = {"one_after_another": 1, "side_by_side": 0}  # gan.jobs


def train_seconds(config: str, epochs: int, jobs: int) -> float:
    """The train stage's wall seconds (from the manifest) of one fresh `ctqc train` run."""
    work = Path(tempfile.mkdtemp(prefix="ctqc-sbs-"))
    try:
        command = [sys.executable, "-m", "ctqc", "-q", "train", "--config", config, "--set", f"gan.epochs={epochs}", "--set", f"gan.jobs={jobs}"]
        env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # it would cap the cores both contenders split
        result = subprocess.run(command, cwd=work, capture_output=True, text=True, env=env)
        if result.returncode != 0:
            sys.exit(f"ctqc train failed ({result.returncode}):\n{result.stderr[-2000:]}")
        manifest = json.loads((work / "runs" / "latest" / "manifest.json").read_text())
        return float(manifest["stages"]["train"]["seconds"])
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=4, help="interleaved pairs (each runs both contenders)")
    parser.add_argument("--epochs", type=int, default=25, help="gan.epochs of every run")
    parser.add_argument("--config", default="default", help="preset name or YAML path")
    args = parser.parse_args()
    config = str(Path(args.config).resolve()) if Path(args.config).is_file() else args.config
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores; load {os.getloadavg()[0]:.2f}")
    print(f"ctqc train --config {args.config} --set gan.epochs={args.epochs} --set gan.jobs=1 | 0, {args.pairs} pairs, alternating", flush=True)
    seconds: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    for pair in range(args.pairs):
        order = list(CONTENDERS) if pair % 2 == 0 else list(reversed(CONTENDERS))
        for name in order:
            seconds[name].append(train_seconds(config, args.epochs, CONTENDERS[name]))
        ratio = seconds["one_after_another"][-1] / seconds["side_by_side"][-1]
        print(f"pair {pair + 1}: one after another {seconds['one_after_another'][-1]:.1f} s, side by side {seconds['side_by_side'][-1]:.1f} s, ratio {ratio:.2f}", flush=True)
    ratios = [a / b for a, b in zip(seconds["one_after_another"], seconds["side_by_side"])]
    print(
        f"train stage: one after another median {statistics.median(seconds['one_after_another']):.1f} s, "
        f"side by side median {statistics.median(seconds['side_by_side']):.1f} s; "
        f"ratio median {statistics.median(ratios):.2f} (min {min(ratios):.2f}, max {max(ratios):.2f})"
    )


if __name__ == "__main__":
    main()
