"""The QC self-test as a benchmark: null, planted artifacts, planted copies (see ctqc/qc/selftest.py).

    python bench/qc_planted.py [--config default] [--set k=v]... [--permutations 100]
Prints the self-test's figures; the last line is the verdict.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from ctqc.config import load_config
from ctqc.qc.selftest import selftest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="default")
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--permutations", type=int, default=100)
    args = parser.parse_args()
    start = time.perf_counter()
    r = selftest(load_config(args.config, args.overrides), null_permutations=args.permutations)
    print(f"{r['n_images']} development images, features {'+'.join(r['features'])}, {r['classifier']}, threshold {r['threshold']}")
    n = r["null"]
    print(f"(a) null: AUC {np.mean(n['auc']):.3f} (range {min(n['auc']):.3f}-{max(n['auc']):.3f}), p-values {np.round(n['p_values'], 2).tolist()}, discarded at threshold ≤ {max(n['discarded_fraction']):.0%}")
    for name, levels in r["planted"]["auroc"].items():
        print(f"(b) {name:16s} AUROC low {levels['low']:.3f}  medium {levels['medium']:.3f}  high {levels['high']:.3f}")
    c = r["copies"]
    print("(c) copies flagged: " + ", ".join(f"{k} {v:.0%}" for k, v in c["flagged"].items()) + f"; genuine held-out flagged {c['genuine_flagged']:.0%}")
    verdict = {k: r[k]["pass"] for k in ("null", "planted", "copies")}
    print(f"QC self-test in {time.perf_counter() - start:.0f} s: " + ", ".join(f"{k} {'pass' if v else 'FAIL'}" for k, v in verdict.items()))


if __name__ == "__main__":
    main()
