"""Retrieval sentence features on real Tatoeba sentences."""
from __future__ import annotations

from xstilts.data.featurize import featurize_sentences
from xstilts.data.featurize.retrieval import collate
from xstilts.data.loading import load_parallel


def test_sentences_tokenized_in_order_and_truncated(xlmr_tokenizer):
    corpus = load_parallel("tatoeba", "ar", "test")
    sentences = corpus.source[:30]
    features = featurize_sentences(sentences, xlmr_tokenizer, max_length=12)
    assert [f.example_index for f in features] == list(range(30))
    for s, f in zip(sentences, features):
        assert f.input_ids.tolist() == xlmr_tokenizer(s, truncation=True, max_length=12)["input_ids"]
    assert max(len(f.input_ids) for f in features) == 12  # some Arabic sentences are cut
    batch = collate(features, xlmr_tokenizer.pad_token_id)
    assert batch["input_ids"].shape == (30, 12)
    assert batch["attention_mask"].sum(1).tolist() == [len(f.input_ids) for f in features]
