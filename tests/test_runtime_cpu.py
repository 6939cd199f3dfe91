"""CPU settings: whether bf16 is used (native bf16 flags in /proc/cpuinfo, or the XSTILTS_BF16 override)
and how many threads (OMP_NUM_THREADS, else the usable cores)."""
from __future__ import annotations

import pytest

from xstilts.runtime import cpu


@pytest.fixture(autouse=True)
def fresh_detection():
    cpu.cpu_supports_bf16.cache_clear()
    yield
    cpu.cpu_supports_bf16.cache_clear()


@pytest.mark.parametrize("value,expected", [("0", False), ("1", True)])
def test_the_override_decides_auto_bf16(monkeypatch, value, expected):
    monkeypatch.setenv("XSTILTS_BF16", value)
    assert cpu.cpu_supports_bf16() is expected
    assert cpu.resolve_bf16(None) is expected
    assert cpu.resolve_bf16(not expected) is (not expected)  # an explicit config value still wins


def test_without_the_override_the_cpu_flags_decide(monkeypatch):
    monkeypatch.delenv("XSTILTS_BF16", raising=False)
    flags = open("/proc/cpuinfo").read()
    assert cpu.cpu_supports_bf16() is any(f in flags for f in (" avx512_bf16", " amx_bf16"))


@pytest.mark.parametrize("value,expected", [("3", 3), (" 1 ", 1), ("2,1", 2)])
def test_omp_num_threads_is_the_default_thread_count(monkeypatch, value, expected):
    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", value)
    saved = torch.get_num_threads()
    try:
        assert cpu.thread_budget() == expected and cpu.cpu_threads() == expected
        assert cpu.set_threads(None) == expected == torch.get_num_threads()
        assert cpu.set_threads(0) == expected and cpu.set_threads(5) == 5  # an explicit count still wins
    finally:
        torch.set_num_threads(saved)


def test_without_omp_num_threads_every_usable_core_is_used(monkeypatch):
    import os

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert cpu.thread_budget() is None
    assert cpu.cpu_threads() == cpu.usable_cores() == len(os.sched_getaffinity(0))


@pytest.mark.parametrize("value", ["0", "-2", "all", ","])
def test_a_bad_omp_num_threads_is_an_error_naming_it(monkeypatch, value):
    from xstilts.errors import XstiltsError

    monkeypatch.setenv("OMP_NUM_THREADS", value)
    with pytest.raises(XstiltsError, match=r"OMP_NUM_THREADS=.*expected a positive number of threads"):
        cpu.cpu_threads()


def test_onnx_runtime_and_the_server_take_the_same_share(monkeypatch):
    from xstilts.export.runtime import SessionSettings
    from xstilts.serving.commands import parallelism

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert SessionSettings().options().intra_op_num_threads == 1
    assert SessionSettings(intra_op_threads=3).options().intra_op_num_threads == 3
    assert parallelism(0, 0) == (1, 1)
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert SessionSettings().options().intra_op_num_threads == 0  # ONNX Runtime's own default
    assert parallelism(0, 0) == (min(cpu.usable_cores(), 4), max(1, cpu.usable_cores() // min(cpu.usable_cores(), 4)))
