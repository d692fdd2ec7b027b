"""The compute device and its mixed precision, shared by training, prediction and `segment`.

Mixed precision runs on CUDA only: bfloat16 where the GPU supports it (no loss scaling needed), else float16 with a
gradient scaler. CPU and MPS compute in float32.
"""

from __future__ import annotations

import os
import platform

import torch


def select_device(name: str) -> torch.device:
    """`auto` picks cuda, then mps, then cpu."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def amp_dtype(device: torch.device) -> torch.dtype | None:
    """The autocast type on this device, or None where computing stays in float32."""
    if device.type != "cuda":
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def autocast(device: torch.device):
    dtype = amp_dtype(device)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def grad_scaler(device: torch.device) -> torch.amp.GradScaler:
    """Loss scaling, needed by float16 only."""
    return torch.amp.GradScaler(device.type, enabled=amp_dtype(device) == torch.float16)


def device_name(device: torch.device) -> str:
    """What a run ran on, for its record: the GPU's name, or the device type."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type


def machine_description() -> str:
    """This machine, for a benchmark's or an ablation's table: its GPU, or its CPU cores."""
    cpu = f"{len(os.sched_getaffinity(0))} CPU cores ({platform.machine()}, {platform.system()})"
    return f"{torch.cuda.get_device_name(0)} GPU" if torch.cuda.is_available() else f"{cpu}, no GPU"
