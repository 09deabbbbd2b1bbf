"""Whether a device computes bf16 natively: CUDA with bf16 support, or a CPU with AVX512-BF16/AMX-BF16 units.

``train.bf16: auto`` and ``emergelab evaluate --dtype auto`` use bf16 only there: a CPU without bf16
units emulates it, 7–20× slower than fp32, while one with them is 1.35–1.6× faster at d_model ≥ 128
(docs/benchmarks.md).
"""
from __future__ import annotations

from pathlib import Path

import torch

#: /proc/cpuinfo flags of CPUs that compute bf16 natively (AVX-512 BF16 dot products, AMX tiles)
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_bf16_units(cpuinfo: Path = Path("/proc/cpuinfo")) -> list[str]:
    """The bf16 units this CPU reports: ``/proc/cpuinfo`` flags on Linux, else torch's own probe (the
    cpuinfo library its kernels dispatch on). Empty on CPUs that would emulate bf16."""
    try:
        flags = set(cpuinfo.read_text().split())
    except OSError:
        probe = getattr(torch.cpu, "_is_avx512_bf16_supported", None)  # private: absent in some versions
        return ["avx512_bf16"] if probe is not None and probe() else []
    return [f for f in CPU_BF16_FLAGS if f in flags]


def native_bf16(device: torch.device) -> tuple[bool, str]:
    """(whether ``device`` computes bf16 natively, the reason in a few words)."""
    if device.type == "cuda":
        ok = torch.cuda.is_bf16_supported()
        return ok, f"CUDA device {torch.cuda.get_device_name(device)} {'supports' if ok else 'lacks'} bf16"
    if device.type == "cpu":
        units = cpu_bf16_units()
        if units:
            return True, f"this CPU computes bf16 natively ({', '.join(units)})"
        return False, "this CPU has no bf16 units (no avx512_bf16 or amx_bf16 flag), so fp32 is faster"
    return False, f"bf16 is not known to be native on {device.type}"
