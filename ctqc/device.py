"""Device and precision choice, shared by the GAN and classifier trainers."""

from __future__ import annotations

from pathlib import Path

import torch


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    return torch.device(device)


def use_bf16(precision: str, device: torch.device) -> bool:
    """bf16 autocast where the hardware runs it natively (CUDA with bf16, CPUs with AVX-512 BF16 / AMX)."""
    if precision != "auto":
        return precision == "bf16"
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            flags = Path("/proc/cpuinfo").read_text()
        except OSError:
            return False
        return "avx512_bf16" in flags or "amx_bf16" in flags
    return False


def configure(device: torch.device) -> None:
    """Per-device speed settings: cuDNN picks the fastest convolution algorithms for the (fixed) input shapes."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
