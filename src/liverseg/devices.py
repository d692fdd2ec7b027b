"""The compute device and its mixed precision, shared by training, prediction and `segment`.

Mixed precision runs on CUDA: bfloat16 where the GPU supports it (no loss scaling needed), else float16 with a
gradient scaler. On the CPU, training may compute in bfloat16 where the cores multiply it natively (Intel AMX or
AVX-512 BF16; `train.cpu_bf16`; bench/train_flops.py measures the steps both ways); prediction on the CPU stays in
float32, so that its probabilities are those of the exported ONNX models. MPS computes in float32. 2D networks and
their batches are channels-last wherever autocast is on, and at prediction on the CPU too.
"""

from __future__ import annotations

import platform

import torch

from liverseg.cores import usable_cpus


def select_device(name: str) -> torch.device:
    """`auto` picks cuda, then mps, then cpu."""
    if name != "auto":
        return torch.device(name)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def cpu_has_native_bf16() -> bool:
    """Whether this x86 CPU multiplies bfloat16 in hardware; elsewhere bfloat16 is emulated and slower than float32."""
    capabilities = torch.cpu.get_capabilities()
    return bool(capabilities.get("amx_bf16") or capabilities.get("avx512_bf16"))


def amp_dtype(device: torch.device, cpu_bf16: bool = False) -> torch.dtype | None:
    """The autocast type on this device, or None where computing stays in float32; `cpu_bf16` asks for bfloat16 on a
    CPU that has it natively."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_bf16 and cpu_has_native_bf16():
        return torch.bfloat16
    return None


def precision_name(device: torch.device, cpu_bf16: bool = False) -> str:
    """What training computes in here, for a run's record: bfloat16, float16 or float32."""
    return str(amp_dtype(device, cpu_bf16) or torch.float32).removeprefix("torch.")


def autocast(device: torch.device, cpu_bf16: bool = False):
    dtype = amp_dtype(device, cpu_bf16)
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def memory_format(device: torch.device) -> torch.memory_format:
    """The layout of 2D networks and their batches at prediction: channels-last on the CPU and CUDA, whose convolution
    kernels (oneDNN, cuDNN) run it faster in float32 too (bench/train_flops.py); MPS keeps the default layout."""
    return torch.channels_last if device.type in ("cpu", "cuda") else torch.contiguous_format


def training_memory_format(device: torch.device, cpu_bf16: bool = False) -> torch.memory_format:
    """The layout in training: channels-last wherever autocast is on. Float32 training on the CPU keeps the default
    layout, although channels-last steps ran 1.2x faster there: the layout changes the order of summation, and a float32
    training then no longer repeats earlier versions' weights (the default U-Net's test liver Dice moved from 0.980 to
    0.970 in one such run)."""
    return torch.channels_last if amp_dtype(device, cpu_bf16) is not None else torch.contiguous_format


def grad_scaler(device: torch.device) -> torch.amp.GradScaler:
    """Loss scaling, needed by float16 only."""
    return torch.amp.GradScaler(device.type, enabled=amp_dtype(device) == torch.float16)


def to_device(tensor: torch.Tensor, device: torch.device, dtype: torch.dtype | None = None) -> torch.Tensor:
    """`tensor` on `device` (in `dtype`), without stopping the host on CUDA: a copy from pageable host memory waits
    until the device has done all the work queued before it, so each of a batch's small random draws would stall the
    host; from pinned memory the copy joins the queue (PyTorch keeps the pinned block until the copy has run)."""
    if device.type == "cuda" and tensor.device.type == "cpu":
        tensor = tensor.pin_memory().to(device, non_blocking=True)
    return tensor.to(device, dtype)


def device_name(device: torch.device) -> str:
    """What a run ran on, for its record: the GPU's name, or the device type."""
    return torch.cuda.get_device_name(device) if device.type == "cuda" else device.type


def machine_description() -> str:
    """This machine, for a benchmark's or an ablation's table: its GPU, or its CPU cores."""
    cpu = f"{usable_cpus()} CPU cores ({platform.machine()}, {platform.system()})"
    return f"{torch.cuda.get_device_name(0)} GPU" if torch.cuda.is_available() else f"{cpu}, no GPU"
