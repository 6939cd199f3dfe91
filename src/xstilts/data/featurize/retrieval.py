"""Sentences to embed for retrieval (Tatoeba, BUCC): no labels, no training data."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from xstilts.data.featurize.base import TOKENIZE_CHUNK, SentenceFeature, collate_inputs, to_ids, token_types


def featurize_sentences(sentences: Sequence[str], tokenizer: Any, *, max_length: int = 128
                        ) -> list[SentenceFeature]:
    """One feature per sentence, truncated to ``max_length``; ``example_index`` is its position."""
    features: list[SentenceFeature] = []
    for start in range(0, len(sentences), TOKENIZE_CHUNK):
        chunk = list(sentences[start:start + TOKENIZE_CHUNK])
        enc = tokenizer(chunk, truncation=True, max_length=max_length)
        for row in range(len(chunk)):
            features.append(SentenceFeature(input_ids=to_ids(enc["input_ids"][row]),
                                            example_index=start + row,
                                            token_type_ids=token_types(enc, row)))
    return features


def collate(features: Sequence[SentenceFeature], pad_id: int, *,
            pad_to_multiple_of: int | None = None) -> dict[str, torch.Tensor]:
    """Pad to the longest row: ``input_ids``, ``attention_mask``."""
    return collate_inputs(features, pad_id, pad_to_multiple_of)


@dataclass
class SentenceFeaturizer:
    """:func:`featurize_sentences` with its settings, for the feature cache."""

    tokenizer: Any
    max_length: int = field(default=128, metadata={"help": "Longest sentence in tokens, specials included."})
    name: ClassVar[str] = "retrieval"

    def params(self) -> dict[str, Any]:
        return {"max_length": self.max_length}

    def __call__(self, sentences: Sequence[str]) -> list[SentenceFeature]:
        return featurize_sentences(sentences, self.tokenizer, max_length=self.max_length)
