"""Keep base encoders and tokenizers loaded across the jobs of one process.

A grid loads the same base encoder for every model it trains or evaluates (a
target starts from it, every stored model rebuilds on it) and the same
tokenizer for every phase. Reading and constructing them again each time is
pure overhead, so the first load of a local directory is kept here and later
loads get:

* the encoder: a deep copy of the pristine loaded module (callers train it, so
  they never share one), byte-identical to a fresh ``from_pretrained``;
* the tokenizer: the loaded object itself (tokenizing does not change it;
  transformers sets truncation and padding on every call).

An encoder's key is the resolved directory, the layer cut, and the size and
modification time of every file in the directory, so a directory rewritten in
place (a re-converted default encoder) is loaded afresh; a tokenizer's is the
content of its files (a stored model's tokenizer folder is a byte copy of its
base's). Hub ids (no local
directory) are not cached here: transformers' own cache serves them.
"""
from __future__ import annotations

import copy
import hashlib
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

_lock = threading.Lock()
_encoders: dict[tuple, Any] = {}
_tokenizers: dict[tuple, Any] = {}
#: Encoders kept at most (each a full fp32 copy: ~470 MB for the default).
MAX_ENCODERS = 2


def directory_stamp(path: str) -> tuple | None:
    """(name, size, mtime) of every file in ``path``; None when it is not a local directory."""
    p = Path(path)
    if not p.is_dir():
        return None
    return tuple(sorted((f.name, f.stat().st_size, f.stat().st_mtime_ns) for f in p.iterdir() if f.is_file()))


def cached_encoder(resolved: str, num_hidden_layers: int | None, load: Callable[[], Any]):
    """A fresh copy of the encoder ``load()`` builds from ``resolved`` (loaded once per process)."""
    stamp = directory_stamp(resolved)
    if stamp is None:
        return load()
    key = (str(Path(resolved).resolve()), num_hidden_layers, stamp)
    with _lock:
        pristine = _encoders.get(key)
    if pristine is None:
        pristine = load()
        with _lock:
            if len(_encoders) >= MAX_ENCODERS:
                _encoders.pop(next(iter(_encoders)))
            _encoders[key] = pristine
    return copy.deepcopy(pristine)


def tokenizer_digest(path: str) -> str | None:
    """SHA-256 over the names and bytes of the tokenizer files in ``path`` (None: not a directory).

    What ``AutoTokenizer`` reads: the tokenizer files, and ``config.json`` as well when
    ``tokenizer_config.json`` does not name the tokenizer class (it is then looked up there)."""
    import json

    from xstilts.models.persist import TOKENIZER_FILES

    p = Path(path)
    if not p.is_dir():
        return None
    names = [n for n in TOKENIZER_FILES if (p / n).is_file()]
    try:
        named = "tokenizer_class" in json.loads((p / "tokenizer_config.json").read_text())
    except (OSError, ValueError):
        named = False
    if not named and (p / "config.json").is_file():
        names.append("config.json")
    digest = hashlib.sha256()
    for name in sorted(names):
        digest.update(name.encode() + b"\0" + hashlib.sha256((p / name).read_bytes()).digest())
    return digest.hexdigest()


def cached_tokenizer(resolved: str, load: Callable[[], Any]):
    """The tokenizer ``load()`` reads from ``resolved``, read once per process for the same files.

    Keyed by the files' content, not the directory: every stored model carries a byte copy
    of its base's tokenizer files, so all of them share the one already loaded (as a
    shallow copy whose ``name_or_path`` is ``resolved``)."""
    digest = tokenizer_digest(resolved)
    if digest is None:
        return load()
    key = ("content", digest)
    with _lock:
        found = _tokenizers.get(key)
    if found is None:
        found = load()
        with _lock:
            _tokenizers[key] = found
    if str(getattr(found, "name_or_path", resolved)) != str(resolved):
        found = _renamed(found, str(resolved))
    return found


def _renamed(tokenizer, path: str):
    """A shallow copy of ``tokenizer`` (same vocabulary and backend) that says it was read from
    ``path``: a model's tokenizer names the model's folder, and files are copied from there."""
    other = copy.copy(tokenizer)
    other.name_or_path = path
    if isinstance(getattr(other, "init_kwargs", None), dict):
        other.init_kwargs = dict(other.init_kwargs, name_or_path=path)
    return other


def clear() -> None:
    """Forget every kept encoder and tokenizer (tests; freeing memory)."""
    with _lock:
        _encoders.clear()
        _tokenizers.clear()
