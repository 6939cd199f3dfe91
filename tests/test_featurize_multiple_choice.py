"""Multiple choice: one row per choice on real CommonsenseQA and CosmosQA rows."""
from __future__ import annotations

import dataclasses

import pytest

from xstilts.data.featurize import IGNORE_INDEX, FeaturizationError, featurize_multiple_choice
from xstilts.data.featurize.multiple_choice import collate, example_lengths, rows_by_example
from xstilts.data.loading import load_examples


@pytest.fixture(scope="module")
def csqa():
    return load_examples("commonsenseqa", "en", "dev", max_examples=20)


@pytest.fixture(scope="module")
def cosmos():
    return load_examples("cosmosqa", "en", "dev", max_examples=12)


def test_one_row_per_choice_commonsenseqa(csqa, xlmr_tokenizer):
    features = featurize_multiple_choice(csqa, xlmr_tokenizer, max_length=64)
    assert len(features) == sum(len(ex.choices) for ex in csqa) == 5 * len(csqa)
    for f in features:
        ex = csqa[f.example_index]
        # no context in CommonsenseQA: the question is paired with the choice
        expected = xlmr_tokenizer(ex.question, ex.choices[f.choice_index], truncation=True,
                                  max_length=64)["input_ids"]
        assert f.input_ids.tolist() == expected
        assert f.label == ex.label
    assert [(f.example_index, f.choice_index) for f in features[:6]] == [(0, c) for c in range(5)] + [(1, 0)]
    # "revolving door ... security measure at a what?" -> bank (A)
    assert csqa[0].choices[features[0].label] == "bank"


def test_context_question_choice_rows_cosmosqa(cosmos, xlmr_tokenizer):
    features = featurize_multiple_choice(cosmos, xlmr_tokenizer, max_length=96)
    assert len(features) == 4 * len(cosmos)
    for f in features:
        ex = cosmos[f.example_index]
        expected = xlmr_tokenizer(ex.context, f"{ex.question} {ex.choices[f.choice_index]}",
                                  truncation="longest_first", max_length=96)["input_ids"]
        assert f.input_ids.tolist() == expected and len(expected) <= 96
        # the long context is what gets truncated: the choice's last token survives
        choice_ids = xlmr_tokenizer(ex.choices[f.choice_index], add_special_tokens=False)["input_ids"]
        assert f.input_ids[-2] == choice_ids[-1]


def test_collate_groups_rows_into_choices(cosmos, xlmr_tokenizer):
    features = featurize_multiple_choice(cosmos, xlmr_tokenizer, max_length=96)
    groups = rows_by_example(features)
    assert len(groups) == len(cosmos) and all(len(g) == 4 for g in groups)
    picked = [features[i] for g in (groups[2], groups[0]) for i in reversed(g)]  # any row order
    batch = collate(picked, xlmr_tokenizer.pad_token_id)
    longest = max(len(f.input_ids) for f in picked)
    assert batch["input_ids"].shape == (2, 4, longest)
    assert batch["labels"].tolist() == [cosmos[2].label, cosmos[0].label]
    for b, example_index in enumerate((2, 0)):
        for c in range(4):
            f = features[groups[example_index][c]]
            n = len(f.input_ids)
            assert batch["input_ids"][b, c, :n].tolist() == f.input_ids.tolist()
            assert batch["attention_mask"][b, c].sum() == n
    assert example_lengths(features)[2] == max(len(features[i].input_ids) for i in groups[2])
    with pytest.raises(ValueError, match=r"different numbers of choices in one batch: \[3, 4\]"):
        collate(picked[1:], xlmr_tokenizer.pad_token_id)  # drops example 2's last choice
    with pytest.raises(ValueError, match=r"example 0: batch holds choices \[1, 2, 3\]"):
        collate(picked[:-1], xlmr_tokenizer.pad_token_id)  # drops example 0's first choice


def test_bad_labels_are_errors_and_missing_labels_ignored(csqa, xlmr_tokenizer):
    bad = dataclasses.replace(csqa[1], label=5)
    with pytest.raises(FeaturizationError, match=rf"example {bad.guid}: label 5 is not a choice index 0..4"):
        featurize_multiple_choice([csqa[0], bad], xlmr_tokenizer)
    unlabelled = dataclasses.replace(csqa[1], label=None)
    assert {f.label for f in featurize_multiple_choice([unlabelled], xlmr_tokenizer)} == {IGNORE_INDEX}
