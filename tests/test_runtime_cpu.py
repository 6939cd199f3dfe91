"""Whether bf16 is used: native bf16 flags in /proc/cpuinfo, or the XSTILTS_BF16 override."""
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
