"""Classifier training throughput: a plain PyTorch loop vs ctqc's trainer, on one device, side by side in one run.

Both train the same network — torchvision's ResNet-50 with a one-channel
paper stem, Dropout 0.4 and 2 outputs (``classify.models.build_classifier``) —
on 144 phantom images at 32×32 with batch 32, RMSprop lr 1e-3 and
cross-entropy, so they do the same math up to precision.

- reference: the usual loop — DataLoader over a TensorDataset (per-batch
  collation in Python), fp32, NCHW, torch's default RMSprop;
- ctqc: ``classify.training.fit_classifier`` — data resident as one tensor,
  1×1 and small-map convolutions as matrix multiplications (``MatmulConv2d``),
  RMSprop through the fused Adam kernel (``FusedRMSprop``), bf16 autocast
  where the CPU has AVX-512 BF16 / AMX, channels_last. Its per-epoch
  validation pass is not timed.

The contenders alternate (reference, ctqc, reference, ctqc, ...) for
``--rounds`` rounds; each round builds a fresh model, trains 2 epochs and times
the second, so load from other processes hits both alike. Reported: each
contender's best round (as ``timeit`` does: the least disturbed measurement)
and, on the last line, the median of the per-round ratios. Both use the same torch thread count (``--threads``,
default: torch's). ``--jobs-layout`` adds what ``ctqc compare`` does: one
1-thread training per core in parallel processes (aggregate img/s).
Other processes on the machine change the figures a lot (multi-threaded torch
processes suffer most); at ``--threads 1`` the img-per-CPU-second figures are
the least sensitive to them. ``--device`` (auto, cpu, cuda) puts both contenders on
that device; the same run times the device's bf16 matrix rate
(``bench/devicebench.py``) and prints each contender's achieved FLOP/s (FLOPs
per training image counted by ``FlopCounterMode`` on a reference step) as a share
of it. Prints img/s and the ratio (last line). Usage:
    python bench/classifier_throughput.py [--device auto|cpu|cuda] [--rounds 5] [--threads N] [--arch resnet50] [--jobs-layout]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import statistics
import time

import devicebench
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from classify.models import build_classifier
from classify.training import fit_classifier
from ctqc.config import ClassifierConfig, DataConfig, PhantomConfig
from ctqc.data import load_dataset
from ctqc.device import use_bf16

BATCH = 32


def _data():
    data = load_dataset(DataConfig(phantom=PhantomConfig(n_per_class=72)))  # 144 images: the paper's training split
    return data.images, torch.from_numpy(data.targets)


def _reference_step(model, opt, x: torch.Tensor, y: torch.Tensor, device: torch.device) -> None:
    x, y = x.to(device), y.to(device)
    loss = F.cross_entropy(model(x), y)
    opt.zero_grad()
    loss.backward()
    opt.step()


def _reference_model(arch: str, seed: int, device: torch.device):
    torch.manual_seed(seed)
    model = build_classifier(arch, 2, stem="paper", dropout=0.4).to(device)
    return model, torch.optim.RMSprop(model.parameters(), lr=1e-3)


def reference_round(images: torch.Tensor, targets: torch.Tensor, arch: str, seed: int, device: torch.device) -> tuple[float, float]:
    """Plain fp32 training of a fresh model for 2 epochs; (images per wall second, per CPU second) of the second."""
    model, opt = _reference_model(arch, seed, device)
    loader = DataLoader(TensorDataset(images, targets), batch_size=BATCH, shuffle=True)
    for _ in range(2):
        model.train()
        devicebench.synchronize(device)
        start, cpu, seen = time.perf_counter(), time.process_time(), 0
        for x, y in loader:
            _reference_step(model, opt, x, y, device)
            seen += len(x)
        devicebench.synchronize(device)
    return seen / (time.perf_counter() - start), seen / (time.process_time() - cpu)


def flops_per_image(images: torch.Tensor, targets: torch.Tensor, arch: str, device: torch.device) -> float:
    """Training FLOPs per image (forward and backward) of one reference step at batch 32, by ``FlopCounterMode``."""
    model, opt = _reference_model(arch, 0, device)
    return devicebench.count_flops(lambda: _reference_step(model, opt, images[:BATCH], targets[:BATCH], device)) / BATCH


def ctqc_round(images: torch.Tensor, targets: torch.Tensor, arch: str, seed: int, precision: str, device: torch.device) -> tuple[float, float]:
    """``fit_classifier`` on the same model and data for 2 epochs; (images per wall second, per CPU second) of the second.

    The CPU-time figure spans epoch 2's training and its 8-image validation pass (a slight handicap).
    """
    cfg = ClassifierConfig(arch=arch, stem="paper", max_epochs=2, patience=2, precision=precision)
    cpu = []
    fit = fit_classifier(images, targets, images[:8], targets[:8], cfg, n_classes=2, seed=seed, device=str(device), on_epoch=lambda r: cpu.append(time.process_time()))
    last = fit.history[-1]
    return last["train_images"] / last["train_seconds"], last["train_images"] / (cpu[1] - cpu[0])


def _worker(args) -> float:
    arch, precision, rounds = args
    torch.set_num_threads(1)
    images, targets = _data()
    return max(ctqc_round(images, targets, arch, r, precision, torch.device("cpu"))[0] for r in range(rounds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    devicebench.add_device_argument(parser)
    parser.add_argument("--rounds", type=int, default=5, help="alternating rounds (2 epochs of 144 images per contender each)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads for both (default: torch's own)")
    parser.add_argument("--arch", default="resnet50", choices=["resnet50", "resnet18"])
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    parser.add_argument("--jobs-layout", action="store_true", help="also time ctqc compare's layout: one 1-thread training per core")
    args = parser.parse_args()
    device = devicebench.device_from_args(args.device)
    if args.jobs_layout and device.type != "cpu":
        parser.exit(2, "--jobs-layout times ctqc compare's CPU layout (one 1-thread process per core); use it with --device cpu\n")
    if args.threads:
        torch.set_num_threads(args.threads)
    images, targets = _data()
    cores = len(os.sched_getaffinity(0))
    print(f"machine: {platform.processor() or platform.machine()}, {cores} cores, torch {torch.__version__}, threads {torch.get_num_threads()}; device {devicebench.describe(device)}")
    print(f"ctqc precision: {args.precision} → {'bf16' if use_bf16(args.precision, device) else 'fp32'}; {args.arch} (paper stem), 32×32, batch {BATCH}")
    rate = devicebench.matrix_rates(device)
    print(devicebench.rates_line(device, rate))
    flops = flops_per_image(images, targets, args.arch, device)
    print(f"training FLOPs per image (reference step): {flops / 1e9:.2f} G", flush=True)
    ref, ours = [], []
    for r in range(args.rounds):
        ref.append(reference_round(images, targets, args.arch, r, device))
        ours.append(ctqc_round(images, targets, args.arch, r, args.precision, device))
        print(f"  round {r + 1}: reference {ref[-1][0]:.1f} img/s ({ref[-1][1]:.1f} per CPU-s), ctqc {ours[-1][0]:.1f} img/s ({ours[-1][1]:.1f} per CPU-s)", flush=True)
    ref_rate, our_rate = max(r[0] for r in ref), max(r[0] for r in ours)
    ref_cpu, our_cpu = max(r[1] for r in ref), max(r[1] for r in ours)
    ratios = sorted(o[0] / r[0] for o, r in zip(ours, ref))
    print(f"load average at the end: {os.getloadavg()[0]:.2f} (other processes share these {cores} cores)")
    print(f"reference loop (DataLoader, fp32, NCHW): {ref_rate:.1f} img/s, {ref_cpu:.1f} img per CPU-second (best of {args.rounds}); {devicebench.share(ref_rate * flops, rate)}")
    print(f"ctqc trainer: {our_rate:.1f} img/s, {our_cpu:.1f} img per CPU-second (best of {args.rounds}); {devicebench.share(our_rate * flops, rate)}")
    print(f"per-round ratios (ctqc / reference): {', '.join(f'{x:.2f}' for x in ratios)}; best-of ratio {our_rate / ref_rate:.2f}x")
    if torch.get_num_threads() == 1:
        print(f"per CPU-second ratio (the least load-sensitive figure at 1 thread): {our_cpu / ref_cpu:.2f}x")
    if args.jobs_layout:
        with multiprocessing.get_context("spawn").Pool(cores) as pool:
            rates = pool.map(_worker, [(args.arch, args.precision, args.rounds)] * cores)
        print(f"ctqc compare layout ({cores} processes × 1 thread): {sum(rates):.1f} img/s in all ({' + '.join(f'{r:.1f}' for r in rates)}), {sum(rates) / ref_rate:.2f}x the reference")
    print(f"classifier throughput ratio (ctqc trainer / reference, {device.type}, {args.arch} 32×32, batch {BATCH}, median of per-round ratios): {statistics.median(ratios):.2f}x")


if __name__ == "__main__":
    main()
