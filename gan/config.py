"""The GAN trainer's settings (``gan:`` in a ctqc config): a pydantic model owned by ``gan/``."""

from __future__ import annotations

from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator

# The networks gan.networks builds: paper = section 4.2.2, 32 px only; strided = strided convs in G and D;
# upsample = the strided D with a resize-convolution G. The one list (the config, gan.grouped and the tests read it).
Architecture = Literal["paper", "strided", "upsample"]
ARCHITECTURES: tuple[str, ...] = get_args(Architecture)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class GanConfig(_Strict):
    """GAN training and sampling (``ctqc train``, ``ctqc generate``). Paper: section 4.2."""

    architecture: Architecture = "strided"  # see ARCHITECTURES
    mode: Literal["per_class", "conditional"] = "per_class"
    width: int = Field(64, ge=8, le=512)  # strided: channels of the last G / first D block
    z_dim: int = Field(100, ge=1)
    epochs: int = Field(300, ge=1)
    batch_size: int = Field(16, ge=2)
    lr: float = Field(2e-4, gt=0)
    beta1: float = Field(0.5, ge=0, lt=1)
    beta2: float = Field(0.999, ge=0, lt=1)
    loss: Literal["bce", "hinge", "wgan-gp"] = "bce"
    r1_gamma: float = Field(0.0, ge=0)  # R1 penalty weight (bce / hinge); 0 = off
    gp_lambda: float = Field(10.0, ge=0)  # WGAN-GP penalty weight
    n_critic: int = Field(1, ge=1)  # D steps per G step
    d_dropout: float = Field(0.4, ge=0, lt=1)  # the paper's D dropout (paper architecture)
    label_smoothing: float = Field(0.0, ge=0, lt=0.5)  # one-sided: real target 1 - s (bce)
    label_flip: float = Field(0.0, ge=0, lt=0.5)  # label inversion probability (bce)
    instance_noise: float = Field(0.0, ge=0)  # σ of noise on D inputs, annealed to 0
    diffaugment: str = "translation,cutout,color"  # "" = off
    ema_decay: float = Field(0.999, ge=0, lt=1)  # 0 = no EMA generator
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 where the hardware has it
    channels_last: bool = True
    log_every: int = Field(10, ge=1)  # steps between stats.jsonl lines
    grid_every: int = Field(50, ge=1)  # epochs between sample grids
    checkpoint_every: int = Field(50, ge=1)  # epochs between checkpoints (and always at the end)
    quality_every: int = Field(25, ge=1)  # epochs between quality-signal evaluations
    max_abs_loss: float = Field(1e4, gt=0)  # |loss| above this counts as divergence
    n_synthetic: int = Field(200, ge=1)  # synthetic pool size per fold, all classes together
    # Train all per-class / per-fold GANs of a run together as one grouped network
    # (gan/batched.py): one K-wide step instead of K tiny ones, for GPUs. Each GAN
    # keeps its own data, seed, streams and files; results match the per-GAN
    # trainer up to floating-point summation order. Every architecture of ARCHITECTURES (gan.grouped.GROUPED_ARCHITECTURES); not under torchrun.
    train_together: bool = False
    # Independent GANs (per class / per fold) trained side by side in this many spawned processes,
    # the cores split between them (ctqc/pool.py; never more processes than cores or GANs; the cores are the
    # affinity mask capped by OMP_NUM_THREADS); 0 = one per CPU core. Each GAN's numbers depend
    # on its thread count, which follows this setting and the run's number of GANs (not what is left
    # to train), so a resumed run matches one run in one go. Ignored with train_together and under torchrun.
    jobs: int = Field(0, ge=0, le=256)

    @field_validator("diffaugment")
    @classmethod
    def _known_policies(cls, value: str) -> str:
        allowed = {"translation", "cutout", "color"}
        parts = [p.strip() for p in value.split(",") if p.strip()]
        unknown = [p for p in parts if p not in allowed]
        if unknown:
            raise ValueError(f"unknown DiffAugment policy {unknown[0]!r}; choose from {', '.join(sorted(allowed))}")
        return ",".join(parts)
