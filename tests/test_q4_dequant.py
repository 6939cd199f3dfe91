"""Q4_0 dequantization against values worked out by hand from the block layout."""
import struct

import numpy as np
import pytest

from xstilts.encoders.q4 import dequantize_q4_0, q4_0_nbytes


def block(scale: float, qs: list[int]) -> bytes:
    assert len(qs) == 16
    return struct.pack("<e", scale) + bytes(qs)


def test_positive_scale_low_nibbles_first_half_high_nibbles_second_half():
    # qs[0] = 0x9A: low nibble 0xA=10 -> (10-8)*0.5 = 1.0 at element 0,
    #               high nibble 0x9=9 -> (9-8)*0.5 = 0.5 at element 16.
    # qs[15] = 0x08: low 8 -> 0.0 at element 15; high 0 -> (0-8)*0.5 = -4.0 at element 31.
    qs = [0x9A] + [0x88] * 14 + [0x08]
    out = dequantize_q4_0(block(0.5, qs), 1, 32)
    expected = np.zeros(32, dtype=np.float32)
    expected[0], expected[16], expected[15], expected[31] = 1.0, 0.5, 0.0, -4.0
    np.testing.assert_array_equal(out[0], expected)


def test_negative_scale_flips_signs():
    # d = -0.25; qs[3] = 0xF1: element 3 = (1-8)*-0.25 = 1.75; element 19 = (15-8)*-0.25 = -1.75
    qs = [0x88] * 16
    qs[3] = 0xF1
    out = dequantize_q4_0(block(-0.25, qs), 1, 32)[0]
    assert out[3] == pytest.approx(1.75)
    assert out[19] == pytest.approx(-1.75)
    assert np.count_nonzero(out) == 2


def test_rows_and_blocks_are_row_major():
    # 2 rows x 64 cols = 4 blocks; block k has scale k+1 and all codes 9 (value +1*scale).
    raw = b"".join(block(float(k + 1), [0x99] * 16) for k in range(4))
    out = dequantize_q4_0(raw, 2, 64)
    np.testing.assert_array_equal(out[0, :32], 1.0)
    np.testing.assert_array_equal(out[0, 32:], 2.0)
    np.testing.assert_array_equal(out[1, :32], 3.0)
    np.testing.assert_array_equal(out[1, 32:], 4.0)


def test_size_checks():
    assert q4_0_nbytes(3, 64) == 3 * 2 * 18
    with pytest.raises(ValueError, match="divisible by 32"):
        q4_0_nbytes(1, 30)
    with pytest.raises(ValueError, match="needs 18 bytes"):
        dequantize_q4_0(b"\0" * 17, 1, 32)
