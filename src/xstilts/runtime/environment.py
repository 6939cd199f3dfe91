"""The exact environment a run ran in: packages, torch build, CPU model and the flags that matter.

Logged by the run store as ``environment.json`` on every run it starts, so that a
number in a run can be tied to the machine and versions that produced it (speed
differs by a factor of several between an AMX Xeon and an AVX2-only CPU; scores
can move with a library version). Collected once per process.
"""
from __future__ import annotations

import functools
import platform
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

#: CPU flags that decide which kernels run (bf16 and int8 matmuls above all).
CPU_FLAGS = ("avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx512_bf16", "avx_vnni",
             "amx_tile", "amx_bf16", "amx_int8")

ENVIRONMENT_ARTIFACT = "environment.json"


def cpu_info(cpuinfo: str | None = None) -> dict[str, Any]:
    """Model name, logical CPUs and which of :data:`CPU_FLAGS` the CPU has (from /proc/cpuinfo)."""
    if cpuinfo is None:
        path = Path("/proc/cpuinfo")
        cpuinfo = path.read_text() if path.is_file() else ""
    model, flags = platform.processor() or platform.machine(), set()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            model = value.strip()
        elif key.strip() == "flags" and not flags:
            flags = set(value.split())
    return {"model": model, "logical_cpus": cpuinfo.count("processor\t:") or None,
            "flags": {f: f in flags for f in CPU_FLAGS}}


def torch_build() -> dict[str, Any]:
    import torch

    return {"version": torch.__version__, "cuda": torch.version.cuda, "threads": torch.get_num_threads(),
            "mkldnn": torch.backends.mkldnn.is_available(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "config": torch.__config__.show()}


def packages() -> dict[str, str]:
    """Every installed distribution and its version, sorted by name."""
    found = {(d.metadata["Name"] or "").lower(): d.version for d in metadata.distributions()}
    return dict(sorted((k, v) for k, v in found.items() if k))


@functools.lru_cache(maxsize=1)
def describe_environment() -> dict[str, Any]:
    """Python, platform, CPU, torch build and package versions of this process."""
    return {"python": sys.version, "executable": sys.executable, "platform": platform.platform(),
            "cpu": cpu_info(), "torch": torch_build(), "packages": packages()}
