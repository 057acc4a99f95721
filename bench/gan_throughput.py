"""GAN training throughput: a plain reference loop vs ctqc's trainer, side by side in one run.

Both train the paper's DCGAN (G 4,870,785 / D 576,129 parameters) at batch 16
on 144 phantom images at 32×32 with the same loss (non-saturating BCE, no
augmentation, no penalties), so they do the same math up to precision.

- reference: the pytorch/examples DCGAN loop — DataLoader over a TensorDataset,
  fp32, one fake batch per step, D's weight gradients computed in the G step;
- ctqc: ``gan.trainer.train_gan`` — data resident as one tensor, bf16 autocast
  where the CPU has it, channels_last, D frozen during the G step, EMA kept.

Prints img/s for both and the ratio (last line). Usage:
    python bench/gan_throughput.py [--steps 45] [--precision auto|fp32|bf16]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
import time

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from ctqc.config import DataConfig, GanConfig, PhantomConfig
from ctqc.data import load_dataset
from ctqc.device import use_bf16
from gan.networks import PaperDiscriminator, PaperGenerator
from gan.trainer import train_gan

BATCH = 16


def reference_loop(images: torch.Tensor, steps: int, warmup: int) -> float:
    """pytorch/examples-style DCGAN training; returns images per second after warm-up."""
    torch.manual_seed(0)
    G, D = PaperGenerator(), PaperDiscriminator()
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    loader = DataLoader(TensorDataset(images), batch_size=BATCH, shuffle=True, drop_last=True)
    done, start = 0, None
    while done < steps + warmup:
        for (real,) in loader:
            if done == warmup:
                start = time.perf_counter()
            z = torch.randn(BATCH, 100)
            fake = G(z)
            d_real, d_fake = D(real), D(fake.detach())
            loss_d = F.binary_cross_entropy_with_logits(d_real, torch.ones_like(d_real)) + F.binary_cross_entropy_with_logits(d_fake, torch.zeros_like(d_fake))
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
            out = D(fake)
            loss_g = F.binary_cross_entropy_with_logits(out, torch.ones_like(out))
            opt_g.zero_grad()
            loss_g.backward()
            opt_g.step()
            done += 1
            if done == steps + warmup:
                break
    return steps * BATCH / (time.perf_counter() - start)


def ctqc_trainer(images: torch.Tensor, steps: int, warmup: int, precision: str) -> float:
    """ctqc's trainer on the same model and loss; returns images per second after warm-up."""
    steps_per_epoch = len(images) // BATCH
    cfg = GanConfig(
        architecture="paper", batch_size=BATCH, diffaugment="", precision=precision, epochs=10_000,
        log_every=10_000, grid_every=10_000, quality_every=10_000, checkpoint_every=10_000,
    )  # fmt: skip
    warm_epochs = max(1, -(-warmup // steps_per_epoch))
    timed_epochs = max(1, round(steps / steps_per_epoch))
    with tempfile.TemporaryDirectory() as tmp:
        train_gan(images, cfg, tmp, seed=0, until_epoch=warm_epochs)  # warm-up (and one checkpoint)
        start = time.perf_counter()
        train_gan(images, cfg, tmp, seed=0, until_epoch=warm_epochs + timed_epochs)
        elapsed = time.perf_counter() - start
    return timed_epochs * steps_per_epoch * BATCH / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=45, help="timed steps per contender (after warm-up)")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16"])
    args = parser.parse_args()
    data = load_dataset(DataConfig(phantom=PhantomConfig(n_per_class=72)))  # 144 training-sized images
    images = data.images
    print(f"machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"ctqc precision: {args.precision} → {'bf16' if use_bf16(args.precision, torch.device('cpu')) else 'fp32'}")
    ref = reference_loop(images, args.steps, args.warmup)
    print(f"reference loop (DataLoader, fp32): {ref:.1f} img/s")
    ours = ctqc_trainer(images, args.steps, args.warmup, args.precision)
    print(f"ctqc trainer: {ours:.1f} img/s")
    print(f"GAN throughput ratio (ctqc / reference, paper DCGAN, batch {BATCH}): {ours / ref:.2f}x")


if __name__ == "__main__":
    main()
