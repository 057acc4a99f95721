"""Train K GANs of one architecture and config together (``gan.train_together``).

Why: the per-class (and per-fold) GANs are tiny — batch 8 or 16 of 32×32 images — so
on a GPU each step is bound by kernel launches, not arithmetic. Trained
together, K GANs make one step of K-fold width: the same number of kernels,
each K times larger.

Design: grouped layers (:mod:`gan.grouped`), not ``torch.func.vmap``. The K
generators (and the K discriminators) become one network whose convolutions run
with ``groups=K`` over K·C channels, whose linear layers are one batched matrix
product, and whose BatchNorm over K·C channels keeps per-model batch and running
statistics by construction. No layer mixes two models' channels, and the K
losses are summed before ``backward``, so model k's parameters get exactly the
gradient of its own loss; Adam is element-wise, so one ``torch.optim.Adam`` over
the stacked parameters is K independent Adams (a group's models share the step
count). ``vmap`` was not chosen because BatchNorm updates its running statistics
in place, which ``vmap`` allows only on buffers it batches itself (sampling needs
the statistics), and per-model dropout streams and R1's double backward would go
through ``vmap``'s randomness and higher-order rules; grouped layers use only
ordinary kernels (cuDNN / oneDNN grouped convolutions), autograd and optimisers.

Randomness: each model keeps the three streams of :func:`gan.trainer.train_gan`,
seeded the same way and drawn in the same order: its device generator (z,
DiffAugment, instance noise, label flips, WGAN-GP interpolation), its CPU
permutation generator, and its dropout stream (in ``train_gan`` the global RNG
after weight initialisation; here a generator of its own). So model k of a group
follows ``train_gan`` on the same unit: the same initial weights, permutations
and draws; the two differ only in floating-point summation order. Tested
(tests/test_gan_batched.py) in float64 on the CPU: after 12–16 steps every
weight, buffer and Adam moment agrees within 1e-7 and every RNG stream bit for
bit. In fp32, Adam turns the rounding noise of gradients that are zero in exact
arithmetic (a bias followed by BatchNorm) into updates of ±lr, so such weights
may differ by up to about 2·lr per step; over a long run the GAN's chaotic
dynamics let any difference grow, as any change of kernel does.

Batches: model k draws its own batch of ``min(batch_size, n_k)`` images from its
own permutation of its own images; an epoch is ``⌊n_k / batch⌋`` of its steps,
as in ``train_gan``. Models whose epochs differ in length keep their own epoch
counters: noise annealing, quality signal, grids and checkpoints happen at each
model's own epoch ends. A model that reaches its last epoch writes its files and
leaves the group; the others are re-packed (an exact copy) and continue.

Groups: models train together when they share the batch size and the step they
start from (the Adam step count and the ``n_critic`` phase must be equal). A
fresh run puts all units of equal batch size in one group; units resumed from
different steps form separate groups, and a group of one is trained by
``train_gan`` itself.

Outputs: every unit's directory gets exactly ``train_gan``'s files, written by
its helpers: ``checkpoints/last.pt`` (with each stream stored where ``train_gan``
stores it), ``checkpoints/generator.pt``, ``stats.jsonl`` and ``grids/``. So
``load_checkpoint``, :mod:`gan.sampling` and ``ctqc generate`` read them
unchanged, and a unit interrupted under one trainer resumes under either.

Not supported: torchrun (the train stage refuses the combination) and
architectures other than :data:`gan.grouped.GROUPED_ARCHITECTURES` (``UserError``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import torch

from ctqc.device import configure, resolve_device, use_bf16
from gan import losses
from gan.augment import diff_augment, parse_policy
from gan.batched_members import GanJob, _Member, _Packed
from gan.config import GanConfig
from gan.grouped import GROUPED_ARCHITECTURES, GroupedDiscriminator, unsupported
from gan.monitor import COLLAPSE_RATIO
from gan.optim import ema_decay, ema_update
from gan.trainer import (
    TrainingDiverged,
    TrainResult,
    _append_stats,
    _check_finite,
    _log_losses,
    _sample,
    load_checkpoint,
    save_grid,
    train_gan,
)


def check_groupable(cfg: GanConfig) -> None:
    """Raise :class:`UserError` (one line) when ``cfg.architecture`` cannot be trained together."""
    if cfg.architecture not in GROUPED_ARCHITECTURES:
        raise unsupported(repr(cfg.architecture))


def train_job(job: GanJob, cfg: GanConfig, *, device: str = "auto", resume: bool = True, until_epoch: int | None = None, progress: bool = False) -> TrainResult:
    """One job alone: :func:`gan.trainer.train_gan` with the job's arguments."""
    return train_gan(
        job.images, cfg, job.out_dir, labels=job.labels, n_classes=job.n_classes, val_images=job.val_images, seed=job.seed,
        device=device, resume=resume, until_epoch=until_epoch, progress=progress, description=job.description, progress_label=job.progress_label,
    )  # fmt: skip


def train_gans_together(
    jobs: Sequence[GanJob],
    cfg: GanConfig,
    *,
    device: str = "auto",
    resume: bool = True,
    until_epoch: int | None = None,
    progress: bool = False,
) -> list[TrainResult]:
    """Train every job's GAN, those that can share a step together; one result per job, in order.

    ``resume``, ``until_epoch`` and ``progress`` mean what they mean for
    :func:`gan.trainer.train_gan`. Raises :class:`UserError` for an architecture
    that cannot be grouped, :class:`gan.trainer.TrainingDiverged` (naming the unit)
    when one GAN diverges — the group stops; every unit keeps its last good checkpoint.
    """
    check_groupable(cfg)
    dev = resolve_device(device)
    configure(dev)
    groups: dict[tuple, list[int]] = {}
    for i, job in enumerate(jobs):
        groups.setdefault(_group_key(job, cfg, resume), []).append(i)
    results: list[TrainResult | None] = [None] * len(jobs)
    for indices in groups.values():
        if len(indices) == 1:  # nothing to share a step with: the per-GAN trainer itself
            results[indices[0]] = train_job(jobs[indices[0]], cfg, device=device, resume=resume, until_epoch=until_epoch, progress=progress)
            continue
        members = [_Member(jobs[i], cfg, dev, resume, until_epoch) for i in indices]
        _train_group(members, cfg, dev, progress)
        for i, member in zip(indices, members):
            results[i] = member.result
    return results  # type: ignore[return-value]


# ------------------------------------------------------------------------- one model's state


def _group_key(job: GanJob, cfg: GanConfig, resume: bool) -> tuple:
    """Models with equal keys can share a step: batch size, start step, image size, classes."""
    last = Path(job.out_dir) / "checkpoints" / "last.pt"
    step = int(load_checkpoint(last)["step"]) if resume and last.is_file() else 0
    conditional = job.n_classes >= 2
    return (min(cfg.batch_size, len(job.images)), step, int(job.images.shape[-1]), job.n_classes if conditional else 0)


def _train_group(members: list[_Member], cfg: GanConfig, dev: torch.device, progress: bool) -> None:
    policy = parse_policy(cfg.diffaugment)
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16) if use_bf16(cfg.precision, dev) else contextlib.nullcontext()
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    r1 = cfg.r1_gamma > 0 and cfg.loss != "wgan-gp"
    start_time = time.perf_counter()
    for m in [m for m in members if m.done]:  # nothing left to train (e.g. resumed at its last epoch)
        m.finish(cfg, 0.0)
    active = [m for m in members if not m.done]
    step = active[0].step if active else 0
    batch = active[0].batch if active else 0
    bar = _progress(progress, active, cfg.epochs)
    packed = _Packed(active, cfg, dev) if active else None
    sums = torch.zeros(len(active), 4, device=dev)  # per model: loss_d, loss_g, D(real), D(fake) since the last log line

    def augment(m: _Member, x: torch.Tensor) -> torch.Tensor:
        x = diff_augment(x, policy, m.rng) if policy else x
        return x + m.sigma * torch.randn(x.shape, device=dev, generator=m.rng) if m.sigma > 0 else x

    def augment_all(x: torch.Tensor) -> torch.Tensor:  # (B, K, S, S): model k's slice with its own draws
        return torch.cat([augment(m, x[:, k : k + 1]) for k, m in enumerate(active)], dim=1).contiguous(memory_format=fmt)

    with bar if bar is not None else contextlib.nullcontext():
        while active:
            G, D = packed.G, packed.D
            for m in active:
                if m.pos == 0:
                    m.perm = torch.randperm(m.n, generator=m.perm_rng).to(dev)
                    m.sigma = cfg.instance_noise * max(0.0, 1.0 - m.epoch / cfg.epochs)  # annealed instance noise
            idx = [m.perm[m.pos * batch : (m.pos + 1) * batch] for m in active]
            real = torch.cat([m.data[i] for m, i in zip(active, idx)], dim=1)
            y = torch.stack([m.y_all[i] for m, i in zip(active, idx)], dim=1) if active[0].y_all is not None else None

            g_step = (step + 1) % cfg.n_critic == 0
            z = torch.stack([torch.randn(batch, cfg.z_dim, device=dev, generator=m.rng) for m in active], dim=1)
            with autocast, torch.set_grad_enabled(g_step):
                fake = G(z, y)

            # --- discriminator step (the K losses summed: each model gets its own gradient)
            with autocast:
                real_in = augment_all(real).detach().requires_grad_(r1)
                d_real, d_fake = D(real_in, y), D(augment_all(fake.detach()), y)
                loss_d = torch.stack([
                    losses.d_loss(cfg.loss, d_real[:, k].float(), d_fake[:, k].float(), smoothing=cfg.label_smoothing, flip=cfg.label_flip, generator=m.rng)
                    for k, m in enumerate(active)
                ])  # fmt: skip
            if r1:
                (grad,) = torch.autograd.grad(d_real.sum(), real_in, create_graph=True)
                loss_d = loss_d + cfg.r1_gamma / 2 * grad.float().pow(2).flatten(2).sum(2).mean(0)  # per model E‖∇D(x)‖²
            if cfg.loss == "wgan-gp":
                with autocast:
                    loss_d = loss_d + cfg.gp_lambda * _gradient_penalty(D, real_in.detach(), augment_all(fake.detach()).detach(), y, active)
            packed.opt_d.zero_grad(set_to_none=True)
            loss_d.sum().backward()
            packed.opt_d.step()

            # --- generator step: D's weights are frozen
            if g_step:
                D.requires_grad_(False)
                with autocast:
                    out = D(augment_all(fake), y).float()
                    loss_g = torch.stack([losses.g_loss(cfg.loss, out[:, k]) for k in range(len(active))])
                packed.opt_g.zero_grad(set_to_none=True)
                loss_g.sum().backward()
                packed.opt_g.step()
                D.requires_grad_(True)
                if packed.G_ema is not None:
                    ema_update(packed.G_ema, G, ema_decay(cfg, step))
                sums[:, 1] += loss_g.detach()
            sums[:, 0] += loss_d.detach()
            sums[:, 2] += torch.sigmoid(d_real.detach().float()).mean(0)
            sums[:, 3] += torch.sigmoid(d_fake.detach().float()).mean(0)
            step += 1
            for m in active:
                m.step, m.pos = step, m.pos + 1
            if step % cfg.log_every == 0:
                for k, m in enumerate(active):
                    with _naming(m):
                        m.last_losses = _log_losses(m.stats_path, sums[k], cfg, m.epoch, step, m.last_path)

            samples = None
            for k, m in enumerate(active):
                if m.pos < m.steps_per_epoch:
                    continue
                m.pos, m.epoch = 0, m.epoch + 1
                sampler = packed.G_ema if packed.G_ema is not None else G
                wants_quality = m.epoch % cfg.quality_every == 0 or m.epoch == cfg.epochs
                wants_grid = m.epoch % cfg.grid_every == 0 or m.epoch == cfg.epochs
                if (wants_quality or wants_grid) and samples is None:  # every model's fixed-z samples at once
                    fixed_y = torch.stack([a.fixed_y for a in active], dim=1) if active[0].fixed_y is not None else None
                    samples = _sample(sampler, torch.stack([a.fixed_z for a in active], dim=1), fixed_y, autocast)
                if wants_quality:
                    quality = m.monitor.evaluate(samples[:, k : k + 1])
                    _append_stats(m.stats_path, {"kind": "quality", "epoch": m.epoch, "step": step, **quality})
                    if quality["diversity"] < COLLAPSE_RATIO:
                        _append_stats(m.stats_path, {"kind": "warning", "epoch": m.epoch, "message": f"possible mode collapse: sample diversity {quality['diversity']:.2f} of the real images'"})
                if wants_grid:
                    save_grid(samples[:, k : k + 1], m.out_dir / "grids" / f"epoch_{m.epoch:05d}.png")
                if m.epoch % cfg.checkpoint_every == 0 or m.epoch in (cfg.epochs, m.last_epoch):
                    packed.unpack(k, m)
                    with _naming(m):
                        _check_finite(sums[k], m.G, m.D, m.epoch, step, m.last_path)
                    m.save()
                if bar is not None:
                    shown = " ".join(f"{key}={m.last_losses[key]:.3f}" for key in ("loss_d", "loss_g") if key in m.last_losses)
                    bar.update(m.task, completed=m.epoch, description=f"{m.label} {shown}")

            if any(m.done for m in active):  # finished models leave; the rest are re-packed
                keep = [k for k, m in enumerate(active) if not m.done]
                for m in active:
                    if m.done:
                        m.finish(cfg, time.perf_counter() - start_time)
                for k in keep:
                    packed.unpack(k, active[k])
                sums = sums[keep].clone()
                active = [active[k] for k in keep]
                packed = _Packed(active, cfg, dev) if active else None


def _gradient_penalty(D: GroupedDiscriminator, real: torch.Tensor, fake: torch.Tensor, y: torch.Tensor | None, members: list[_Member]) -> torch.Tensor:
    """Per model E(‖∇D(x̂)‖ - 1)² on interpolates x̂ of real and fake (B, K, S, S): shape (K,)."""
    alpha = torch.cat([torch.rand(real.shape[0], 1, 1, 1, device=real.device, generator=m.rng) for m in members], dim=1)
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(D(mixed, y).sum(), mixed, create_graph=True)
    return (grad.float().flatten(2).norm(dim=2) - 1.0).pow(2).mean(0)


@contextlib.contextmanager
def _naming(m: _Member) -> Iterator[None]:
    """Prefix a divergence message with the unit it happened in."""
    try:
        yield
    except TrainingDiverged as exc:
        raise TrainingDiverged(f"{m.out_dir}: {exc}") from None


def _progress(enabled: bool, members: list[_Member], total: int):
    """One rich progress bar with a task per member, or None."""
    if not enabled or not members:
        return None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    for m in members:
        m.task = bar.add_task(m.label, total=total, completed=m.epoch)
    return bar
