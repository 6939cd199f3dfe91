"""Token tagging: labels on first sub-tokens only; long sentences split into windows."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from xstilts.data.featurize import IGNORE_INDEX, FeaturizationError, featurize_tagging, word_predictions
from xstilts.data.featurize.tagging import collate, first_subtoken_positions
from xstilts.data.loading import load_examples
from xstilts.tasks import get_task

UPOS = get_task("udpos").labels
PANX = get_task("panx").labels


def _word_ids(tokenizer, word):
    return tokenizer([word], is_split_into_words=True, add_special_tokens=False)["input_ids"]


def _check_labels_on_first_subtokens(tokenizer, examples, features, labels):
    for f in features:
        ex = examples[f.example_index]
        first = set(first_subtoken_positions(f).tolist())
        for pos, (tok_id, word, label) in enumerate(zip(f.input_ids, f.word_ids, f.labels)):
            if word < 0:
                assert label == IGNORE_INDEX  # special token
            elif pos in first:
                assert label == list(labels).index(ex.tags[word])
                assert tok_id == _word_ids(tokenizer, ex.words[word])[0]
            else:
                assert label == IGNORE_INDEX


def test_panx_labels_land_on_first_subtokens(xlmr_tokenizer):
    examples = load_examples("panx", "ar", "dev", max_examples=40) + load_examples("panx", "en", "dev",
                                                                                      max_examples=40)
    features = featurize_tagging(examples, xlmr_tokenizer, PANX, max_length=128)
    assert len(features) == len(examples)  # all short enough: one window each
    _check_labels_on_first_subtokens(xlmr_tokenizer, examples, features, PANX)
    # "Sioux Falls Arena": "Sioux" splits into several pieces, only the first is labelled
    sioux = features[40]
    assert examples[40].words[0] == "Sioux" and len(_word_ids(xlmr_tokenizer, "Sioux")) > 1
    assert sioux.labels[1] == PANX.index("B-ORG") and sioux.labels[2] == IGNORE_INDEX


def test_long_sentence_splits_into_windows_and_reassembles(xlmr_tokenizer):
    examples = load_examples("udpos", "en", "dev")
    longest = max(examples, key=lambda e: len(e.words))
    assert len(longest.words) > 60
    max_length = 32
    features = featurize_tagging([longest], xlmr_tokenizer, UPOS, max_length=max_length)
    assert len(features) >= 3
    assert all(len(f.input_ids) <= max_length for f in features)
    _check_labels_on_first_subtokens(xlmr_tokenizer, [longest], features, UPOS)
    # Windows are consecutive runs of whole words, and each word's sub-tokens in
    # its window are exactly its tokenization on its own: word-for-word reassembly.
    labelled = [int(f.word_ids[p]) for f in features for p in first_subtoken_positions(f)]
    assert labelled == list(range(len(longest.words)))
    assert [f.word_offset for f in features] == [int(f.word_ids[1]) for f in features]
    for f in features:
        for w in np.unique(f.word_ids[f.word_ids >= 0]):
            assert f.input_ids[f.word_ids == w].tolist() == _word_ids(xlmr_tokenizer, longest.words[w])
    # gold labels passed through as "predictions" come back as the gold tags
    predicted = word_predictions(features, [f.labels for f in features], [longest])
    assert [UPOS[i] for i in predicted[0]] == list(longest.tags)


def test_sentences_of_one_window_and_of_several_featurize_as_each_alone(xlmr_tokenizer):
    """One-window sentences keep the chunk's single encoding and longer ones are re-encoded per
    window: mixed in one chunk, every sentence gets the features it gets alone (real UD rows)."""
    examples = load_examples("udpos", "en", "dev", max_examples=200)
    longest = max(examples, key=lambda e: len(e.words))
    mixed = [examples[0], longest, examples[1], longest, examples[2]]
    together = featurize_tagging(mixed, xlmr_tokenizer, UPOS, max_length=32)
    alone = [dataclasses.replace(f, example_index=i) for i, ex in enumerate(mixed)
             for f in featurize_tagging([ex], xlmr_tokenizer, UPOS, max_length=32)]
    assert len(together) == len(alone) > len(mixed)
    for got, want in zip(together, alone):
        assert (got.example_index, got.word_offset) == (want.example_index, want.word_offset)
        for field in ("input_ids", "labels", "word_ids"):
            assert getattr(got, field).tolist() == getattr(want, field).tolist()
    first = together[0]  # a whole sentence: its ids are the tokenizer's for all its words, specials included
    assert first.input_ids.tolist() == xlmr_tokenizer(list(examples[0].words), is_split_into_words=True)["input_ids"]


def test_word_predictions_take_first_subtoken_and_accept_padding(xlmr_tokenizer):
    examples = load_examples("panx", "en", "dev", max_examples=6)
    features = featurize_tagging(examples, xlmr_tokenizer, PANX, max_length=16)
    batch = collate(features, xlmr_tokenizer.pad_token_id)
    # prediction = position index, so each word must get its first sub-token's position
    token_predictions = np.tile(np.arange(batch["input_ids"].shape[1]), (len(features), 1))
    per_word = word_predictions(features, token_predictions, examples)
    for k, ex in enumerate(examples):
        rows = [f for f in features if f.example_index == k]
        expected = [int(p) for f in rows for p in first_subtoken_positions(f)]
        assert per_word[k] == expected and len(per_word[k]) == len(ex.words)


def test_word_longer_than_window_is_an_error_naming_the_example(xlmr_tokenizer):
    ex = load_examples("panx", "en", "dev", max_examples=1)[0]  # "Sioux" is 3 sub-tokens
    with pytest.raises(FeaturizationError, match=rf"example {ex.guid}: word 0 \('Sioux'\) has 3 sub-tokens"):
        featurize_tagging([ex], xlmr_tokenizer, PANX, max_length=4)


def test_unknown_tag_and_length_mismatch(xlmr_tokenizer):
    ex = load_examples("udpos", "en", "dev", max_examples=1)[0]
    bad_tag = dataclasses.replace(ex, tags=("NOPE",) + ex.tags[1:])
    with pytest.raises(FeaturizationError, match=rf"example {ex.guid}: unknown tag 'NOPE' on word 0"):
        featurize_tagging([bad_tag], xlmr_tokenizer, UPOS)
    short = dataclasses.replace(ex, tags=ex.tags[:-1])
    with pytest.raises(FeaturizationError, match=rf"example {ex.guid}: {len(ex.words)} words but"):
        featurize_tagging([short], xlmr_tokenizer, UPOS)


def test_unlabelled_sentences_still_map_back(xlmr_tokenizer):
    examples = [dataclasses.replace(e, tags=None) for e in load_examples("udpos", "en", "dev", max_examples=5)]
    features = featurize_tagging(examples, xlmr_tokenizer, UPOS)
    assert all((f.labels == IGNORE_INDEX).all() for f in features)
    zeros = [np.zeros(len(f.input_ids), dtype=int) for f in features]
    assert [len(p) for p in word_predictions(features, zeros, examples)] == [len(e.words) for e in examples]


def test_collate_pads_labels_with_ignore_index(xlmr_tokenizer):
    examples = load_examples("udpos", "en", "dev", max_examples=4)
    features = featurize_tagging(examples, xlmr_tokenizer, UPOS)
    batch = collate(features, xlmr_tokenizer.pad_token_id)
    longest = max(len(f.input_ids) for f in features)
    assert batch["labels"].shape == batch["input_ids"].shape == (4, longest)
    for row, f in enumerate(features):
        n = len(f.input_ids)
        assert batch["labels"][row, :n].tolist() == f.labels.tolist()
        assert (batch["labels"][row, n:] == IGNORE_INDEX).all()


def test_words_without_subtokens_get_the_unk_token(xlmr_tokenizer):
    # Real PAN-X rows with invisible words: U+200F U+200F (Hebrew) and two U+200B in a
    # 402-word Chinese sentence, which the tokenizer turns into nothing at all.
    he = load_examples("panx", "he", "dev", max_examples=279)[278]
    zh = load_examples("panx", "zh", "dev", max_examples=250)[249]
    assert he.words[13] == "\u200f\u200f" and zh.words[288] == zh.words[289] == "\u200b"
    assert _word_ids(xlmr_tokenizer, "\u200b") == []
    examples = [he, zh]
    features = featurize_tagging(examples, xlmr_tokenizer, PANX, max_length=128)
    assert len(features) > 3  # the Chinese sentence needs several windows
    for k, ex in enumerate(examples):
        rows = [f for f in features if f.example_index == k]
        labelled = [int(f.word_ids[p]) for f in rows for p in first_subtoken_positions(f)]
        assert labelled == list(range(len(ex.words)))
    unk = xlmr_tokenizer.unk_token_id
    for k, w in [(0, 13), (1, 288), (1, 289)]:
        (ids,) = [f.input_ids[f.word_ids == w] for f in features if f.example_index == k and w in f.word_ids]
        assert ids.tolist() == [unk]
    predicted = word_predictions(features, [f.labels for f in features], examples)
    assert [[PANX[i] for i in p] for p in predicted] == [list(he.tags), list(zh.tags)]
