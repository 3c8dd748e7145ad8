"""Where and how precisely a run computes: the device, the precision (AMP), autocast, and
whether the CPU flushes denormal floats."""

from __future__ import annotations

from contextlib import nullcontext

import torch


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def resolve_precision(name: str, device: torch.device) -> str:
    """'auto': bf16 where the hardware does it natively, else fp16 on CUDA, else fp32."""
    if name != "auto":
        return name
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    cpu = getattr(torch.backends, "cpu", None)
    capability = cpu.get_cpu_capability() if cpu else ""
    return "bf16" if "AVX512" in capability or "AMX" in capability else "fp32"


def autocast_context(device: torch.device, precision: str):
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def denormals_flushed() -> bool:
    """Whether this thread's CPU flushes denormal floats to zero now (no getter in torch)."""
    tiny = torch.tensor([1e-39], dtype=torch.float32)  # a float32 denormal
    return bool((tiny * 1.0).item() == 0.0)
