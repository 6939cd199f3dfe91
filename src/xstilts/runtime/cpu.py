"""CPU execution settings: threads and whether bf16 compute pays off here."""
from __future__ import annotations

import functools
import os


def set_threads(n: int | None = None) -> int:
    """Use ``n`` intra-op threads (default: the cores this process may run on)."""
    import torch

    if n is None or n <= 0:
        n = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    torch.set_num_threads(n)
    return n


@functools.lru_cache(maxsize=None)
def cpu_supports_bf16() -> bool:
    """True when the CPU has native bf16 matmul (AVX512-BF16 or AMX); else bf16 is emulated and slow.

    ``XSTILTS_BF16=0`` (or ``1``) overrides the detection, e.g. to run the fp32 path a CPU
    without native bf16 takes (with oneDNN/MKL limited to AVX2, an approximation of one)."""
    forced = os.environ.get("XSTILTS_BF16", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    try:
        flags = open("/proc/cpuinfo").read()
    except OSError:
        return False
    return any(f in flags for f in (" avx512_bf16", " amx_bf16"))


def resolve_bf16(setting: bool | None) -> bool:
    """``None`` means auto: bf16 exactly where the CPU supports it natively."""
    return cpu_supports_bf16() if setting is None else bool(setting)
