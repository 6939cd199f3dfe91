"""Sentence and sentence-pair classification (XNLI, PAWS-X, MNLI, ANLI, QQP, SST-2)."""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch

from xstilts.data.examples import SentenceExample
from xstilts.data.featurize.base import (
    IGNORE_INDEX,
    TOKENIZE_CHUNK,
    ClassificationFeature,
    FeaturizationError,
    collate_inputs,
    label_index,
    to_ids,
    token_types,
)


def featurize_classification(examples: Sequence[SentenceExample], tokenizer: Any,
                             label_list: Sequence[str], *, max_length: int = 128
                             ) -> list[ClassificationFeature]:
    """Encode ``text_a`` (and ``text_b``) with ``longest_first`` truncation; no padding.

    Labels become their index in ``label_list``; an example without a gold label
    gets ``IGNORE_INDEX``. An unknown label is an error naming the example.
    """
    labels = label_index(label_list)
    label_ids: list[int] = []
    for ex in examples:
        if ex.label is None:
            label_ids.append(IGNORE_INDEX)
        elif ex.label in labels:
            label_ids.append(labels[ex.label])
        else:
            raise FeaturizationError(
                f"example {ex.guid}: unknown label {ex.label!r}; expected one of {list(label_list)}")

    features: list[ClassificationFeature | None] = [None] * len(examples)
    # A tokenizer batch is either all single sentences or all pairs, so group by kind.
    singles = [i for i, ex in enumerate(examples) if ex.text_b is None]
    pairs = [i for i, ex in enumerate(examples) if ex.text_b is not None]
    for indices in (singles, pairs):
        for start in range(0, len(indices), TOKENIZE_CHUNK):
            chunk = indices[start:start + TOKENIZE_CHUNK]
            text_a = [examples[i].text_a for i in chunk]
            text_b = [examples[i].text_b for i in chunk] if indices is pairs else None
            enc = tokenizer(text_a, text_b, truncation="longest_first", max_length=max_length)
            for row, i in enumerate(chunk):
                features[i] = ClassificationFeature(
                    input_ids=to_ids(enc["input_ids"][row]), label=label_ids[i], example_index=i,
                    token_type_ids=token_types(enc, row))
    return features  # type: ignore[return-value]  # every slot was filled above


def collate(features: Sequence[ClassificationFeature], pad_id: int, *,
            pad_to_multiple_of: int | None = None) -> dict[str, torch.Tensor]:
    """Pad to the longest row: ``input_ids``, ``attention_mask``, ``labels`` ``[batch]``."""
    batch = collate_inputs(features, pad_id, pad_to_multiple_of)
    batch["labels"] = torch.tensor([f.label for f in features], dtype=torch.long)
    return batch


@dataclass
class ClassificationFeaturizer:
    """:func:`featurize_classification` with its settings, for the feature cache."""

    tokenizer: Any
    label_list: Sequence[str]
    max_length: int = field(default=128, metadata={"help": "Longest row in tokens, specials included."})
    name: ClassVar[str] = "classification"

    def params(self) -> dict[str, Any]:
        return {"label_list": list(self.label_list), "max_length": self.max_length}

    def __call__(self, examples: Sequence[SentenceExample]) -> list[ClassificationFeature]:
        return featurize_classification(examples, self.tokenizer, self.label_list,
                                        max_length=self.max_length)
