"""Inception feature throughput, 32×32 grey images → 2048-d: ctqc's fast path vs torch-fidelity, in one run.

    python bench/inception_throughput.py [--images 160] [--repeats 5]

Contenders, interleaved round by round so that a change in machine load hits all alike:
- plain: torch-fidelity's ``FeatureExtractorInceptionV3`` as is (fp32), batch 32 — the reference;
- plain-bf16: the same forward, BN folded, channels-last, under bf16 autocast — what
  "just turn on bf16" gives;
- ctqc: ``inception_features(precision="bf16")`` (:mod:`ctqc.qc.fast_inception`).
Prints each contender's median img/s and the ratios; also each one's relative L2 distance
from the fp32 features. ``--no-malloc-tuning`` leaves glibc's allocator at its defaults
(``ctqc`` itself tunes it: :mod:`ctqc.allocator`).
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=160)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--no-malloc-tuning", action="store_true")
    args = parser.parse_args()
    from ctqc import allocator

    tuned = not args.no_malloc_tuning and allocator.retain_freed_memory()
    from ctqc.qc import inception

    weights = inception.inception_weights_path()
    grey = torch.randint(0, 256, (args.images, 1, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    images = grey.expand(-1, 3, -1, -1).contiguous()
    plain, folded = inception._extractor(weights), inception._folded_extractor(weights)

    def run_plain(x: torch.Tensor) -> torch.Tensor:
        return torch.cat([plain(b)[0] for b in x.split(32)])

    def run_plain_bf16(x: torch.Tensor) -> torch.Tensor:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return torch.cat([folded(b)[0].float() for b in x.split(32)])

    def run_ctqc(x: torch.Tensor) -> torch.Tensor:
        return inception.inception_features(x, precision="bf16").float()

    contenders = {"plain": run_plain, "plain-bf16": run_plain_bf16, "ctqc": run_ctqc}
    print(f"{args.images} grey 32×32 images, {torch.get_num_threads()} threads, malloc tuning {'on' if tuned else 'off'}")
    rates: dict[str, list[float]] = {name: [] for name in contenders}
    with torch.inference_mode():
        exact = run_plain(images)
        for name, fn in contenders.items():
            error = ((fn(images[:32]) - exact[:32]).norm() / exact[:32].norm()).item()
            print(f"{name:>10}: relative L2 distance from fp32 features {error:.4f}")
        for _ in range(args.repeats):
            for name, fn in contenders.items():
                start = time.perf_counter()
                fn(images)
                rates[name].append(args.images / (time.perf_counter() - start))
    median = {name: statistics.median(r) for name, r in rates.items()}
    for name, r in rates.items():
        print(f"{name:>10}: median {median[name]:.1f} img/s  (rounds: {', '.join(f'{v:.1f}' for v in r)})")
    print(
        f"ctqc {median['ctqc']:.1f} img/s vs plain {median['plain']:.1f} ({median['ctqc'] / median['plain']:.2f}x) "
        f"and plain-bf16 {median['plain-bf16']:.1f} ({median['ctqc'] / median['plain-bf16']:.2f}x)"
    )


if __name__ == "__main__":
    main()
