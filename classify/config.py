"""The classifier's settings (``classifier:`` in a ctqc config): a pydantic model owned by ``classify/``."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class ClassifierConfig(_Strict):
    """Downstream classifier (used by ``ctqc compare``). Paper: section 4.3."""

    arch: Literal["resnet50", "resnet18"] = "resnet50"
    stem: Literal["paper", "cifar"] = "paper"
    dropout: float = Field(0.4, ge=0, lt=1)
    batch_size: int = Field(32, ge=1)
    optimizer: Literal["rmsprop", "adam"] = "rmsprop"
    lr: float = Field(1e-3, gt=0)
    patience: int = Field(5, ge=1)  # epochs without validation improvement before stopping
    max_epochs: int = Field(100, ge=1)
    # What early stopping watches on the real validation images; the best epoch's weights are restored.
    early_stopping: Literal["val_loss", "val_balanced_accuracy"] = "val_loss"
    augment: bool = False  # classical augmentation in every arm (the original+classical arm always augments)
    # Class-balanced batches; auto: when the training classes differ in size by more than 10 %.
    balanced_sampling: bool | Literal["auto"] = "auto"
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # auto: bf16 where the hardware has it
    channels_last: bool = True
    # On CPU, run 1×1 and small-map convolutions as matrix multiplications (same math, ~1.5× faster here).
    matmul_convs: bool = True
    pretrained: bool = False  # ImageNet weights from the local torch hub cache only (never downloaded)
