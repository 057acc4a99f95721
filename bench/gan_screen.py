"""Screen a GAN setting on one class: ctqc's trainer, the frozen C2ST at several late epochs.

Trains the GAN of one class of fold 0 (``ctqc.stages.train.gan_units``: the unit's
training images, validation images and seed, exactly as ``ctqc train`` would) with
``gan.trainer.train_gan`` in chunks (``until_epoch``; bit-identical to one go), and at
each epoch of ``--evals`` draws 100 images from the EMA generator and from the raw one
as ``ctqc generate`` draws the pool (8-bit), and prints the out-of-fold AUC of the
frozen C2ST (:func:`gan_quality.frozen_auc`) against the class's training images,
its validation images, and the training images on each feature group alone. The late
trajectory moves by about ±0.03 from one scored epoch to the next, so a change counts
only when the whole trajectory moves (bench/RESULTS.md, "GAN quality").

``--lr-decay F`` (screen only, not a ctqc setting) decays both Adams' learning rate
linearly to 0 over the last fraction F of the steps. ``--z-scale S`` samples the scored
images with the pool's latent draws times S (z ~ N(0, S² I); training is unchanged).

    python bench/gan_screen.py --seed 1 --cls 1 --evals 200,225,250 [--set gan.r1_gamma=0.1] [--lr-decay 0.5]

Each line: setting, epoch, generator, AUC vs train / vs val / per group, and the train
seconds so far (one process; run with ``OMP_NUM_THREADS=1`` as bench/RESULTS.md did).
"""

from __future__ import annotations

import argparse
import tempfile

import torch
from gan_quality import C2ST_FEATURES, frozen_auc


def main(label: str = "") -> None:
    """Parse the command line and screen; ``label`` prefixes the setting column (bench/gan_variants.py passes its variant)."""
    from ctqc.config import load_config
    from ctqc.data import load_dataset
    from ctqc.seeds import unit_seed
    from ctqc.splits import Splits
    from ctqc.stages.train import gan_units
    from gan import trainer
    from gan.networks import build_generator
    from gan.sampling import sample_pixels

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="default")
    parser.add_argument("--seed", type=int, default=0, help="the run's seed (as --set seed=...)")
    parser.add_argument("--cls", type=int, default=1, help="class key (default preset: 0 normal, 1 haemorrhage)")
    parser.add_argument("--evals", default="200,225,250", help="epochs at which to score, ascending")
    parser.add_argument("--set", action="append", default=[], dest="overrides")
    parser.add_argument("--lr-decay", type=float, default=0.0, help="decay the learning rate linearly to 0 over this last fraction of the steps")
    parser.add_argument("--z-scale", type=float, default=1.0, help="multiply the scored samples' latent draws by this (training unchanged)")
    args = parser.parse_args()
    cfg = load_config(args.config, [f"seed={args.seed}", *args.overrides])
    data = load_dataset(cfg.data)
    dev = Splits.make(data, cfg.split, cfg.split_seed).development(data, 0)
    unit = next(u for u in gan_units(cfg, dev) if u.class_key == args.cls)
    if args.lr_decay:
        _decay_learning_rate(trainer, cfg.gan, cfg.gan.epochs * (len(unit.images) // cfg.gan.batch_size), args.lr_decay)

    def aucs(G: torch.nn.Module) -> list[float]:
        seed = unit_seed(cfg.seed, 0, args.cls) ^ 0x5EED
        sampler = G if args.z_scale == 1.0 else ScaledLatent(G, args.z_scale)
        synthetic = (sample_pixels(sampler.eval(), 100, seed).float() / 127.5 - 1)[:, None]
        pairs = ((unit.images, C2ST_FEATURES), (unit.val_images, C2ST_FEATURES), *((unit.images, [g]) for g in C2ST_FEATURES))
        return [frozen_auc(reference, synthetic, groups) for reference, groups in pairs]

    label = " ".join([label, *args.overrides, f"lr-decay={args.lr_decay}" if args.lr_decay else "", f"z-scale={args.z_scale}" if args.z_scale != 1.0 else ""]).strip() or "default"
    print(f"{'setting':<28} {'epoch':>5} {'G':<4} {'train':>6} {'val':>6} " + " ".join(f"{g:>9}" for g in C2ST_FEATURES) + "  train s")
    seconds = 0.0
    with tempfile.TemporaryDirectory() as out:
        for epoch in sorted(int(e) for e in args.evals.split(",")):
            seconds += trainer.train_gan(unit.images, cfg.gan, out, val_images=unit.val_images, seed=unit.seed, device="cpu", resume=True, until_epoch=epoch).seconds
            state = trainer.load_checkpoint(f"{out}/checkpoints/last.pt")
            meta = state["meta"]
            G = build_generator(meta["architecture"], z_dim=meta["z_dim"], n_classes=0, image_size=meta["image_size"], width=meta["width"])
            for name, weights in (("ema", state["G_ema"]), ("raw", state["G"])):
                G.load_state_dict(weights)
                row = aucs(G)
                print(f"{label:<28} {epoch:>5} {name:<4} {row[0]:6.3f} {row[1]:6.3f} " + " ".join(f"{v:9.3f}" for v in row[2:]) + f"  {seconds:7.1f}", flush=True)


class ScaledLatent(torch.nn.Module):
    """``G`` sampled with its latent times ``scale``: forward(z, y) = G(scale · z, y); ``z_dim`` and ``image_size`` as G's."""

    def __init__(self, G: torch.nn.Module, scale: float) -> None:
        super().__init__()
        self.G, self.scale, self.z_dim, self.image_size = G, scale, G.z_dim, G.image_size

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        return self.G(z * self.scale, y)


def _decay_learning_rate(trainer, gan_cfg, total_steps: int, fraction: float) -> None:
    """Make the trainer's Adams decay lr linearly to 0 over the last ``fraction`` of ``total_steps`` (from each optimiser's own step count)."""

    class DecayingAdam(torch.optim.Adam):
        def step(self, closure=None):
            state = self.state[self.param_groups[0]["params"][0]]
            done = int(state["step"]) if state else 0
            scale = min(1.0, max(0.0, (1 - done / total_steps) / fraction))
            for group in self.param_groups:
                group["lr"] = gan_cfg.lr * scale
            return super().step(closure)

    trainer.adam = lambda params, cfg: DecayingAdam(list(params), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2), foreach=True)


if __name__ == "__main__":
    main()
