"""What a result was computed on, recorded beside it.

A training run is bit-identical only on the same kernels: the same CPU capability that torch
dispatches (``AVX2``, ``AVX512``, ...), the same MKL and oneDNN builds and the instruction sets
they pick, the same number of threads, the same device and torch. On another CPU the per-seed
numbers move (docs/benchmark.md, "What a rerun reproduces"), so every result file names the
machine, and ``numerics_key`` says whether two records promise the same bits.
"""
from __future__ import annotations

import os
import platform
import re
import sys
from pathlib import Path
from typing import Any

import torch

#: Environment variables that change which kernels run (and so the numbers), recorded when set.
KERNEL_PINS = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")

#: The CPU flags that decide which vector kernels MKL, oneDNN and ATen may pick.
SIMD_FLAGS = ("sse4_2", "avx", "fma", "avx2", "avx_vnni", "avx512f", "avx512bw", "avx512vl", "avx512_vnni",
              "avx512_bf16", "avx512_fp16", "amx_tile")

#: The fields of a record that decide the bits of a computation (the rest describe, not decide).
NUMERICS_FIELDS = ("cpu_model", "cpu_id", "cpu_simd", "cpu_capability", "mkl", "onednn", "pins", "threads", "device", "torch")


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of ``/proc/cpuinfo`` (empty off Linux)."""
    cpuinfo = Path("/proc/cpuinfo")
    fields: dict[str, str] = {}
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if not line.strip():
                break
            key, _, value = line.partition(":")
            fields[key.strip()] = value.strip()
    return fields


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux), else what ``platform`` knows."""
    info = _cpuinfo()
    return info.get("model name") or platform.processor() or platform.machine() or "unknown"


def cpu_id() -> str | None:
    """Vendor, family, model and stepping: a virtual machine often names only ``AMD EPYC``, which
    covers CPUs with and without AVX512."""
    info = _cpuinfo()
    if "vendor_id" not in info:
        return None
    return " ".join(f"{k} {info[k]}" if k != "vendor_id" else info[k]
                    for k in ("vendor_id", "cpu family", "model", "stepping") if k in info)


def cpu_simd() -> list[str] | None:
    """Which of ``SIMD_FLAGS`` the CPU has (None where ``/proc/cpuinfo`` is missing)."""
    flags = _cpuinfo().get("flags")
    return [f for f in SIMD_FLAGS if f in flags.split()] if flags is not None else None


def _build_version(pattern: str) -> str | None:
    match = re.search(pattern, torch.__config__.show())
    return match.group(1) if match else None


def machine_record(threads: int | None = None, device: str | torch.device | None = None) -> dict[str, Any]:
    """The machine this process computes on, as JSON-ready fields.

    ``threads``: torch's intra-op threads (default: ``torch.get_num_threads()`` now); ``device``:
    where the model runs (default ``cpu``; a CUDA device adds its name).
    """
    device = torch.device(device if device is not None else "cpu")
    record: dict[str, Any] = {
        "cpu_model": cpu_model(),
        "cpu_id": cpu_id(),
        "cpu_simd": cpu_simd(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkl": _build_version(r"Math Kernel Library Version ([\d.]+)") if torch.backends.mkl.is_available() else None,
        "onednn": _build_version(r"MKL-DNN v(\S+)") if torch.backends.mkldnn.is_available() else None,
        "pins": {name: os.environ[name] for name in KERNEL_PINS if name in os.environ},
        "threads": threads if threads is not None else torch.get_num_threads(),
        "device": str(device),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": f"{sys.platform}-{platform.machine()}",
    }
    if device.type == "cuda" and torch.cuda.is_available():
        record["gpu"] = torch.cuda.get_device_name(device)
    return record


def numerics_key(record: dict[str, Any] | None) -> tuple | None:
    """What two runs must share to be bit-identical; None for a record that is missing."""
    if not record:
        return None
    return tuple((field, repr(record.get(field))) for field in NUMERICS_FIELDS + (("gpu",) if "gpu" in record else ()))


def describe(record: dict[str, Any] | None) -> str:
    """One line for a table's caption: ``AMD EPYC, torch 2.11.0 AVX2, MKL 2024.2, oneDNN 3.10.2, 1 thread, cpu``."""
    if not record:
        return "machine not recorded"
    pins = "".join(f", {k}={v}" for k, v in record.get("pins", {}).items())
    threads = record.get("threads")
    simd = record.get("cpu_simd")
    widest = f" ({simd[-1]})" if simd else ""
    return (f"{record.get('cpu_model')}{widest}, torch {record.get('torch')} {record.get('cpu_capability')}, "
            f"MKL {record.get('mkl')}, oneDNN {record.get('onednn')}{pins}, "
            f"{threads} thread{'' if threads == 1 else 's'}, {record.get('gpu') or record.get('device')}")
