"""CPU execution settings: threads and whether bf16 compute pays off here."""
from __future__ import annotations

import functools
import os

from xstilts.errors import XstiltsError

#: the ``--threads`` option's help, the same on every command that trains or embeds
THREADS_HELP = "Torch threads (default: OMP_NUM_THREADS when set, else all available cores)."


def thread_budget() -> int | None:
    """The threads a process was told to use: ``OMP_NUM_THREADS`` (None when unset).

    Where several processes share the cores (two test workers, jobs on a shared node) each is
    given a share this way; threads beyond the cores make OpenMP's waiting threads spin against
    each other: on a 2-core Zen 4 EPYC the full Tatoeba check took 168 s in a test run alone and
    562 s beside a second test worker, each with two threads."""
    value = os.environ.get("OMP_NUM_THREADS", "").strip()
    if not value:
        return None
    try:
        n = int(value.split(",")[0])  # OpenMP allows a list per nesting level; the first is ours
    except ValueError:
        n = 0
    if n <= 0:
        raise XstiltsError(f"OMP_NUM_THREADS={value!r}: expected a positive number of threads")
    return n


def usable_cores() -> int:
    """The cores this process may run on (its affinity; a container's CPU quota is not read)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def cpu_threads() -> int:
    """The threads to use by default: ``OMP_NUM_THREADS`` when set, else :func:`usable_cores`."""
    return thread_budget() or usable_cores()


def set_threads(n: int | None = None) -> int:
    """Use ``n`` intra-op threads (default: :func:`cpu_threads`)."""
    import torch

    if n is None or n <= 0:
        n = cpu_threads()
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
