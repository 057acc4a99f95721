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
    print(f"{r['n_images']} development images, features {'+'.join(r['features'])}, {r['classifier']}, operating point: {r['operating_point']}")
    n = r["null"]
    print(
        f"(a) null: AUC {np.mean(n['auc']):.3f} (range {min(n['auc']):.3f}-{max(n['auc']):.3f}), p-values {np.round(n['p_values'], 2).tolist()}, "
        f"discarded {n['mean_discarded']:.1%} on average (max {max(n['discarded_fraction']):.0%}), ECE vs the true posterior {n['mean_ece']:.3f} — {'pass' if n['pass'] else 'FAIL'}"
    )
    p = r["planted"]
    print(f"(b) over {p['n_splits']} splits, {p['n_defective']} defective images per cell: AUROC low / medium / high; removed at the operating point low / medium / high; genuine removed (medium)")
    for name, levels in p["auroc"].items():
        removed = p["removed"][name]
        print(
            f"    {name:16s} AUROC {levels['low']:.3f} / {levels['medium']:.3f} / {levels['high']:.3f}; "
            f"removed {removed['low']:.0%} / {removed['medium']:.0%} / {removed['high']:.0%}; genuine {p['genuine_removed'][name]['medium']:.0%}"
        )
    print(
        f"    AUROC medium ≥ 0.9: {p['medium_at_least_0.9']}; removed ≥ 90 %: {p['medium_removed_at_least_0.9']}; "
        f"genuine ≤ 10 %: {p['genuine_removed_at_most_0.1']}; removed rising: {p['rising_with_strength']}"
    )
    c = r["copies"]
    print("(c) copies flagged: " + ", ".join(f"{k} {v:.0%}" for k, v in c["flagged"].items()) + f"; genuine held-out flagged {c['genuine_flagged']:.0%}")
    verdict = {k: r[k]["pass"] for k in ("null", "planted", "copies")}
    print(f"QC self-test in {time.perf_counter() - start:.0f} s: " + ", ".join(f"{k} {'pass' if v else 'FAIL'}" for k, v in verdict.items()))


if __name__ == "__main__":
    main()
