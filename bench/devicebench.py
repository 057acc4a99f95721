"""What the device-aware benchmarks share: ``--device``, timing that waits for the device, the matrix rate, FLOPs per step.

The benchmark scripts import it as a sibling module (``python bench/<script>.py``
puts ``bench/`` on the path). Each script times ctqc and a plain reference on the
same device in one run; this module adds the yardstick both are measured
against: the device's achieved rate on one large bf16 matrix product (the
"matrix rate"), and each contender's achieved FLOP/s (FLOPs counted by
``torch.utils.flop_counter.FlopCounterMode``: matrix products and convolutions,
forward and backward) as a share of it.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from ctqc.device import configure, resolve_device

DEVICES = ("auto", "cpu", "cuda")
MATRIX_SIZE = {"cuda": 4096, "cpu": 1024}  # side of the square product; the CPU's is kept to ~0.1-1 s per product


def add_device_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", choices=DEVICES, help="where both contenders run (auto: CUDA when present, else the CPU)")


def device_from_args(name: str) -> torch.device:
    """The torch device for ``--device``, set up as ctqc's trainers set it up (``ctqc.device.configure``).

    Exits with status 2 and one line on stderr when CUDA is asked for and absent.
    """
    if name == "cuda" and not torch.cuda.is_available():
        print("--device cuda: no CUDA device is visible to torch on this machine; use --device cpu (or auto)", file=sys.stderr)
        sys.exit(2)
    device = resolve_device(name)
    device = device if device.type in ("cpu", "cuda") else torch.device("cpu")  # auto on a Mac: the benchmarks cover CPU and CUDA
    configure(device)
    return device


def synchronize(device: torch.device) -> None:
    """Wait until the device has finished its queued work (a no-op on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return f"cpu ({torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads)"


def matrix_rate(device: torch.device, dtype: torch.dtype = torch.bfloat16, size: int | None = None, seconds: float = 1.0) -> float:
    """Achieved FLOP/s of an n×n by n×n matrix product in ``dtype`` on ``device`` (2n³ FLOPs each; best of repeated timings).

    ``size`` defaults to 4096 on CUDA, 1024 on the CPU. Runs for about ``seconds``
    after one warm-up product.
    """
    n = size or MATRIX_SIZE[device.type]
    gen = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(n, n, device=device, generator=gen).to(dtype)
    b = torch.randn(n, n, device=device, generator=gen).to(dtype)
    torch.mm(a, b)
    synchronize(device)
    best, deadline = float("inf"), time.perf_counter() + seconds
    repeats = 10 if device.type == "cuda" else 1
    while True:
        start = time.perf_counter()
        for _ in range(repeats):
            torch.mm(a, b)
        synchronize(device)
        best = min(best, (time.perf_counter() - start) / repeats)
        if time.perf_counter() > deadline:
            break
    return 2 * n**3 / best


def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs that ``fn()`` runs in matrix products and convolutions (forward and backward), by ``FlopCounterMode``."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def matrix_rates(device: torch.device) -> dict[str, float]:
    """The matrix rates the shares are taken of: bf16 (the yardstick), and fp32 beside it on the CPU.

    A CPU without native bf16 (no AVX-512 BF16 / AMX) emulates it far below its fp32
    rate, and ctqc's CPU contenders then run fp32: their share of the fp32 rate is the
    telling one there.
    """
    rates = {"bf16": matrix_rate(device, torch.bfloat16)}
    if device.type == "cpu":
        rates["fp32"] = matrix_rate(device, torch.float32)
    return rates


def rates_line(device: torch.device, rates: dict[str, float]) -> str:
    """'matrix rate: 1024×1024 bf16 product 0.5 GFLOP/s (fp32: 28.3 GFLOP/s)'."""
    n = MATRIX_SIZE[device.type]
    extra = "".join(f" ({kind}: {rate / 1e9:,.1f} GFLOP/s)" for kind, rate in rates.items() if kind != "bf16")
    return f"matrix rate: {n}×{n} bf16 product {rates['bf16'] / 1e9:,.1f} GFLOP/s{extra}"


def share(flops_per_second: float, rates: dict[str, float]) -> str:
    """'12.3 GFLOP/s = 2460 % of the bf16 matrix rate, 43.5 % of the fp32 one'."""
    parts = [f"{flops_per_second / rate:.1%} of the {kind} matrix rate" for kind, rate in rates.items()]
    return f"{flops_per_second / 1e9:,.1f} GFLOP/s = " + ", ".join(parts)
