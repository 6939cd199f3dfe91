"""Sentence(-pair) classification features on real XNLI and SST-2 rows."""
from __future__ import annotations

import dataclasses

import pytest

from xstilts.data.featurize import IGNORE_INDEX, FeaturizationError, featurize_classification
from xstilts.data.featurize.classification import ClassificationFeaturizer, collate
from xstilts.data.loading import load_examples
from xstilts.tasks import get_task

XNLI_LABELS = get_task("xnli").labels


@pytest.fixture(scope="module")
def xnli_dev():
    return load_examples("xnli", "en", "dev", max_examples=64)


def test_pairs_match_tokenizer_and_labels_map_to_task_list(xnli_dev, xlmr_tokenizer):
    features = featurize_classification(xnli_dev, xlmr_tokenizer, XNLI_LABELS, max_length=128)
    assert len(features) == len(xnli_dev)
    for i, (ex, f) in enumerate(zip(xnli_dev, features)):
        expected = xlmr_tokenizer(ex.text_a, ex.text_b, truncation=True, max_length=128)["input_ids"]
        assert f.input_ids.tolist() == expected
        assert f.label == list(XNLI_LABELS).index(ex.label)
        assert f.example_index == i
    # the first dev pair is "neutral" in the XNLI release
    assert xnli_dev[0].label == "neutral" and features[0].label == 1


def test_longest_first_truncation_trims_the_longer_segment(xnli_dev, xlmr_tokenizer):
    ex = max(xnli_dev, key=lambda e: len(e.text_a) + len(e.text_b))
    (f,) = featurize_classification([ex], xlmr_tokenizer, XNLI_LABELS, max_length=16)
    ids = f.input_ids.tolist()
    assert len(ids) == 16
    sep = xlmr_tokenizer.sep_token_id
    # <s> A </s></s> B </s>: both segments survive, the longer one is cut first
    first_sep = ids.index(sep)
    len_a, len_b = first_sep - 1, len(ids) - first_sep - 3
    full_a = len(xlmr_tokenizer(ex.text_a, add_special_tokens=False)["input_ids"])
    full_b = len(xlmr_tokenizer(ex.text_b, add_special_tokens=False)["input_ids"])
    assert len_a + len_b == 12 and len_a > 0 and len_b > 0
    assert (len_a >= len_b) == (full_a >= full_b)


def test_single_sentences_and_pairs_keep_their_order(xnli_dev, xlmr_tokenizer):
    sst = load_examples("sst2", "en", "dev", max_examples=8)
    mixed = [x for pair in zip(sst, xnli_dev[:8]) for x in pair]
    labels = ["entailment", "neutral", "contradiction", "0", "1"]
    features = featurize_classification(mixed, xlmr_tokenizer, labels, max_length=64)
    for ex, f in zip(mixed, features):
        expected = xlmr_tokenizer(ex.text_a, ex.text_b, truncation=True, max_length=64)["input_ids"]
        assert f.input_ids.tolist() == expected
        assert labels[f.label] == ex.label


def test_unlabelled_and_unknown_labels(xnli_dev, xlmr_tokenizer):
    unlabelled = dataclasses.replace(xnli_dev[0], label=None)
    (f,) = featurize_classification([unlabelled], xlmr_tokenizer, XNLI_LABELS)
    assert f.label == IGNORE_INDEX
    bad = dataclasses.replace(xnli_dev[3], label="maybe")
    with pytest.raises(FeaturizationError, match=rf"example {bad.guid}: unknown label 'maybe'"):
        featurize_classification([xnli_dev[0], bad], xlmr_tokenizer, XNLI_LABELS)


def test_collate_pads_to_longest_in_batch(xnli_dev, xlmr_tokenizer):
    features = ClassificationFeaturizer(xlmr_tokenizer, XNLI_LABELS, max_length=128)(xnli_dev[:5])
    pad = xlmr_tokenizer.pad_token_id
    batch = collate(features, pad)
    longest = max(len(f.input_ids) for f in features)
    assert batch["input_ids"].shape == (5, longest)
    for row, f in enumerate(features):
        n = len(f.input_ids)
        assert batch["input_ids"][row, :n].tolist() == f.input_ids.tolist()
        assert (batch["input_ids"][row, n:] == pad).all()
        assert batch["attention_mask"][row].tolist() == [1] * n + [0] * (longest - n)
    assert batch["labels"].tolist() == [f.label for f in features]
    assert collate(features, pad, pad_to_multiple_of=8)["input_ids"].shape[1] % 8 == 0
