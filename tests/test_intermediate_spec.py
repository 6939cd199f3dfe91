"""Intermediate specs: size matching, same items in parallel data, seeded language draws, hash."""
from __future__ import annotations

from collections import Counter

import pytest

from xstilts.data.intermediate_spec import (IntermediateSpec, LanguageSource, allocate, build_examples,
                                            english_spec, matched_multilingual)
from xstilts.data.loading import load_examples
from xstilts.errors import UnknownNameError, XstiltsError

XNLI_LANGS = ("ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh")


@pytest.fixture(scope="module")
def xnli_dev() -> dict[str, list]:
    return {lang: load_examples("xnli", lang, "dev") for lang in XNLI_LANGS}


def _specs(include_english: bool = True) -> tuple[IntermediateSpec, IntermediateSpec]:
    en = english_spec("xnli", 2000, split="dev", seed=3, kind="human_translated_parallel")
    multi = matched_multilingual(en, {lang: 1.0 for lang in XNLI_LANGS}, kind="human_translated_parallel",
                                 include_english=include_english)
    return en, multi


def test_parallel_same_items_only_language_differs(xnli_dev: dict[str, list]) -> None:
    en_spec, multi_spec = _specs()
    assert multi_spec.size == en_spec.size and multi_spec.is_parallel
    en = build_examples(en_spec, xnli_dev)
    multi = build_examples(multi_spec, xnli_dev)
    assert len(en) == len(multi) == 2000
    # Same items: the XTREME dev files are line-aligned translations, so the position of
    # each example in its language's list identifies the item; labels must agree too.
    pos = {lang: {id(ex): i for i, ex in enumerate(xnli_dev[lang])} for lang in XNLI_LANGS}
    en_items = [pos["en"][id(ex)] for ex in en]
    multi_items = [pos[ex.lang][id(ex)] for ex in multi]
    assert en_items == multi_items
    assert [ex.label for ex in en] == [ex.label for ex in multi]
    counts = Counter(ex.lang for ex in multi)
    assert set(counts) == set(XNLI_LANGS)
    assert all(abs(c - 2000 / 15) < 50 for c in counts.values())  # uniform weights: ~133 each


def test_english_can_be_left_out(xnli_dev: dict[str, list]) -> None:
    _, multi_spec = _specs(include_english=False)
    assert not multi_spec.includes_english
    assert "en" not in {ex.lang for ex in build_examples(multi_spec, xnli_dev)}


def test_weights_steer_the_draw(xnli_dev: dict[str, list]) -> None:
    en_spec = english_spec("xnli", 1000, split="dev", kind="human_translated_parallel")
    spec = matched_multilingual(en_spec, {"sw": 9.0, "ur": 1.0}, kind="human_translated_parallel",
                                include_english=False)
    counts = Counter(ex.lang for ex in build_examples(spec, xnli_dev))
    assert 850 < counts["sw"] < 950 and counts["sw"] + counts["ur"] == 1000


def test_seeded_and_reproducible(xnli_dev: dict[str, list]) -> None:
    _, a = _specs()
    assert build_examples(a, xnli_dev) == build_examples(a, xnli_dev)
    other = IntermediateSpec(a.task, a.languages, a.size, seed=4)
    assert build_examples(other, xnli_dev) != build_examples(a, xnli_dev)


def test_stable_hash() -> None:
    en_spec, multi_spec = _specs()
    again, _ = _specs()
    assert en_spec.stable_hash() == again.stable_hash() and len(en_spec.stable_hash()) == 16
    assert en_spec.stable_hash() != multi_spec.stable_hash()
    assert IntermediateSpec("xnli", en_spec.languages, 2001, 3).stable_hash() != en_spec.stable_hash()


def test_non_parallel_allocation_matches_size() -> None:
    assert allocate(10, {"a": 1 / 3, "b": 1 / 3, "c": 1 / 3}) == {"a": 4, "b": 3, "c": 3}
    assert sum(allocate(2490, {lang: 1 / 15 for lang in XNLI_LANGS}).values()) == 2490
    pool = {"en": load_examples("sst2", "en", "dev")}
    spec = english_spec("sst2", 300, split="dev")
    out = build_examples(spec, pool)
    assert len(out) == 300 and len({ex.guid for ex in out}) == 300


def test_validation_errors() -> None:
    with pytest.raises(UnknownNameError, match="valid choices"):
        IntermediateSpec("xnli", (LanguageSource("xx"),), 10)
    with pytest.raises(XstiltsError, match="size must be positive"):
        english_spec("mnli", 0)
    with pytest.raises(XstiltsError, match="exceeds the 2490 parallel items"):
        build_examples(english_spec("xnli", 3000, split="dev", kind="human_translated_parallel"))
