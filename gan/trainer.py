"""GAN training for tiny datasets (~70 images per class), resumable bit-for-bit on CPU.

The whole training set lives on the device as one tensor: no DataLoader, no
per-step host work. One epoch = ⌊N / batch⌋ steps over a fresh permutation.
Every random draw (permutation, z, augmentation, noise, label flips) comes from
one ``torch.Generator``; dropout uses the global RNG. Both are checkpointed, so
resuming at an epoch boundary continues exactly as if never stopped.

Outputs in ``out_dir``: ``checkpoints/last.pt`` (full state, every
``checkpoint_every`` epochs and at the end), ``checkpoints/generator.pt``
(sampling weights + description, at the end), ``stats.jsonl`` and ``grids/``.
"""

from __future__ import annotations

import copy
import json
import math
import time
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

from ctqc import atomic
from ctqc import distributed as ddp
from ctqc.device import configure, resolve_device, use_bf16
from ctqc.errors import UserError
from gan import losses
from gan.augment import diff_augment, parse_policy
from gan.config import GanConfig
from gan.monitor import COLLAPSE_RATIO, QualityMonitor
from gan.networks import build_discriminator, build_generator
from gan.optim import adam, ema_decay, ema_update

CHECKPOINT_FORMAT = 1


class TrainingDiverged(UserError):
    """Losses became NaN/inf or exploded; the last good checkpoint is kept."""


@dataclass(frozen=True)
class TrainResult:
    generator_path: Path
    epochs: int
    steps: int
    seconds: float
    images_per_second: float


def train_gan(
    images: torch.Tensor,
    cfg: GanConfig,
    out_dir: str | Path,
    *,
    labels: torch.Tensor | None = None,
    n_classes: int = 0,
    val_images: torch.Tensor | None = None,
    seed: int = 0,
    device: str = "auto",
    resume: bool = True,
    until_epoch: int | None = None,
    progress: bool = False,
    description: dict | None = None,
    progress_label: str | None = None,
) -> TrainResult:
    """Train G and D on ``images`` (N×1×S×S in [-1, 1]: training images only).

    ``labels`` (class indices) and ``n_classes`` ≥ 2 train a conditional GAN.
    ``val_images`` feed the quality signal only. With ``resume`` an existing
    ``checkpoints/last.pt`` is continued. ``until_epoch`` stops early (after
    checkpointing) — training in chunks gives the same weights as in one go.
    ``description`` (JSON-able) is stored in the checkpoints, e.g. class and fold.
    """
    out_dir = Path(out_dir)
    dev = ddp.local_device(resolve_device(device))
    world = ddp.init(dev)  # under torchrun: each rank trains on its shard of every batch; rank 0 writes
    main = world.is_main
    configure(dev)
    conditional = n_classes >= 2
    if conditional and labels is None:
        raise ValueError("a conditional GAN needs labels")
    n, image_size = images.shape[0], images.shape[-1]
    batch = min(cfg.batch_size, n)
    if batch < world.world_size:
        raise UserError(f"gan.batch_size={batch} is smaller than the {world.world_size} torchrun processes; each needs at least one image per step")
    steps_per_epoch = max(1, n // batch)
    policy = parse_policy(cfg.diffaugment)
    bf16 = use_bf16(cfg.precision, dev)
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format

    torch.manual_seed(seed)  # weight init and dropout
    G = build_generator(cfg.architecture, z_dim=cfg.z_dim, n_classes=n_classes if conditional else 0, image_size=image_size, width=cfg.width)
    D = build_discriminator(cfg.architecture, n_classes=n_classes if conditional else 0, image_size=image_size, width=cfg.width, dropout=cfg.d_dropout)
    G, D = G.to(dev, memory_format=fmt), D.to(dev, memory_format=fmt)
    ddp.broadcast_module(G), ddp.broadcast_module(D)  # identical starting weights on every rank
    G_ema = copy.deepcopy(G).eval().requires_grad_(False) if cfg.ema_decay > 0 else None
    # CPU: foreach, the same per-tensor arithmetic as the default loop (bit-identical, tests/test_gan_fingerprint.py)
    # without its per-tensor temporaries and Python steps: 21.5 vs 29.3 ms per paper G + D step on one core; CUDA: fused
    opt_g, opt_d = adam(G.parameters(), cfg), adam(D.parameters(), cfg)
    # z, augmentation and noise differ between ranks (rank 0 draws what a single process would)
    rng = torch.Generator(device=dev).manual_seed(ddp.rank_seed(seed))
    perm_rng = torch.Generator().manual_seed(seed)  # permutations on the CPU, then index on the device

    meta = {
        "format": CHECKPOINT_FORMAT,
        "architecture": cfg.architecture,
        "z_dim": cfg.z_dim,
        "width": cfg.width,
        "image_size": int(image_size),
        "n_classes": n_classes if conditional else 0,
        "seed": seed,
        "config": cfg.model_dump(mode="json"),
        "description": description or {},
    }
    ckpt_dir, last_path = out_dir / "checkpoints", out_dir / "checkpoints" / "last.pt"
    stats_path = out_dir / "stats.jsonl"
    epoch = step = 0
    if resume and last_path.is_file():
        epoch, step = _load_state(last_path, G, D, G_ema, opt_g, opt_d, rng, perm_rng)
        if main:
            _truncate_stats(stats_path, step)
    elif stats_path.exists() and main:
        stats_path.unlink()  # a fresh start: no stale lines from an earlier attempt
    if world.enabled:
        torch.manual_seed(ddp.rank_seed(seed))  # dropout masks differ between ranks too

    data = images.to(dev).contiguous(memory_format=fmt)
    y_all = labels.to(dev) if conditional else None
    fixed_z = torch.randn(64, cfg.z_dim, generator=torch.Generator().manual_seed(seed + 1)).to(dev)
    fixed_y = (torch.arange(64) % n_classes).to(dev) if conditional else None
    monitor = QualityMonitor(images, val_images, seed=seed, device=dev)
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16) if bf16 else nullcontext()
    r1 = cfg.r1_gamma > 0 and cfg.loss != "wgan-gp"
    last_epoch = cfg.epochs if until_epoch is None else min(until_epoch, cfg.epochs)
    start_time, start_step = time.perf_counter(), step
    label = progress_label or out_dir.name
    bar, task = _progress(progress and main, label, cfg.epochs, epoch)
    sums = torch.zeros(4, device=dev)  # loss_d, loss_g, D(real), D(fake) since the last log line
    last_losses: dict = {}

    def augment(x: torch.Tensor, sigma: float) -> torch.Tensor:
        x = diff_augment(x, policy, rng) if policy else x
        return x + sigma * torch.randn(x.shape, device=dev, generator=rng) if sigma > 0 else x

    with bar if bar is not None else nullcontext():
        while epoch < last_epoch:
            perm = torch.randperm(n, generator=perm_rng).to(dev)
            sigma = cfg.instance_noise * max(0.0, 1.0 - epoch / cfg.epochs)  # annealed instance noise
            for b in range(steps_per_epoch):
                idx = ddp.shard(perm[b * batch : (b + 1) * batch])  # this rank's part of the global batch
                real = data[idx]
                y = y_all[idx] if conditional else None

                g_step = (step + 1) % cfg.n_critic == 0
                # One fake batch per step, as in the classic DCGAN loop: detached for the D
                # step, with its graph for the G step (no graph when G is not updated).
                z = torch.randn(len(idx), cfg.z_dim, device=dev, generator=rng)
                with autocast, torch.set_grad_enabled(g_step):
                    fake = G(z, y)

                # --- discriminator step
                with autocast:
                    real_in = augment(real, sigma).detach().requires_grad_(r1)
                    d_real, d_fake = D(real_in, y), D(augment(fake.detach(), sigma), y)
                    loss_d = losses.d_loss(cfg.loss, d_real.float(), d_fake.float(), smoothing=cfg.label_smoothing, flip=cfg.label_flip, generator=rng)
                if r1:
                    loss_d = loss_d + cfg.r1_gamma / 2 * losses.r1_penalty(d_real, real_in)
                if cfg.loss == "wgan-gp":
                    with autocast:
                        gp = losses.wgan_gradient_penalty(D, real_in.detach(), augment(fake.detach(), sigma).detach(), y, rng)
                    loss_d = loss_d + cfg.gp_lambda * gp
                opt_d.zero_grad(set_to_none=True)
                loss_d.backward()
                ddp.average_gradients(D)
                opt_d.step()

                # --- generator step: D's weights are frozen (only its input gradients are needed)
                if g_step:
                    D.requires_grad_(False)
                    with autocast:
                        loss_g = losses.g_loss(cfg.loss, D(augment(fake, sigma), y).float())
                    opt_g.zero_grad(set_to_none=True)
                    loss_g.backward()
                    ddp.average_gradients(G)
                    opt_g.step()
                    D.requires_grad_(True)
                    if G_ema is not None:
                        ema_update(G_ema, G, ema_decay(cfg, step))
                    sums[1] += loss_g.detach()
                sums[0] += loss_d.detach()
                sums[2] += torch.sigmoid(d_real.detach().float()).mean()
                sums[3] += torch.sigmoid(d_fake.detach().float()).mean()
                step += 1
                if step % cfg.log_every == 0:
                    last_losses = _log_losses(stats_path if main else None, ddp.all_reduce_mean(sums), cfg, epoch, step, last_path)
            epoch += 1
            if world.enabled:  # BatchNorm statistics were gathered on each rank's shard
                for module in (G, D) if G_ema is None else (G, D, G_ema):
                    ddp.average_buffers(module)

            sampler = G_ema if G_ema is not None else G
            if main and (epoch % cfg.quality_every == 0 or epoch == cfg.epochs):
                quality = monitor.evaluate(_sample(sampler, fixed_z, fixed_y, autocast))
                _append_stats(stats_path, {"kind": "quality", "epoch": epoch, "step": step, **quality})
                if quality["diversity"] < COLLAPSE_RATIO:
                    _append_stats(stats_path, {"kind": "warning", "epoch": epoch, "message": f"possible mode collapse: sample diversity {quality['diversity']:.2f} of the real images'"})
            if main and (epoch % cfg.grid_every == 0 or epoch == cfg.epochs):
                save_grid(_sample(sampler, fixed_z, fixed_y, autocast), out_dir / "grids" / f"epoch_{epoch:05d}.png")
            if epoch % cfg.checkpoint_every == 0 or epoch in (cfg.epochs, last_epoch):
                _check_finite(sums, G, D, epoch, step, last_path)
                _save_state(last_path, G, D, G_ema, opt_g, opt_d, rng, perm_rng, epoch, step, meta, write=main)
            if bar is not None:
                shown = " ".join(f"{k}={last_losses[k]:.3f}" for k in ("loss_d", "loss_g") if k in last_losses)
                bar.update(task, completed=epoch, description=f"{label} {shown}")

    seconds = time.perf_counter() - start_time
    gen_path = ckpt_dir / "generator.pt"
    if epoch >= cfg.epochs and main:
        _save_generator(gen_path, G_ema if G_ema is not None else G, meta, epoch, step)
    ddp.barrier()  # the other ranks continue once rank 0's files are in place
    rate = (step - start_step) * batch / seconds if seconds > 0 else 0.0
    return TrainResult(generator_path=gen_path, epochs=epoch, steps=step, seconds=seconds, images_per_second=rate)


# ------------------------------------------------------------------------- helpers


@torch.no_grad()
def _sample(G: torch.nn.Module, z: torch.Tensor, y: torch.Tensor | None, autocast) -> torch.Tensor:
    was_training = G.training
    G.eval()
    with autocast:
        out = G(z, y).float()  # stays on the device: the quality signal runs there; save_grid copies to the host
    G.train(was_training)
    return out


def _log_losses(path: Path | None, sums: torch.Tensor, cfg: GanConfig, epoch: int, step: int, last_path: Path) -> dict:
    k = cfg.log_every
    values = (sums / k).tolist()
    g_steps = max(1, k // cfg.n_critic)
    record = {"kind": "loss", "epoch": epoch, "step": step, "loss_d": values[0], "loss_g": float(sums[1]) / g_steps, "d_real": values[2], "d_fake": values[3]}
    _raise_if_diverged(record, cfg, epoch, step, last_path)
    if path is not None:
        _append_stats(path, record)
    sums.zero_()
    return record


def _raise_if_diverged(record: dict, cfg: GanConfig, epoch: int, step: int, last_path: Path) -> None:
    bad = [k for k in ("loss_d", "loss_g") if not math.isfinite(record[k]) or abs(record[k]) > cfg.max_abs_loss]
    if bad:
        kept = f"last good checkpoint kept: {last_path}" if last_path.exists() else "no checkpoint was written yet"
        raise TrainingDiverged(
            f"GAN training diverged at epoch {epoch + 1}, step {step} ({bad[0]}={record[bad[0]]}); {kept}; "
            "lower gan.lr, add gan.r1_gamma, or check the images for NaN"
        )


def _check_finite(sums: torch.Tensor, G, D, epoch: int, step: int, last_path: Path) -> None:
    finite = torch.isfinite(sums).all() and all(torch.isfinite(p).all() for m in (G, D) for p in m.parameters())
    if not bool(ddp.all_reduce_mean(torch.tensor([float(finite)])) == 1.0):  # every rank raises together
        kept = f"last good checkpoint kept: {last_path}" if last_path.exists() else "no checkpoint was written yet"
        raise TrainingDiverged(f"GAN training diverged by epoch {epoch} (step {step}): NaN/inf in losses or weights; {kept}; lower gan.lr or add gan.r1_gamma")


def _append_stats(path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")


def _truncate_stats(path: Path, step: int) -> None:
    """On resume, drop lines written after the checkpoint (and any line cut by a kill)."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if record.get("step", 0) <= step:
            kept.append(line)
    atomic.write_text(path, "".join(k + "\n" for k in kept))


def _save_state(path: Path, G, D, G_ema, opt_g, opt_d, rng, perm_rng, epoch: int, step: int, meta: dict, write: bool = True) -> None:
    """The full training state; under torchrun every rank's RNG states are gathered and rank 0 (``write``) saves."""
    rank_rngs = ddp.all_gather_object({"rng": rng.get_state(), "torch_rng": torch.get_rng_state()})
    if not write:
        return
    state = {
        "meta": meta,
        "epoch": epoch,
        "step": step,
        "G": G.state_dict(),
        "D": D.state_dict(),
        "G_ema": None if G_ema is None else G_ema.state_dict(),
        "opt_g": opt_g.state_dict(),
        "opt_d": opt_d.state_dict(),
        "rng": rng.get_state(),
        "perm_rng": perm_rng.get_state(),
        "torch_rng": torch.get_rng_state(),
    }
    if len(rank_rngs) > 1:
        state["rank_rngs"] = rank_rngs
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state_all()
    with atomic.atomic_path(path) as tmp:
        torch.save(state, tmp)


def _load_state(path: Path, G, D, G_ema, opt_g, opt_d, rng, perm_rng) -> tuple[int, int]:
    state = load_checkpoint(path)
    G.load_state_dict(state["G"])
    D.load_state_dict(state["D"])
    if G_ema is not None and state["G_ema"] is not None:
        G_ema.load_state_dict(state["G_ema"])
    opt_g.load_state_dict(state["opt_g"])
    opt_d.load_state_dict(state["opt_d"])
    perm_rng.set_state(state["perm_rng"])
    world = ddp.context()
    rank_rngs = state.get("rank_rngs") or [{"rng": state["rng"], "torch_rng": state["torch_rng"]}]
    if len(rank_rngs) == world.world_size:  # the same process layout: continue exactly
        rng.set_state(rank_rngs[world.rank]["rng"])
        torch.set_rng_state(rank_rngs[world.rank]["torch_rng"])
    else:  # resumed with another number of processes: fresh, distinct streams (not bit-identical)
        rng.manual_seed(ddp.rank_seed(int(state["meta"]["seed"]) + int(state["step"])))
        torch.manual_seed(ddp.rank_seed(int(state["meta"]["seed"]) + int(state["step"])))
    if "cuda_rng" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    return int(state["epoch"]), int(state["step"])


def _save_generator(path: Path, G, meta: dict, epoch: int, step: int) -> None:
    with atomic.atomic_path(path) as tmp:
        torch.save({"meta": meta, "epoch": epoch, "step": step, "G": G.state_dict()}, tmp)


def load_checkpoint(path: str | Path) -> dict:
    """Load a checkpoint with ``weights_only=True``: tensors and plain data only, never code."""
    path = Path(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"checkpoint not found: {path}") from None
    except Exception as exc:  # pickle.UnpicklingError for unsafe content, RuntimeError for corrupt zips
        raise UserError(f"{path}: not a loadable ctqc checkpoint ({exc.__class__.__name__}); it may be corrupt or unsafe") from None


def save_grid(images: torch.Tensor, path: Path, nrow: int = 8) -> None:
    """Save N×1×S×S images in [-1, 1] as one 8-bit grayscale PNG grid (atomically)."""
    from PIL import Image
    from torchvision.utils import make_grid

    grid = make_grid(images.detach().float().cpu().clamp(-1, 1), nrow=nrow, padding=2, normalize=True, value_range=(-1, 1), pad_value=0.5)
    array = (grid[0] * 255).round().to(torch.uint8).numpy()
    with atomic.atomic_path(path) as tmp:
        Image.fromarray(array).save(tmp, format="PNG")


def _progress(enabled: bool, name: str, total: int, start: int):
    """A rich progress bar and its task, or (None, None) when disabled."""
    if not enabled:
        return None, None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    return progress, progress.add_task(name, total=total, completed=start)
