"""The members of a group of GANs trained together (:mod:`gan.batched`): per-model state, packing, Adam stacking, RNG scoping."""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from gan.config import GanConfig
from gan.grouped import GroupedDiscriminator, GroupedGenerator
from gan.monitor import QualityMonitor
from gan.networks import build_discriminator, build_generator
from gan.optim import adam
from gan.trainer import (
    CHECKPOINT_FORMAT,
    TrainResult,
    _load_state,
    _save_generator,
    _save_state,
    _truncate_stats,
)


@dataclass(frozen=True)
class GanJob:
    """One GAN to train in a group: what :func:`gan.trainer.train_gan` takes for it.

    ``images``: N×1×S×S in [-1, 1]; ``labels`` / ``n_classes`` ≥ 2 for a conditional
    GAN; ``val_images`` feed the quality signal only; ``description`` is stored in
    the checkpoints.
    """

    images: torch.Tensor
    out_dir: Path
    labels: torch.Tensor | None = None
    n_classes: int = 0
    val_images: torch.Tensor | None = None
    seed: int = 0
    description: dict | None = None
    progress_label: str | None = None


@contextlib.contextmanager
def _as_global_rng(gen: torch.Generator, dev: torch.device) -> Iterator[None]:
    """Inside: the global RNG of ``dev`` holds ``gen``'s state (as ``train_gan``'s dropout stream); after: ``gen`` holds the global state, which is restored."""
    cuda = dev.type == "cuda"
    with torch.random.fork_rng(devices=[dev] if cuda else []):
        (torch.cuda.set_rng_state if cuda else torch.set_rng_state)(gen.get_state(), *([dev] if cuda else []))
        yield
        gen.set_state(torch.cuda.get_rng_state(dev) if cuda else torch.get_rng_state())


class _Member:
    """One GAN of a group: its data, streams, epoch counter and per-model copies of its networks.

    The per-model networks and optimisers (on the CPU) hold the model's state
    whenever it is not packed in a group: at the start, at checkpoints and at the end.
    """

    def __init__(self, job: GanJob, cfg: GanConfig, dev: torch.device, resume: bool, until_epoch: int | None) -> None:
        self.job, self.dev = job, dev
        self.out_dir = Path(job.out_dir)
        self.last_path, self.stats_path = self.out_dir / "checkpoints" / "last.pt", self.out_dir / "stats.jsonl"
        self.label = job.progress_label or self.out_dir.name
        conditional = job.n_classes >= 2
        if conditional and job.labels is None:
            raise ValueError("a conditional GAN needs labels")
        n_classes = job.n_classes if conditional else 0
        self.n, image_size = job.images.shape[0], job.images.shape[-1]
        self.batch = min(cfg.batch_size, self.n)
        self.steps_per_epoch = max(1, self.n // self.batch)
        self.last_epoch = cfg.epochs if until_epoch is None else min(until_epoch, cfg.epochs)
        seed = job.seed
        with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
            torch.manual_seed(seed)  # weight init, then the dropout stream: as train_gan
            self.G = build_generator(cfg.architecture, z_dim=cfg.z_dim, n_classes=n_classes, image_size=image_size, width=cfg.width)
            self.D = build_discriminator(cfg.architecture, n_classes=n_classes, image_size=image_size, width=cfg.width, dropout=cfg.d_dropout)
            self.drop_rng = torch.Generator(device=dev)
            self.drop_rng.set_state(torch.cuda.get_rng_state(dev) if dev.type == "cuda" else torch.get_rng_state())
        self.G_ema = copy.deepcopy(self.G).eval().requires_grad_(False) if cfg.ema_decay > 0 else None
        self.opt_g, self.opt_d = adam(self.G.parameters(), cfg), adam(self.D.parameters(), cfg)
        self.rng = torch.Generator(device=dev).manual_seed(seed)
        self.perm_rng = torch.Generator().manual_seed(seed)
        self.meta = {
            "format": CHECKPOINT_FORMAT,
            "architecture": cfg.architecture,
            "z_dim": cfg.z_dim,
            "width": cfg.width,
            "image_size": int(image_size),
            "n_classes": n_classes,
            "seed": seed,
            "config": cfg.model_dump(mode="json"),
            "description": job.description or {},
        }
        self.epoch = self.step = 0
        if resume and self.last_path.is_file():
            with _as_global_rng(self.drop_rng, dev):
                self.epoch, self.step = _load_state(self.last_path, self.G, self.D, self.G_ema, self.opt_g, self.opt_d, self.rng, self.perm_rng)
            _truncate_stats(self.stats_path, self.step)
        elif self.stats_path.exists():
            self.stats_path.unlink()  # a fresh start: no stale lines from an earlier attempt
        self.start_step = self.step
        self.pos = 0  # step within the epoch (checkpoints are at epoch ends)
        self.perm: torch.Tensor | None = None
        self.sigma = 0.0
        fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.data = job.images.to(dev).contiguous(memory_format=fmt)
        self.y_all = job.labels.to(dev) if conditional else None
        self.fixed_z = torch.randn(64, cfg.z_dim, generator=torch.Generator().manual_seed(seed + 1)).to(dev)
        self.fixed_y = (torch.arange(64) % n_classes).to(dev) if conditional else None
        self.monitor = QualityMonitor(job.images, job.val_images, seed=seed, device=dev)
        self.last_losses: dict = {}
        self.task = None  # its progress-bar task
        self.result: TrainResult | None = None

    @property
    def done(self) -> bool:
        return self.epoch >= self.last_epoch

    def save(self) -> None:
        with _as_global_rng(self.drop_rng, self.dev):
            _save_state(self.last_path, self.G, self.D, self.G_ema, self.opt_g, self.opt_d, self.rng, self.perm_rng, self.epoch, self.step, self.meta)

    def finish(self, cfg: GanConfig, seconds: float) -> None:
        gen_path = self.out_dir / "checkpoints" / "generator.pt"
        if self.epoch >= cfg.epochs:
            _save_generator(gen_path, self.G_ema if self.G_ema is not None else self.G, self.meta, self.epoch, self.step)
        rate = (self.step - self.start_step) * self.batch / seconds if seconds > 0 else 0.0
        self.result = TrainResult(generator_path=gen_path, epochs=self.epoch, steps=self.step, seconds=seconds, images_per_second=rate)


# ------------------------------------------------------------------------- the group


class _Packed:
    """The grouped networks and optimisers of the members currently training together."""

    def __init__(self, members: list[_Member], cfg: GanConfig, dev: torch.device) -> None:
        k = len(members)
        fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.G = GroupedGenerator(k, members[0].G, fmt).to(dev)
        self.G.load_stacked([m.G.state_dict() for m in members])
        self.D = GroupedDiscriminator(k, members[0].D, fmt).to(dev)
        self.D.load_stacked([m.D.state_dict() for m in members])
        self.D.set_dropout_generators([m.drop_rng for m in members])
        self.G_ema = None
        if members[0].G_ema is not None:
            self.G_ema = GroupedGenerator(k, members[0].G_ema, fmt).to(dev)
            self.G_ema.load_stacked([m.G_ema.state_dict() for m in members])
            self.G_ema.eval().requires_grad_(False)
        self.opt_g, self.opt_d = adam(self.G.parameters(), cfg), adam(self.D.parameters(), cfg)
        for grouped, opt, per_model in ((self.G, self.opt_g, [(m.G, m.opt_g) for m in members]), (self.D, self.opt_d, [(m.D, m.opt_d) for m in members])):
            _stack_adam(grouped, opt, per_model)

    def unpack(self, k: int, m: _Member) -> None:
        """Copy model k's state into ``m``'s per-model networks and optimisers."""
        m.G.load_state_dict(self.G.unstacked(k))
        m.D.load_state_dict(self.D.unstacked(k))
        if self.G_ema is not None:
            m.G_ema.load_state_dict(self.G_ema.unstacked(k))
        for grouped, opt, module, m_opt in ((self.G, self.opt_g, m.G, m.opt_g), (self.D, self.opt_d, m.D, m.opt_d)):
            own = dict(module.named_parameters())
            for name, p in grouped.named_parameters():
                state = opt.state.get(p)
                if state:
                    m_opt.state[own[name]] = {key: value.clone() if key == "step" else value[k].detach().cpu().clone() for key, value in state.items()}


def _stack_adam(grouped: torch.nn.Module, opt: torch.optim.Optimizer, per_model: list[tuple[torch.nn.Module, torch.optim.Optimizer]]) -> None:
    """Set ``opt``'s state (over ``grouped``'s stacked parameters) from the per-model Adams' states."""
    owns = [dict(module.named_parameters()) for module, _ in per_model]
    for name, p in grouped.named_parameters():
        states = [m_opt.state.get(own[name]) for own, (_, m_opt) in zip(owns, per_model)]
        if not any(states):
            continue
        if not all(states) or any(not torch.equal(s["step"], states[0]["step"]) for s in states):
            raise RuntimeError(f"models at different optimiser steps cannot be grouped ({name})")
        # a fused or capturable (CUDA) Adam keeps ``step`` on the parameter's device, as its own load_state_dict would put it
        step_device = p.device if opt.defaults.get("fused") or opt.defaults.get("capturable") else states[0]["step"].device
        opt.state[p] = {key: states[0][key].clone().to(step_device) if key == "step" else torch.stack([s[key] for s in states]).to(p.device) for key in states[0]}
