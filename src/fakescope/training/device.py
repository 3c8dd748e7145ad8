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
    return "bf16" if cpu_has_native_bf16() else "fp32"


def cpu_has_native_bf16() -> bool:
    """True where the CPU computes bf16 itself (AVX512_BF16 or AMX). torch's capability
    string says "AVX512" on any AVX-512 CPU, and bf16 emulated on one without AVX512_BF16
    trains 1.7x SLOWER than fp32 (2-core Xeon @ 2.80GHz, avx512f without avx512_bf16,
    tf_efficientnet_lite0 at 160 px, 2026-12-06)."""
    cpu = getattr(torch, "cpu", None)
    native = getattr(cpu, "_is_avx512_bf16_supported", None)
    amx = getattr(cpu, "_is_amx_tile_supported", None)
    if native is None or amx is None:  # a torch that cannot say: fp32, never slow bf16
        return False
    return bool(native() or amx())


def autocast_context(device: torch.device, precision: str):
    if precision == "fp32":
        return nullcontext()
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)


def denormals_flushed() -> bool:
    """Whether this thread's CPU flushes denormal floats to zero now (no getter in torch)."""
    tiny = torch.tensor([1e-39], dtype=torch.float32)  # a float32 denormal
    return bool((tiny * 1.0).item() == 0.0)
