"""On-disk cache of tokenized features, so that a rerun does no tokenization.

Key. A cache entry is identified by everything that changes the features:

* the tokenizer's *content* (:func:`tokenizer_fingerprint`: a hash of its
  serialized ``tokenizer.json`` plus its special tokens, not its name, so an
  added token or a changed normalizer never reuses a stale entry);
* the featurizer's name and parameters (max length, doc stride, label list...);
* :data:`PREPROCESSING_VERSION`, bumped whenever featurization code changes
  what it produces;
* task, language and split;
* the source data's fingerprint (:func:`file_fingerprint` for local files,
  :func:`dataset_fingerprint` for a Hugging Face ``datasets.Dataset``,
  :func:`examples_fingerprint` for examples built in memory).

The SHA-256 of the canonical JSON of the key names the file
``cache_root()/features/<task>/<lang>/<split>-<digest>.npz``; the full key is
stored inside and checked on load, so a mismatch is a miss, never a wrong hit.

Format. One uncompressed ``.npz`` per entry, columnar: for each field of the
feature record, a ragged array field (``input_ids``, ``labels``, ``offsets``...)
is stored as one concatenated int32 array ``<field>.values`` plus int64 row
boundaries ``<field>.offsets``; an int field is one int64 column; a field that
is ``None`` on every row is listed in the metadata. Loading is a handful of
array reads (``allow_pickle=False``: a cache file cannot execute code) and the
records it returns hold zero-copy views into those arrays.

Writes are atomic: the file is written under a temporary name in the same
directory, flushed to disk and renamed into place, so a run killed mid-write
leaves either no entry or a complete one. A corrupt or unreadable entry is
treated as a miss and rebuilt.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from xstilts import paths
from xstilts.data.featurize.base import FEATURE_TYPES, Featurizer

log = logging.getLogger(__name__)

#: Bump when any featurizer changes its output for the same inputs and settings.
PREPROCESSING_VERSION = 1

#: Bump when the on-disk layout below changes.
CACHE_FORMAT = "xstilts-features-npz-v1"

_META = "__meta__"


def _sha256_json(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, ensure_ascii=False).encode("utf-8")).hexdigest()


def _backend_digest(serialized: str) -> str:
    """SHA-256 of a ``tokenizers`` JSON serialization minus its truncation and padding state.

    Parsing and re-dumping the whole file (a 250k-piece vocabulary) takes about
    a second, so the fast path hashes the text as is: ``tokenizers`` writes the
    top-level keys in a fixed order, ``version``, ``truncation`` and ``padding``
    first, and only that small head is parsed to drop the two call-time sections.
    """
    marker = ',"added_tokens":'
    cut = serialized.find(marker)
    if cut > 0:
        try:
            head = json.loads(serialized[:cut] + "}")
        except json.JSONDecodeError:
            head = None
        if isinstance(head, dict) and set(head) == {"version", "truncation", "padding"}:
            digest = hashlib.sha256(json.dumps(head["version"]).encode("utf-8"))
            digest.update(serialized[cut:].encode("utf-8"))
            return digest.hexdigest()
    parsed = json.loads(serialized)  # another layout: the slow, order-independent way
    parsed.pop("truncation", None)
    parsed.pop("padding", None)
    return _sha256_json(parsed)


def tokenizer_fingerprint(tokenizer: Any) -> str:
    """SHA-256 of what makes the tokenizer tokenize the way it does.

    For a fast tokenizer: its ``backend_tokenizer.to_str()`` (vocabulary, merges,
    normalizer, pre-tokenizer, post-processor, added tokens) without the
    ``truncation``/``padding`` sections, which transformers rewrites on every
    call; plus the class and the special tokens and truncation side the Python
    wrapper applies on top. A slow tokenizer falls back to its full vocabulary.
    """
    backend = getattr(tokenizer, "backend_tokenizer", None)
    content: Any
    if backend is not None:
        content = _backend_digest(backend.to_str())
    else:
        content = sorted(tokenizer.get_vocab().items())
    return _sha256_json({
        "class": type(tokenizer).__name__,
        "content": content,
        "special_tokens": {k: str(v) for k, v in sorted(tokenizer.special_tokens_map.items())},
        "truncation_side": getattr(tokenizer, "truncation_side", "right"),
    })


def file_fingerprint(*files: str | os.PathLike[str]) -> str:
    """SHA-256 over the bytes of ``files`` in the given order (names are not part of it)."""
    digest = hashlib.sha256()
    for path in files:
        file_digest = hashlib.sha256()
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                file_digest.update(block)
        digest.update(file_digest.digest())
    return digest.hexdigest()


def dataset_fingerprint(dataset: Any) -> str:
    """The fingerprint ``datasets`` tracks for a ``Dataset`` (it changes with every transform)."""
    fingerprint = getattr(dataset, "_fingerprint", None)
    if not fingerprint:
        raise ValueError(f"{type(dataset).__name__} has no datasets fingerprint")
    return f"datasets:{fingerprint}"


def examples_fingerprint(examples: Iterable[Any]) -> str:
    """SHA-256 of the examples' ``repr`` (type, field names and values), for examples built in memory.

    The example classes are frozen dataclasses of strings, ints and tuples, whose
    ``repr`` is complete and deterministic (no addresses, no set ordering).
    """
    digest = hashlib.sha256()
    batch: list[str] = []
    for ex in examples:
        batch.append(repr(ex))
        if len(batch) == 4096:
            digest.update("\0".join(batch).encode("utf-8", "surrogatepass") + b"\0")
            batch = []
    digest.update("\0".join(batch).encode("utf-8", "surrogatepass"))
    return digest.hexdigest()


@dataclass(frozen=True)
class FeatureCacheKey:
    """Everything that determines a list of features; see the module docstring."""

    task: str
    lang: str
    split: str
    source_fingerprint: str
    tokenizer_fingerprint: str
    featurizer: str
    params: Mapping[str, Any] = field(default_factory=dict)
    version: int = PREPROCESSING_VERSION

    def as_dict(self) -> dict[str, Any]:
        return {
            "task": self.task, "lang": self.lang, "split": self.split,
            "source_fingerprint": self.source_fingerprint,
            "tokenizer_fingerprint": self.tokenizer_fingerprint,
            "featurizer": self.featurizer, "params": json.loads(json.dumps(dict(self.params))),
            "version": self.version, "format": CACHE_FORMAT,
        }

    def digest(self) -> str:
        return _sha256_json(self.as_dict())

    def path(self, root: Path | None = None) -> Path:
        """Where this entry lives under ``root`` (default ``cache_root()/features``)."""
        root = Path(root) if root is not None else paths.cache_root() / "features"
        for part in (self.task, self.lang, self.split):
            if not part or "/" in part or "\\" in part or part.startswith("."):
                raise ValueError(f"invalid cache key part {part!r}")
        return root / self.task / self.lang / f"{self.split}-{self.digest()[:24]}.npz"


def _encode(features: Sequence[Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Columnar arrays and metadata for a homogeneous list of feature records."""
    types = {type(f) for f in features}
    if len(types) > 1:
        raise TypeError(f"features of several types: {sorted(t.__name__ for t in types)}")
    record_type = types.pop() if types else None
    arrays: dict[str, np.ndarray] = {}
    meta: dict[str, Any] = {"type": record_type.__name__ if record_type else None,
                            "count": len(features), "none_fields": []}
    if record_type is None:
        return arrays, meta
    for f_ in dataclasses.fields(record_type):
        values = [getattr(f, f_.name) for f in features]
        if all(v is None for v in values):
            meta["none_fields"].append(f_.name)
        elif all(isinstance(v, np.ndarray) for v in values):
            arrays[f"{f_.name}.values"] = np.concatenate(values)
            arrays[f"{f_.name}.offsets"] = np.concatenate(
                [[0], np.cumsum([len(v) for v in values])]).astype(np.int64)
        elif all(isinstance(v, (int, np.integer)) for v in values):
            arrays[f_.name] = np.asarray(values, dtype=np.int64)
        else:
            raise TypeError(f"{record_type.__name__}.{f_.name}: expected all ints, all arrays or "
                            "all None to cache")
    return arrays, meta


def _decode(arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> list[Any]:
    if meta["type"] is None:
        return []
    record_type = FEATURE_TYPES[meta["type"]]
    n = meta["count"]
    columns: dict[str, Any] = {}
    for f_ in dataclasses.fields(record_type):
        if f_.name in meta["none_fields"]:
            columns[f_.name] = [None] * n
        elif f"{f_.name}.values" in arrays:
            values, offsets = arrays[f"{f_.name}.values"], arrays[f"{f_.name}.offsets"].tolist()
            columns[f_.name] = [values[offsets[i]:offsets[i + 1]] for i in range(n)]
        else:
            columns[f_.name] = arrays[f_.name].tolist()
    # columns are in field order, so rows can be passed positionally (faster than keywords)
    return [record_type(*row) for row in zip(*columns.values())]


def save_features(path: str | os.PathLike[str], features: Sequence[Any], key: Mapping[str, Any]) -> None:
    """Write ``features`` (one record type) to ``path`` atomically, with ``key`` as metadata."""
    path = Path(path)
    arrays, meta = _encode(features)
    meta["key"] = dict(key)
    arrays[_META] = np.array(json.dumps(meta, ensure_ascii=False))
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            np.savez(fh, **arrays)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The metadata of a cache file (record type, count, key) without decoding features."""
    with np.load(path, allow_pickle=False) as data:
        return json.loads(str(data[_META]))


def load_features(path: str | os.PathLike[str]) -> tuple[list[Any], dict[str, Any]]:
    """Features and metadata from a file written by :func:`save_features`."""
    with np.load(path, allow_pickle=False) as data:
        arrays = {name: data[name] for name in data.files}
    meta = json.loads(str(arrays.pop(_META)))
    return _decode(arrays, meta), meta


def cached_features(key: FeatureCacheKey, build: Callable[[], Sequence[Any]], *,
                    root: Path | None = None) -> list[Any]:
    """The features for ``key`` from disk, or ``build()`` them and store them first."""
    path = key.path(root)
    if path.exists():
        try:
            features, meta = load_features(path)
            if meta.get("key") == key.as_dict():
                log.debug("feature cache hit: %s", path)
                return features
            log.warning("feature cache %s holds another key; rebuilding", path)
        except Exception as err:  # a truncated or foreign file is a miss, not a crash
            log.warning("feature cache %s unreadable (%s); rebuilding", path, err)
    features = list(build())
    save_features(path, features, key.as_dict())
    log.info("feature cache written: %s (%d features)", path, len(features))
    return features


def cached_featurize(featurizer: Featurizer, examples: Sequence[Any] | Callable[[], Sequence[Any]], *,
                     task: str, lang: str, split: str, source_fingerprint: str,
                     root: Path | None = None) -> list[Any]:
    """``featurizer(examples)`` through the cache.

    ``examples`` may be a zero-argument callable, called only on a miss, so a
    hit skips loading the examples too.
    """
    key = FeatureCacheKey(task=task, lang=lang, split=split, source_fingerprint=source_fingerprint,
                          tokenizer_fingerprint=tokenizer_fingerprint(featurizer.tokenizer),
                          featurizer=featurizer.name, params=featurizer.params())
    return cached_features(key, lambda: featurizer(examples() if callable(examples) else examples),
                           root=root)
