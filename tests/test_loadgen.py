"""The serving benchmarks' latency statistics (``benchmarks/loadgen.py``) on hand-worked cases."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "loadgen.py"
_SPEC = importlib.util.spec_from_file_location("loadgen", _PATH)
loadgen = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(loadgen)


def test_p99_of_400_is_the_396th_smallest():
    # nearest rank: ceil(0.99 x 400) = 396; four latencies lie above it
    values = [float(v) for v in range(400, 0, -1)]  # 1..400 in reverse: the function sorts
    assert loadgen.percentile(values, 99) == 396.0


def test_percentile_hand_worked_cases():
    assert loadgen.percentile([5.0], 99) == 5.0  # one value is every percentile
    assert loadgen.percentile([float(v) for v in range(1, 101)], 99) == 99.0  # ceil(99) = 99th
    assert loadgen.percentile([float(v) for v in range(1, 11)], 99) == 10.0  # ceil(9.9) = 10th
    assert loadgen.percentile([3.0, 1.0, 2.0], 50) == 2.0  # ceil(1.5) = 2nd
    assert loadgen.percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0  # ceil(2) = 2nd: at least half at or below
    assert loadgen.percentile([1.0, 2.0, 3.0, 4.0], 100) == 4.0


@pytest.mark.parametrize("values, p", [([], 99), ([1.0], 0), ([1.0], 101)])
def test_percentile_rejects_what_it_cannot_answer(values, p):
    with pytest.raises(ValueError, match="percentile"):
        loadgen.percentile(values, p)


def test_summary_in_milliseconds():
    out = loadgen.summary([0.010, 0.020, 0.030, 0.040], wall=0.5)
    assert out == {"rps": 8.0, "p50": 25.0, "p99": 40.0, "requests": 4}
