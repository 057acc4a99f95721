"""Data-parallel training across processes, launched by ``torchrun``.

``torchrun --nproc_per_node=N -m ctqc.cli train …`` starts N copies of ctqc;
each reads ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK`` from its environment.
Every rank holds the (small) training set in memory and trains on its own shard
of each global batch: the ranks draw the same epoch permutation and rank r takes
every N-th image of it, as ``DistributedSampler`` does. Gradients are averaged
over ranks before every optimiser step, so all ranks hold the same weights, and
rank 0 alone writes files (checkpoints, statistics, the manifest) and prints.

The classifier trainer wraps its model in ``DistributedDataParallel``. The GAN
trainer averages gradients itself (:func:`average_gradients`, the same
all-reduce) because DDP cannot wrap it: the R1 penalty differentiates D twice
(``torch.autograd.grad(create_graph=True)``, which DDP does not support) and D
is reused with frozen weights in the generator step.

Backends: NCCL when the ranks use CUDA GPUs (one per ``LOCAL_RANK``), gloo on CPU.
Without ``torchrun`` (``WORLD_SIZE`` unset or 1) every function here is a no-op
and the trainers behave exactly as in a single process.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import torch
import torch.distributed as dist

from ctqc.errors import UserError

T = TypeVar("T")


@dataclass(frozen=True)
class Context:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    local_world_size: int = 1  # processes on this machine

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise RuntimeError(f"environment variable {name}={value!r} is not an integer (set by torchrun)") from None


def context() -> Context:
    """This process's rank and the world size (from torchrun's environment)."""
    return Context(_env_int("RANK", 0), _env_int("WORLD_SIZE", 1), _env_int("LOCAL_RANK", 0), _env_int("LOCAL_WORLD_SIZE", 1))


def init(device: torch.device | None = None) -> Context:
    """Join the process group once (NCCL for CUDA devices, gloo otherwise); a no-op outside torchrun."""
    ctx = context()
    if ctx.enabled and not dist.is_initialized():
        cuda = device is not None and device.type == "cuda"
        if cuda:
            torch.cuda.set_device(ctx.local_rank)
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    return ctx


def local_device(device: torch.device) -> torch.device:
    """Under torchrun on GPUs, rank r uses ``cuda:LOCAL_RANK``; otherwise ``device`` unchanged."""
    if device.type == "cuda" and context().enabled:
        return torch.device("cuda", context().local_rank)
    return device


def is_main() -> bool:
    return context().is_main


def barrier() -> None:
    if context().enabled and dist.is_initialized():
        dist.barrier()


def broadcast_object(obj: Any) -> Any:
    """Rank 0's ``obj`` on every rank (e.g. the run directory rank 0 created)."""
    if not (context().enabled and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_gather_object(obj: Any) -> list[Any]:
    if not (context().enabled and dist.is_initialized()):
        return [obj]
    out: list[Any] = [None] * context().world_size
    dist.all_gather_object(out, obj)
    return out


def rank_seed(seed: int) -> int:
    """A seed for this rank's own noise (z, augmentation, dropout); rank 0 keeps ``seed``, as a single process would."""
    return seed + 1_000_003 * context().rank


def shard(indices: torch.Tensor) -> torch.Tensor:
    """This rank's share of a batch of indices: every world_size-th one, starting at its rank."""
    ctx = context()
    return indices[ctx.rank :: ctx.world_size] if ctx.enabled else indices


@torch.no_grad()
def broadcast_module(module: torch.nn.Module) -> None:
    """Copy rank 0's parameters and buffers to every rank."""
    if not (context().enabled and dist.is_initialized()):
        return
    for tensor in [*module.parameters(), *module.buffers()]:
        dist.broadcast(tensor.data, src=0)


@torch.no_grad()
def average_gradients(module: torch.nn.Module) -> None:
    """All-reduce the parameters' gradients to their mean over ranks (one flat buffer, one collective)."""
    if not (context().enabled and dist.is_initialized()):
        return
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= context().world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset : offset + g.numel()].view_as(g))
        offset += g.numel()


@torch.no_grad()
def average_buffers(module: torch.nn.Module) -> None:
    """Average floating-point buffers (BatchNorm running statistics) over ranks, so every rank evaluates alike."""
    if not (context().enabled and dist.is_initialized()):
        return
    for b in module.buffers():
        if b.is_floating_point():
            dist.all_reduce(b)
            b /= context().world_size


@torch.no_grad()
def all_reduce_mean(tensor: torch.Tensor) -> torch.Tensor:
    """In place: the mean of ``tensor`` over ranks (loss sums for logging)."""
    if context().enabled and dist.is_initialized():
        dist.all_reduce(tensor)
        tensor /= context().world_size
    return tensor


def from_main(fn: Callable[[], T]) -> T:
    """Run ``fn`` on rank 0 only and give its result to every rank (e.g. creating the run directory).

    When it fails on rank 0, the other ranks raise a :class:`UserError` naming
    the failure instead of waiting forever for a result.
    """
    if not (context().enabled and dist.is_initialized()):
        return fn()
    result, error = None, None
    if is_main():
        try:
            result = fn()
        except BaseException as exc:
            broadcast_object((None, f"rank 0 failed: {' '.join(str(exc).split())}"))
            raise
    result, error = broadcast_object((result, error))
    if error is not None:
        raise UserError(error)
    return result
