"""Per-class GANs trained one after the other vs together (``gan.train_together``), side by side in one run.

Both contenders train the default preset's two per-class GANs (its ``gan:``
settings; 72 phantom images per class at 32×32, i.e. 9 steps per epoch at
the default's batch 8) with ``ctqc``'s trainers:

- one after the other: ``gan.trainer.train_gan`` per class (the default path);
- together: ``gan.batched.train_gans_together`` (one grouped network).

Each round runs both contenders, A then B, B then A, and so on; each round continues every GAN from its
checkpoint for ``--epochs`` epochs (checkpoint writing included, as in
``ctqc train``). Prints each round's GAN steps per second (steps of all GANs
summed), the medians and the median ratio together / one after the other (last line).

    python bench/gan_together.py [--rounds 5] [--epochs 5] [--device cpu]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import torch

from ctqc.config import DataConfig, PhantomConfig, load_config
from ctqc.data import load_dataset
from ctqc.device import resolve_device, use_bf16
from gan.batched import GanJob, train_gans_together, train_job


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds per contender (after one warm-up round each)")
    parser.add_argument("--epochs", type=int, default=5, help="epochs per GAN per round")
    parser.add_argument("--config", default="default", help="preset whose gan: settings are used")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    cfg = load_config(args.config).gan.model_copy(update={"epochs": 100_000})  # never reaches its end: no generator.pt
    data = load_dataset(DataConfig(phantom=PhantomConfig(n_per_class=72)))
    dev = resolve_device(args.device)
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, threads {torch.get_num_threads()}, device {dev}")
    print(f"gan: {cfg.architecture} width {cfg.width}, batch {cfg.batch_size}, precision {'bf16' if use_bf16(cfg.precision, dev) else 'fp32'}")

    with tempfile.TemporaryDirectory() as tmp:
        jobs = {
            name: [GanJob(data.images[torch.from_numpy(data.labels == key)], Path(tmp) / name / data.class_names[key], seed=key) for key in sorted(data.class_names)]
            for name in ("one_after_the_other", "together")
        }
        steps_per_epoch = sum(len(job.images) // cfg.batch_size for job in jobs["together"])

        def one_after_the_other(until: int) -> None:
            for job in jobs["one_after_the_other"]:
                train_job(job, cfg, device=args.device, until_epoch=until)

        def together(until: int) -> None:
            train_gans_together(jobs["together"], cfg, device=args.device, until_epoch=until)

        rates: dict[str, list[float]] = {"one_after_the_other": [], "together": []}
        for r in range(args.rounds + 1):  # round 0 warms up
            until = (r + 1) * args.epochs
            contenders = [("one_after_the_other", one_after_the_other), ("together", together)]
            for name, run in contenders if r % 2 == 0 else contenders[::-1]:  # who goes first alternates too
                start = time.perf_counter()
                run(until)
                rate = args.epochs * steps_per_epoch / (time.perf_counter() - start)
                if r > 0:
                    rates[name].append(rate)
                    print(f"round {r} {name}: {rate:.1f} GAN steps/s")
    a, b = (statistics.median(rates[n]) for n in ("one_after_the_other", "together"))
    ratios = [t / s for s, t in zip(rates["one_after_the_other"], rates["together"])]
    print(f"median: one after the other {a:.1f}, together {b:.1f} GAN steps/s ({len(jobs['together'])} GANs, {steps_per_epoch} steps per epoch in all)")
    print(f"GANs together / one after the other, steps/s: {statistics.median(ratios):.2f}x (median of {len(ratios)} paired rounds, range {min(ratios):.2f}-{max(ratios):.2f})")


if __name__ == "__main__":
    main()
