"""Reading text files for the format readers: gzip, UTF-8 and emptiness checks in one place.

Every reader goes through :func:`read_lines` so that a truncated gzip stream, a byte
sequence that is not UTF-8 or an empty file is reported the same way, naming the file
and (for decoding errors) the line.
"""
from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from xstilts.errors import DataFormatError

PathLike = str | Path


def read_bytes(path: PathLike) -> bytes:
    """The file's bytes, decompressed when the name ends in ``.gz``."""
    path = Path(path)
    raw = path.read_bytes()
    if path.name.endswith(".gz"):
        try:
            return gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataFormatError(path, "a valid gzip stream", got=str(exc)) from None
    return raw


def read_text(path: PathLike) -> str:
    """The whole file as text; invalid UTF-8 and empty files raise :class:`DataFormatError`."""
    data = read_bytes(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        bad = data[exc.start:exc.end].hex(" ")
        raise DataFormatError(path, "UTF-8 text", line=line, got=f"invalid byte(s) {bad}") from None
    if text.startswith("\ufeff"):  # a BOM is legal UTF-8 but would end up in the first field
        text = text[1:]
    if not text.strip():
        raise DataFormatError(path, "a non-empty file", got="no data")
    return text


def read_lines(path: PathLike) -> list[str]:
    """Lines without their line endings (``\\r\\n`` tolerated)."""
    return [ln.rstrip("\r") for ln in read_text(path).split("\n")]


def numbered(lines: Sequence[str], start: int = 1) -> Iterator[tuple[int, str]]:
    """``(1-based line number, line)`` pairs, skipping nothing."""
    return enumerate(lines, start=start)


def check_label(path: PathLike, label: str, labels: Sequence[str] | None, *, line: int | None = None,
                record: str | None = None) -> str:
    """Return ``label`` if it is in ``labels`` (or ``labels`` is None), else raise."""
    if labels is not None and label not in labels:
        raise DataFormatError(path, f"a label in {{{', '.join(labels)}}}", line=line, record=record,
                              got=repr(label))
    return label
