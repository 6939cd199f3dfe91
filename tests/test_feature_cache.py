"""The on-disk feature cache: hits skip tokenization, any key change misses, writes are atomic."""
from __future__ import annotations

import copy
import dataclasses
import gzip
import json
import shutil

import numpy as np
import pytest

from xstilts.data import feature_cache
from xstilts.data.feature_cache import (
    PREPROCESSING_VERSION,
    _backend_digest,
    FeatureCacheKey,
    cached_featurize,
    dataset_fingerprint,
    examples_fingerprint,
    file_fingerprint,
    load_features,
    read_metadata,
    save_features,
    tokenizer_fingerprint,
)
from xstilts.data.featurize import (
    ClassificationFeaturizer,
    MultipleChoiceFeaturizer,
    SentenceFeaturizer,
    SpanQAFeaturizer,
    TaggingFeaturizer,
)
from xstilts.data.loading import load_examples, load_parallel, local_files
from xstilts.tasks import get_task

XNLI_LABELS = get_task("xnli").labels


def assert_same_features(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert type(x) is type(y)
        for f in dataclasses.fields(x):
            u, v = getattr(x, f.name), getattr(y, f.name)
            if isinstance(u, np.ndarray):
                assert isinstance(v, np.ndarray) and u.dtype == v.dtype and np.array_equal(u, v), f.name
            else:
                assert u == v, f.name


class Counting:
    """A featurizer wrapper that counts how often it tokenizes."""

    def __init__(self, inner):
        self.inner, self.calls = inner, 0
        self.name, self.tokenizer = inner.name, inner.tokenizer

    def params(self):
        return self.inner.params()

    def __call__(self, examples):
        self.calls += 1
        return self.inner(examples)


@pytest.fixture(scope="module")
def xnli():
    return load_examples("xnli", "en", "dev", max_examples=40)


@pytest.fixture(scope="module")
def xnli_source():
    return file_fingerprint(*local_files("xnli", "en", "dev"))


def _cached(featurizer, examples, root, source="src", **kw):
    return cached_featurize(featurizer, examples, task="xnli", lang="en", split="dev",
                            source_fingerprint=source, root=root, **kw)


def test_rerun_does_no_tokenization(xnli, xnli_source, xlmr_tokenizer, tmp_path):
    featurizer = Counting(ClassificationFeaturizer(xlmr_tokenizer, XNLI_LABELS, max_length=64))
    first = _cached(featurizer, xnli, tmp_path, xnli_source)
    assert featurizer.calls == 1
    loads = []

    def load():  # a hit must not even load the examples
        loads.append(1)
        return xnli

    second = _cached(featurizer, load, tmp_path, xnli_source)
    assert featurizer.calls == 1 and loads == []
    assert_same_features(first, second)
    (path,) = tmp_path.rglob("*.npz")
    assert path.parent == tmp_path / "xnli" / "en" and path.name.startswith("dev-")
    meta = read_metadata(path)
    assert meta["count"] == 40 and meta["type"] == "ClassificationFeature"
    assert meta["key"]["source_fingerprint"] == xnli_source
    assert meta["key"]["version"] == PREPROCESSING_VERSION


def test_default_location_is_under_cache_root(xnli, xlmr_tokenizer, tmp_path, monkeypatch):
    monkeypatch.setenv("XSTILTS_CACHE", str(tmp_path))
    featurizer = ClassificationFeaturizer(xlmr_tokenizer, XNLI_LABELS, max_length=64)
    cached_featurize(featurizer, xnli[:3], task="xnli", lang="en", split="dev", source_fingerprint="x")
    assert len(list((tmp_path / "features" / "xnli" / "en").glob("dev-*.npz"))) == 1


def test_added_token_never_reuses_a_stale_cache(xnli, xlmr_tokenizer, tmp_path):
    changed = copy.deepcopy(xlmr_tokenizer)
    # a word from the first XNLI premise ("And he said, Mama, I'm home.")
    assert "Mama" in xnli[0].text_a
    changed.add_tokens(["Mama"])
    assert tokenizer_fingerprint(changed) != tokenizer_fingerprint(xlmr_tokenizer)
    old = Counting(ClassificationFeaturizer(xlmr_tokenizer, XNLI_LABELS, max_length=64))
    new = Counting(ClassificationFeaturizer(changed, XNLI_LABELS, max_length=64))
    before = _cached(old, xnli, tmp_path)
    after = _cached(new, xnli, tmp_path)
    assert new.calls == 1
    assert len(changed) - 1 in after[0].input_ids.tolist()  # the new token's id
    assert before[0].input_ids.tolist() != after[0].input_ids.tolist()
    assert len(list(tmp_path.rglob("*.npz"))) == 2


def test_fingerprint_ignores_per_call_truncation_state(xlmr_tokenizer):
    before = tokenizer_fingerprint(xlmr_tokenizer)
    xlmr_tokenizer(["a b"], ["c d e f g h i j k l m n"], truncation="only_second", max_length=10,
                   stride=2, return_overflowing_tokens=True)
    assert tokenizer_fingerprint(xlmr_tokenizer) == before
    # the layout-independent fallback also ignores them, and sees everything else
    parsed = json.loads(xlmr_tokenizer.backend_tokenizer.to_str())
    parsed["model"]["vocab"] = parsed["model"]["vocab"][:50]  # keeps the JSON work small
    reference = _backend_digest(json.dumps(parsed, indent=1))
    parsed["truncation"] = {"direction": "Left", "max_length": 3, "strategy": "LongestFirst", "stride": 0}
    assert _backend_digest(json.dumps(parsed, indent=1)) == reference
    parsed["normalizer"] = None
    assert _backend_digest(json.dumps(parsed, indent=1)) != reference


def test_every_key_part_changes_the_entry(xlmr_tokenizer):
    base = FeatureCacheKey(task="xnli", lang="en", split="dev", source_fingerprint="s",
                           tokenizer_fingerprint=tokenizer_fingerprint(xlmr_tokenizer),
                           featurizer="classification", params={"max_length": 128})
    variants = [dataclasses.replace(base, **{k: v}) for k, v in [
        ("task", "pawsx"), ("lang", "sw"), ("split", "test"), ("source_fingerprint", "t"),
        ("tokenizer_fingerprint", "other"), ("featurizer", "tagging"),
        ("params", {"max_length": 256}), ("version", PREPROCESSING_VERSION + 1)]]
    paths = {base.path("/c")} | {v.path("/c") for v in variants}
    assert len(paths) == len(variants) + 1
    assert dataclasses.replace(base, params={"max_length": 128}).path("/c") == base.path("/c")
    with pytest.raises(ValueError):
        dataclasses.replace(base, lang="../x").path("/c")


def test_param_change_misses(xnli, xlmr_tokenizer, tmp_path):
    short = Counting(ClassificationFeaturizer(xlmr_tokenizer, XNLI_LABELS, max_length=16))
    long = Counting(ClassificationFeaturizer(xlmr_tokenizer, XNLI_LABELS, max_length=64))
    _cached(short, xnli, tmp_path)
    _cached(long, xnli, tmp_path)
    _cached(long, xnli, tmp_path, source="changed source")
    assert short.calls == 1 and long.calls == 2


def test_round_trip_every_family(xlmr_tokenizer, tmp_path):
    cases = [
        (TaggingFeaturizer(xlmr_tokenizer, get_task("panx").labels, max_length=16),
         load_examples("panx", "ar", "dev", max_examples=20)),
        (SpanQAFeaturizer(xlmr_tokenizer, max_length=128, doc_stride=32),
         load_examples("xquad", "zh", "test", max_examples=5)),
        (MultipleChoiceFeaturizer(xlmr_tokenizer, max_length=64),
         load_examples("commonsenseqa", "en", "dev", max_examples=5)),
        (SentenceFeaturizer(xlmr_tokenizer, max_length=32), load_parallel("tatoeba", "hi", "test").source[:20]),
    ]
    for featurizer, examples in cases:
        fresh = featurizer(examples)
        path = tmp_path / f"{featurizer.name}.npz"
        save_features(path, fresh, {"name": featurizer.name})
        loaded, meta = load_features(path)
        assert meta["key"] == {"name": featurizer.name} and meta["none_fields"] == ["token_type_ids"]
        assert_same_features(fresh, loaded)
    save_features(tmp_path / "empty.npz", [], {})
    assert load_features(tmp_path / "empty.npz")[0] == []


def test_interrupted_write_leaves_no_entry(xnli, xlmr_tokenizer, tmp_path, monkeypatch):
    features = ClassificationFeaturizer(xlmr_tokenizer, XNLI_LABELS)(xnli[:5])
    target = tmp_path / "xnli" / "dev.npz"

    def dying_savez(fh, **arrays):
        fh.write(b"PK\x03\x04 half a zip")
        raise KeyboardInterrupt  # as if the run were stopped mid-write

    monkeypatch.setattr(feature_cache.np, "savez", dying_savez)
    with pytest.raises(KeyboardInterrupt):
        save_features(target, features, {})
    assert list(target.parent.iterdir()) == []


def test_corrupt_or_foreign_entries_are_rebuilt(xnli, xlmr_tokenizer, tmp_path):
    featurizer = Counting(ClassificationFeaturizer(xlmr_tokenizer, XNLI_LABELS, max_length=64))
    good = _cached(featurizer, xnli, tmp_path)
    (path,) = tmp_path.rglob("*.npz")
    path.write_bytes(path.read_bytes()[:100])  # truncated
    assert_same_features(_cached(featurizer, xnli, tmp_path), good)
    assert featurizer.calls == 2
    other = tmp_path / "other.npz"
    save_features(other, good[:3], {"task": "something else"})
    shutil.copy(other, path)  # right name, wrong key inside
    assert len(_cached(featurizer, xnli, tmp_path)) == len(xnli)
    assert featurizer.calls == 3
    assert len(_cached(featurizer, xnli, tmp_path)) == len(xnli) and featurizer.calls == 3


def test_source_fingerprints(xnli, tmp_path, shared_data):
    raw = (shared_data / "xnli").glob("*")
    src = next(p for p in raw if p.name.endswith(".tsv.gz") or p.name.endswith(".tsv"))
    copy_path = tmp_path / src.name
    shutil.copy(src, copy_path)
    assert file_fingerprint(src) == file_fingerprint(copy_path)  # content, not the name
    data = gzip.decompress(copy_path.read_bytes()) if src.name.endswith(".gz") else copy_path.read_bytes()
    copy_path.write_bytes(data.replace(b"\t", b"\t ", 1))
    assert file_fingerprint(src) != file_fingerprint(copy_path)

    datasets = pytest.importorskip("datasets")
    rows = {"premise": [e.text_a for e in xnli], "hypothesis": [e.text_b for e in xnli],
            "label": [e.label for e in xnli]}
    ds = datasets.Dataset.from_dict(rows)
    assert dataset_fingerprint(ds).startswith("datasets:")
    assert dataset_fingerprint(ds.select(range(5))) != dataset_fingerprint(ds)

    assert examples_fingerprint(xnli) == examples_fingerprint(list(xnli))
    assert examples_fingerprint(xnli) != examples_fingerprint(
        [dataclasses.replace(xnli[0], label="contradiction")] + list(xnli[1:]))
