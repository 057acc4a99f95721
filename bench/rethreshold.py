"""Re-thresholding a finished run: `ctqc filter --c2st-threshold T` over stored scores vs re-fitting them.

Three commands, each a fresh process, interleaved round by round on copies of one run:

- start-up: ``ctqc --version`` (the interpreter and the CLI, nothing else);
- ctqc: ``ctqc filter --c2st-threshold T`` on a scored run — a decision over
  ``qc/scores.csv`` plus the after-filter check (one C2ST per fold × class);
- reference: the same command after the run's scores are marked stale (the score
  stage removed from the manifest), so it re-fits the features, the C2ST and the
  copy check first — what every ``ctqc filter`` did before scores were stored.

Prints min / median / max of each and the ratio of medians (last line).

    python bench/rethreshold.py RUN_DIR [--rounds 3] [--threshold 0.7]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CTQC = [sys.executable, "-m", "ctqc", "-q"]


def timed(cmd: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - start


def unscored(run: Path) -> None:
    """Drop the score stage's manifest entry: the next `ctqc filter` scores the pool again."""
    manifest = json.loads((run / "manifest.json").read_text())
    manifest["stages"].pop("score", None)
    (run / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threshold", type=float, default=0.7)
    args = parser.parse_args()
    times: dict[str, list[float]] = {"start-up": [], "ctqc": [], "reference": []}
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / args.run.name
        shutil.copytree(args.run.resolve(), run, symlinks=True)
        filt = [*CTQC, "filter", "--run", str(run), "--c2st-threshold", str(args.threshold)]
        subprocess.run(filt, check=True, capture_output=True)  # scored and filtered once: the state a user re-thresholds
        for _ in range(args.rounds):
            times["start-up"].append(timed([*CTQC, "--version"]))
            times["ctqc"].append(timed(filt))
            unscored(run)
            times["reference"].append(timed(filt))
    for name, values in times.items():
        print(f"{name:10s} min {min(values):6.2f} s  median {statistics.median(values):6.2f} s  max {max(values):6.2f} s")
    ours, ref, start = (statistics.median(times[k]) for k in ("ctqc", "reference", "start-up"))
    print(f"re-threshold: ctqc {ours:.2f} s ({ours - start:.2f} s after start-up) vs re-fitting {ref:.2f} s: {ref / ours:.1f}x faster (medians of {args.rounds} interleaved rounds)")


if __name__ == "__main__":
    main()
