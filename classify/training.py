"""Training a classifier on a small resident image set, with early stopping on validation images.

The paper's settings are the defaults (``ClassifierConfig``): batch 32, RMSprop
lr 1e-3, early stopping after 5 epochs without validation improvement, the best
epoch's weights restored. RMSprop uses Keras' constants (ρ = 0.9, ε = 1e-7), as
the paper's Keras code would have.

Speed on a small CPU: the training set lives on the device as one tensor (no
DataLoader, no per-image Python); augmentation is batched; 1×1 and small-map
convolutions run as matrix multiplications (:class:`~classify.models.MatmulConv2d`,
same math); bf16 autocast where the CPU has AVX-512 BF16 / AMX; channels_last
weights; fused optimiser steps (RMSprop through the fused Adam kernel,
:class:`FusedRMSprop`, same math). Determinism: one seed sets the initial
weights and dropout (global torch RNG) and a ``torch.Generator`` draws every
permutation and augmentation, so the same seed, data and thread count give the
same model.

Early stopping watches ``cfg.early_stopping`` on the validation images:
``val_loss`` (cross-entropy, the Keras default) or ``val_balanced_accuracy``
(ties broken by the lower loss).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from classify.augment import classical_augment
from classify.config import ClassifierConfig
from classify.metrics import balanced_accuracy
from classify.models import build_classifier, use_matmul_convs
from ctqc import distributed as ddp
from ctqc.device import configure, resolve_device, use_bf16


@dataclass
class FitResult:
    """A trained model (best validation epoch's weights, eval mode) and how it got there."""

    model: nn.Module
    best_epoch: int  # 1-based epoch whose weights were restored
    epochs_run: int
    history: list[dict] = field(default_factory=list)  # per epoch: train_seconds, train_loss, val_loss, val_balanced_accuracy
    seconds: float = 0.0
    images_per_second: float = 0.0  # training images per second (augmentation included, validation excluded)
    bf16: bool = False
    balanced: bool = False
    augment: bool = False


class FusedRMSprop(torch.optim.Adam):
    """RMSprop (no momentum, not centred) computed by torch's fused Adam kernel: same math, ~3× faster here.

    ``torch.optim.RMSprop`` has no fused kernel; its multi-tensor path makes about
    13 passes over the parameters' memory per step, which for ResNet-50 (23.5 M
    parameters) costs more than a third of a CPU training step. Adam with β1 = 0
    keeps ``exp_avg = grad`` and ``exp_avg_sq = α·v + (1 − α)·g²`` (RMSprop's
    square average), and divides by ``sqrt(v / b) + eps'`` with the bias
    correction ``b = 1 − αᵗ``; setting ``lr' = lr / sqrt(b)`` and
    ``eps' = eps / sqrt(b)`` each step turns its update into RMSprop's
    ``lr · g / (sqrt(v) + eps)`` exactly (tested against ``torch.optim.RMSprop``).
    Assumes every parameter gets a gradient at every step (true for these networks).
    """

    def __init__(self, params, lr: float, alpha: float, eps: float) -> None:
        super().__init__(params, lr=lr, betas=(0.0, alpha), eps=eps, fused=True)
        self._rmsprop = (lr, alpha, eps)
        self._steps = 0

    @torch.no_grad()
    def step(self, closure=None):
        self._steps += 1
        lr, alpha, eps = self._rmsprop
        root = math.sqrt(1.0 - alpha**self._steps)
        for group in self.param_groups:
            group["lr"], group["eps"] = lr / root, eps / root
        return super().step(closure)


def make_optimizer(cfg: ClassifierConfig, params, device: torch.device | None = None) -> torch.optim.Optimizer:
    """RMSprop with Keras' constants (ρ = 0.9, ε = 1e-7) or Adam; fused kernels on CPU and CUDA."""
    params = list(params)
    fused = (device or params[0].device).type in ("cpu", "cuda")
    if cfg.optimizer == "rmsprop":
        if fused:
            return FusedRMSprop(params, lr=cfg.lr, alpha=0.9, eps=1e-7)
        return torch.optim.RMSprop(params, lr=cfg.lr, alpha=0.9, eps=1e-7)
    return torch.optim.Adam(params, lr=cfg.lr, fused=fused or None)


def needs_balancing(targets: torch.Tensor | np.ndarray, n_classes: int, tolerance: float = 0.1) -> bool:
    """True when the largest class outnumbers the smallest by more than ``tolerance`` (10 %)."""
    counts = np.bincount(np.asarray(targets, dtype=np.int64), minlength=n_classes)
    counts = counts[counts > 0]
    return bool(counts.size and counts.max() > (1 + tolerance) * counts.min())


def fit_classifier(
    train_images: torch.Tensor,
    train_targets: torch.Tensor,
    val_images: torch.Tensor,
    val_targets: torch.Tensor,
    cfg: ClassifierConfig,
    *,
    n_classes: int,
    seed: int = 0,
    device: str = "auto",
    augment: bool | None = None,
    balanced: bool | None = None,
    progress: bool = False,
    progress_label: str = "classifier",
    on_epoch: Callable[[dict], None] | None = None,
) -> FitResult:
    """Train ``cfg.arch`` on ``train_images`` (N×C×H×W float32 in [-1, 1]) with class indices ``train_targets``.

    Validation images select the epoch (early stopping) and never train.
    ``augment`` / ``balanced`` default to ``cfg.augment`` / ``cfg.balanced_sampling``
    (``auto``: balance when the classes differ by more than 10 %).
    ``on_epoch`` receives each epoch's history record.
    """
    if len(train_images) < 2:
        raise ValueError("a classifier needs at least 2 training images")
    if len(val_images) == 0:
        raise ValueError("early stopping needs validation images")
    dev = ddp.local_device(resolve_device(device))
    world = ddp.init(dev)  # under torchrun: DistributedDataParallel, each rank trains on its shard of every batch
    configure(dev)
    bf16 = use_bf16(cfg.precision, dev)
    fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
    augment = cfg.augment if augment is None else augment
    if balanced is None:
        balanced = needs_balancing(train_targets, n_classes) if cfg.balanced_sampling == "auto" else bool(cfg.balanced_sampling)

    torch.manual_seed(seed)  # initial weights and dropout
    model = build_classifier(cfg.arch, n_classes, stem=cfg.stem, dropout=cfg.dropout, in_channels=train_images.shape[1], pretrained=cfg.pretrained)
    if cfg.matmul_convs and dev.type == "cpu":
        use_matmul_convs(model)
    model = model.to(dev, memory_format=fmt)
    net = model  # the plain module: evaluation, state dicts
    if world.enabled:
        for p in net.parameters():  # 1×1 kernels: the same memory order either way; DDP's buckets want dense strides
            if p.dim() == 4 and p.shape[-2:] == (1, 1):
                p.data = p.data.clone(memory_format=torch.contiguous_format)
        # DDP copies rank 0's weights to every rank and averages gradients during backward
        model = nn.parallel.DistributedDataParallel(model, device_ids=[dev.index] if dev.type == "cuda" else None)
        torch.manual_seed(ddp.rank_seed(seed))  # distinct dropout masks per rank
    opt = make_optimizer(cfg, net.parameters(), dev)
    order_rng = torch.Generator().manual_seed(seed)  # permutations / balanced draws (CPU), the same on every rank
    aug_rng = torch.Generator(device=dev).manual_seed(ddp.rank_seed(seed + 1))
    x = train_images.to(dev, torch.float32).contiguous(memory_format=fmt)
    y = train_targets.to(dev, torch.int64)
    xv, yv = val_images.to(dev, torch.float32).contiguous(memory_format=fmt), val_targets.to(dev, torch.int64)
    n, batch = len(x), min(cfg.batch_size, len(x))
    if balanced:
        counts = torch.bincount(train_targets.cpu().long(), minlength=n_classes).double()
        weights = (1.0 / counts.clamp(min=1))[train_targets.cpu().long()]
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16) if bf16 else nullcontext()

    history: list[dict] = []
    best_key: tuple | None = None
    best_state, best_epoch, wait = None, 0, 0
    train_seconds, seen = 0.0, 0
    start = time.perf_counter()
    bar, task = _progress(progress and world.is_main, progress_label, cfg.max_epochs)
    with bar if bar is not None else nullcontext():
        for epoch in range(1, cfg.max_epochs + 1):
            t0 = time.perf_counter()
            model.train()
            if balanced:
                order = torch.multinomial(weights, n, replacement=True, generator=order_rng)
            else:
                order = torch.randperm(n, generator=order_rng)
            chunks = list(order.to(dev).split(batch))
            if len(chunks) > 1 and len(chunks[-1]) < 2 * world.world_size:
                chunks.pop()  # BatchNorm cannot train on a batch of one (per rank)
            loss_sum = torch.zeros((), device=dev)
            for chunk in chunks:
                idx = ddp.shard(chunk)  # this rank's part of the global batch
                xb = x[idx]
                if augment:
                    xb = classical_augment(xb, aug_rng)
                xb = xb.contiguous(memory_format=fmt)
                with autocast:
                    logits = model(xb)
                loss = F.cross_entropy(logits.float(), y[idx])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                loss_sum += loss.detach() * len(idx)
                seen += len(chunk)
            loss_sum = ddp.all_reduce_mean(loss_sum) * world.world_size  # the whole batch's loss, summed over ranks
            ddp.average_buffers(net)  # BatchNorm statistics from every rank's shard: all ranks evaluate alike
            val_probs, val_loss = _predict(net, xv, yv, autocast)
            val_bacc = balanced_accuracy(yv.cpu().numpy(), val_probs.argmax(1), n_classes)
            epoch_seconds = time.perf_counter() - t0
            record = {
                "epoch": epoch,
                "train_seconds": round(epoch_seconds, 4),
                "train_images": sum(len(c) for c in chunks),
                "train_loss": float(loss_sum) / sum(len(c) for c in chunks),
                "val_loss": val_loss,
                "val_balanced_accuracy": val_bacc,
            }
            history.append(record)
            train_seconds += epoch_seconds
            if not math.isfinite(record["train_loss"]):
                raise FloatingPointError(f"classifier training diverged at epoch {epoch} (loss {record['train_loss']}); lower classifier.lr")
            key = (-val_loss,) if cfg.early_stopping == "val_loss" else (val_bacc, -val_loss)
            if ddp.broadcast_object(best_key is None or key > best_key):  # rank 0 decides for all
                best_key, best_epoch, wait = key, epoch, 0
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            else:
                wait += 1
            record["best_epoch"] = best_epoch
            if on_epoch is not None and world.is_main:
                on_epoch(record)
            if bar is not None:
                bar.update(task, completed=epoch, description=f"{progress_label} val loss {val_loss:.3f} bacc {val_bacc:.2f}")
            if wait >= cfg.patience:
                break
    assert best_state is not None
    net.load_state_dict(best_state)
    net.eval()
    return FitResult(
        model=net,
        best_epoch=best_epoch,
        epochs_run=len(history),
        history=history,
        seconds=time.perf_counter() - start,
        images_per_second=seen / train_seconds if train_seconds > 0 else 0.0,
        bf16=bf16,
        balanced=balanced,
        augment=augment,
    )


@torch.no_grad()
def predict_proba(model: nn.Module, images: torch.Tensor, *, precision: str = "auto", batch_size: int = 256) -> np.ndarray:
    """Class probabilities (N×K float64) of ``images`` under ``model`` in eval mode."""
    dev = next(model.parameters()).device
    bf16 = use_bf16(precision, dev)
    autocast = torch.autocast(dev.type, dtype=torch.bfloat16) if bf16 else nullcontext()
    probs, _ = _predict(model, images.to(dev, torch.float32).contiguous(), None, autocast, batch_size)
    return probs


@torch.no_grad()
def _predict(model: nn.Module, x: torch.Tensor, y: torch.Tensor | None, autocast, batch_size: int = 256) -> tuple[np.ndarray, float]:
    """(probabilities N×K as float64, mean cross-entropy or NaN without targets)."""
    was_training = model.training
    model.eval()
    logits = []
    for xb in x.split(batch_size):
        with autocast:
            logits.append(model(xb).float())
    model.train(was_training)
    out = torch.cat(logits)
    loss = float(F.cross_entropy(out, y)) if y is not None else math.nan
    return torch.softmax(out, dim=1).double().cpu().numpy(), loss


def _progress(enabled: bool, label: str, total: int):
    if not enabled:
        return None, None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    return bar, bar.add_task(label, total=total)
