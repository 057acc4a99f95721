"""GAN training throughput: a plain PyTorch loop vs ctqc's trainer, on one device, side by side in one run.

Two workloads, each trained by both contenders with the same models and loss:

- ``paper``: the paper's DCGAN (G 4,870,785 / D 576,129 parameters), one GAN
  on 144 phantom images at 32×32, batch 16, non-saturating BCE, no augmentation;
- ``default``: the default preset's per-class GANs (``configs/default.yaml``'s
  ``gan:`` section, read at run time: since 2026-11-30 the resize-convolution G
  ``upsample``, DiffAugment, EMA; the 1.21× in bench/RESULTS.md was the strided G), one per class on 72
  phantom images each, trained one after the other.

Contenders:

- reference: a plain PyTorch loop (pytorch/examples' DCGAN) — DataLoader over a
  TensorDataset, fp32, NCHW, eager; one fake batch per step, D's weight
  gradients computed in the G step; the same losses, DiffAugment and EMA
  (a per-parameter update) as ctqc uses;
- ctqc: ``gan.trainer.train_gan`` — data resident on the device, bf16 autocast
  where the hardware has it, channels_last, D frozen during the G step.

Each contender warms up (``--warmup`` steps per GAN, untimed), then trains
``--steps`` timed steps per GAN (ctqc: whole epochs, in a second
``train_gan`` call that resumes the first: its checkpoint load and save are
timed). The contenders alternate over ``--rounds`` rounds (reference first in
odd rounds, ctqc first in even ones); reported: each one's best round and the
median of the per-round ratios. The same run times the device's bf16 matrix
rate (``bench/devicebench.py``) and prints each contender's achieved FLOP/s
(FLOPs per step counted by ``FlopCounterMode``) as a share of it.
The last line is the summary with the ratios. Usage:
    python bench/gan_throughput.py [--device auto|cpu|cuda] [--workloads paper,default]
                                   [--steps 45] [--rounds 2] [--precision auto|fp32|bf16]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import devicebench
import torch
from torch.utils.data import DataLoader, TensorDataset

from ctqc.config import DataConfig, GanConfig, PhantomConfig, load_config
from ctqc.data import load_dataset
from ctqc.device import use_bf16
from gan import losses
from gan.augment import diff_augment, parse_policy
from gan.networks import build_discriminator, build_generator
from gan.trainer import train_gan

QUIET = dict(log_every=10_000, grid_every=10_000, quality_every=10_000, checkpoint_every=10_000, epochs=10_000)  # no periodic side work in the timed span


@dataclass(frozen=True)
class Workload:
    name: str
    cfg: GanConfig
    sets: list[torch.Tensor]  # the training images of each GAN (N×1×32×32 in [-1, 1]), trained one after the other

    def describe(self) -> str:
        c = self.cfg
        aug = f"DiffAugment {c.diffaugment}" if c.diffaugment else "no augmentation"
        model = "paper DCGAN" if c.architecture == "paper" else f"{c.architecture} DCGAN (width {c.width})"
        return f"{self.name}: {len(self.sets)} × {model} on {'/'.join(str(len(s)) for s in self.sets)} images, batch {c.batch_size}, {c.loss}, {aug}, EMA {c.ema_decay}"


def workloads(names: list[str]) -> list[Workload]:
    data = load_dataset(DataConfig(phantom=PhantomConfig(n_per_class=72)))  # 144 images: the paper's training split
    images, targets = data.images, torch.from_numpy(data.targets)
    out = []
    for name in names:
        if name == "paper":
            out.append(Workload(name, GanConfig(architecture="paper", batch_size=16, diffaugment="", **QUIET), [images]))
        elif name == "default":
            preset = load_config("default").gan.model_dump()
            cfg = GanConfig(**{**preset, **QUIET, "precision": "auto"})
            out.append(Workload(name, cfg, [images[targets == k] for k in targets.unique().tolist()]))
    return out


class ReferenceGAN:
    """One GAN trained by the plain loop: fp32, NCHW, eager, DataLoader; the workload's losses, DiffAugment and EMA."""

    def __init__(self, cfg: GanConfig, images: torch.Tensor, device: torch.device, seed: int = 0) -> None:
        if cfg.n_critic != 1 or cfg.loss == "wgan-gp":
            raise SystemExit(f"the reference loop covers n_critic = 1 and the bce/hinge losses, not {cfg.loss} with n_critic {cfg.n_critic}")
        torch.manual_seed(seed)
        self.cfg, self.device = cfg, device
        size = images.shape[-1]
        self.G = build_generator(cfg.architecture, z_dim=cfg.z_dim, n_classes=0, image_size=size, width=cfg.width).to(device)
        self.D = build_discriminator(cfg.architecture, n_classes=0, image_size=size, width=cfg.width, dropout=cfg.d_dropout).to(device)
        self.G_ema = None
        if cfg.ema_decay > 0:
            self.G_ema = build_generator(cfg.architecture, z_dim=cfg.z_dim, n_classes=0, image_size=size, width=cfg.width).to(device)
            self.G_ema.load_state_dict(self.G.state_dict())
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
        self.loader = DataLoader(TensorDataset(images), batch_size=cfg.batch_size, shuffle=True, drop_last=True)
        self.policy = parse_policy(cfg.diffaugment)
        self.rng = torch.Generator(device=device).manual_seed(seed)
        self.steps = 0

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        x = diff_augment(x, self.policy, self.rng) if self.policy else x
        return x + self.cfg.instance_noise * torch.randn(x.shape, device=x.device, generator=self.rng) if self.cfg.instance_noise > 0 else x

    def step(self, real: torch.Tensor) -> None:
        cfg, G, D = self.cfg, self.G, self.D
        real = real.to(self.device)
        fake = G(torch.randn(len(real), cfg.z_dim, device=self.device))
        real_in = self.augment(real).requires_grad_(cfg.r1_gamma > 0)
        d_real, d_fake = D(real_in), D(self.augment(fake.detach()))
        loss_d = losses.d_loss(cfg.loss, d_real, d_fake, smoothing=cfg.label_smoothing, flip=cfg.label_flip, generator=self.rng)
        if cfg.r1_gamma > 0:
            loss_d = loss_d + cfg.r1_gamma / 2 * losses.r1_penalty(d_real, real_in)
        self.opt_d.zero_grad()
        loss_d.backward()
        self.opt_d.step()
        loss_g = losses.g_loss(cfg.loss, D(self.augment(fake)))
        self.opt_g.zero_grad()
        loss_g.backward()
        self.opt_g.step()
        if self.G_ema is not None:
            decay = min(cfg.ema_decay, (1 + self.steps) / (10 + self.steps))
            with torch.no_grad():
                for p_ema, p in zip(self.G_ema.parameters(), G.parameters()):
                    p_ema.mul_(decay).add_(p, alpha=1 - decay)
                for b_ema, b in zip(self.G_ema.buffers(), G.buffers()):
                    b_ema.copy_(b)
        self.steps += 1

    def train(self, steps: int) -> None:
        while True:
            for (real,) in self.loader:
                if steps == 0:
                    return
                self.step(real)
                steps -= 1


def reference_seconds(work: Workload, steps: int, warmup: int, device: torch.device) -> tuple[float, int]:
    """(timed seconds, timed steps) of the plain loop over the workload's GANs, one after the other."""
    total = 0.0
    for images in work.sets:
        gan = ReferenceGAN(work.cfg, images, device)
        gan.train(warmup)
        devicebench.synchronize(device)
        start = time.perf_counter()
        gan.train(steps)
        devicebench.synchronize(device)
        total += time.perf_counter() - start
    return total, steps * len(work.sets)


def _epochs(images: torch.Tensor, cfg: GanConfig, steps: int) -> tuple[int, int]:
    per_epoch = max(1, len(images) // cfg.batch_size)
    return max(1, round(steps / per_epoch)), per_epoch


def ctqc_seconds(work: Workload, steps: int, warmup: int, device: torch.device) -> tuple[float, int]:
    """(timed seconds, timed steps) of ``train_gan`` over the workload's GANs: warm-up epochs, then the timed ones (resumed)."""
    total, done = 0.0, 0
    for images in work.sets:
        timed, per_epoch = _epochs(images, work.cfg, steps)
        warm = max(1, -(-warmup // per_epoch))
        with tempfile.TemporaryDirectory() as tmp:
            train_gan(images, work.cfg, tmp, seed=0, device=str(device), until_epoch=warm)
            start = time.perf_counter()
            train_gan(images, work.cfg, tmp, seed=0, device=str(device), until_epoch=warm + timed)  # ends by saving: synchronised
            total += time.perf_counter() - start
        done += timed * per_epoch
    return total, done


def reference_flops(work: Workload, device: torch.device) -> int:
    """FLOPs of one plain-loop step (matrix products and convolutions, forward and backward)."""
    gan = ReferenceGAN(work.cfg, work.sets[0], device)
    real = work.sets[0][: work.cfg.batch_size]
    return devicebench.count_flops(lambda: gan.step(real))


def ctqc_flops(work: Workload, device: torch.device) -> int:
    """FLOPs of one ``train_gan`` step: a 2-step training minus a 1-step one on a one-batch set."""
    one = work.sets[0][: work.cfg.batch_size]
    with tempfile.TemporaryDirectory() as tmp:
        counts = [devicebench.count_flops(lambda k=k: train_gan(one, work.cfg, Path(tmp) / str(k), device=str(device), until_epoch=k)) for k in (1, 2)]
    return counts[1] - counts[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    devicebench.add_device_argument(parser)
    parser.add_argument("--workloads", default="paper,default", help="comma-separated: paper, default (default: both)")
    parser.add_argument("--steps", type=int, default=45, help="timed steps per GAN and contender in each round (ctqc: rounded to whole epochs)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per GAN first")
    parser.add_argument("--rounds", type=int, default=2, help="alternating rounds")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"], help="ctqc's precision (the reference is fp32)")
    args = parser.parse_args()
    names = [w.strip() for w in args.workloads.split(",") if w.strip()]
    if not names or any(w not in ("paper", "default") for w in names):
        parser.exit(2, f"--workloads: choose from paper, default (got {args.workloads!r})\n")
    device = devicebench.device_from_args(args.device)
    print(f"machine: {platform.processor() or platform.machine()}, {len(os.sched_getaffinity(0))} cores, torch {torch.__version__}; device {devicebench.describe(device)}")
    print(f"ctqc precision: {args.precision} → {'bf16' if use_bf16(args.precision, device) else 'fp32'}; reference: fp32")
    rate = devicebench.matrix_rates(device)
    print(devicebench.rates_line(device, rate), flush=True)
    summary = []
    for work in workloads(names):
        work = Workload(work.name, work.cfg.model_copy(update={"precision": args.precision}), work.sets)
        print(work.describe(), flush=True)
        flops = {"reference": reference_flops(work, device), "ctqc": ctqc_flops(work, device)}
        print(f"  FLOPs per step: reference {flops['reference'] / 1e9:.2f} G, ctqc {flops['ctqc'] / 1e9:.2f} G (ctqc skips D's weight gradients in the G step)")
        runs: dict[str, list[float]] = {"reference": [], "ctqc": []}  # steps per second
        for r in range(args.rounds):
            order = ("reference", "ctqc") if r % 2 == 0 else ("ctqc", "reference")
            for who in order:
                seconds, steps = (reference_seconds if who == "reference" else ctqc_seconds)(work, args.steps, args.warmup, device)
                runs[who].append(steps / seconds)
            b = work.cfg.batch_size
            print(f"  round {r + 1}: reference {runs['reference'][-1] * b:.1f} img/s, ctqc {runs['ctqc'][-1] * b:.1f} img/s", flush=True)
        ratios = [o / p for o, p in zip(runs["ctqc"], runs["reference"])]
        for who in ("reference", "ctqc"):
            best = max(runs[who])
            print(f"  {who}: {best * work.cfg.batch_size:.1f} img/s (best of {args.rounds}), {devicebench.share(best * flops[who], rate)}")
        summary.append(f"{work.name} {statistics.median(ratios):.2f}x")
        print(f"  per-round ratios (ctqc / reference): {', '.join(f'{x:.2f}' for x in ratios)}", flush=True)
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")
    print(f"GAN throughput ratio (ctqc / reference, {device.type}, median of {args.rounds} rounds): {', '.join(summary)}")


if __name__ == "__main__":
    main()
