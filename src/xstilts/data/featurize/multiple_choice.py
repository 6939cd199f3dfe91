"""Multiple choice (HellaSwag, CommonsenseQA, CosmosQA): one row per choice.

Each choice is encoded as a pair, as HF ``run_swag`` does: the context first,
then the question followed by the choice. Examples without a context (e.g.
CommonsenseQA) pair the question with the choice. The collator regroups rows
into ``[batch, n_choices, seq]`` for a model that scores every choice and takes
a softmax over them.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch

from xstilts.data.examples import MultipleChoiceExample
from xstilts.data.featurize.base import (
    IGNORE_INDEX,
    TOKENIZE_CHUNK,
    FeaturizationError,
    MultipleChoiceFeature,
    attention_mask,
    padded_length,
    pad_rows,
    to_ids,
    token_types,
)


def choice_pair(ex: MultipleChoiceExample, choice: str) -> tuple[str, str]:
    """The (first, second) segments for one choice."""
    if ex.context:
        return ex.context, f"{ex.question} {choice}".strip()
    return ex.question, choice


def featurize_multiple_choice(examples: Sequence[MultipleChoiceExample], tokenizer: Any, *,
                              max_length: int = 256) -> list[MultipleChoiceFeature]:
    """Rows ordered by example, then choice; ``label`` repeats the example's answer on each row."""
    features: list[MultipleChoiceFeature] = []
    for chunk_start in range(0, len(examples), TOKENIZE_CHUNK):
        chunk = examples[chunk_start:chunk_start + TOKENIZE_CHUNK]
        rows: list[tuple[int, int]] = []  # (example index, choice index)
        firsts, seconds = [], []
        for k, ex in enumerate(chunk):
            if len(ex.choices) < 2:
                raise FeaturizationError(f"example {ex.guid}: {len(ex.choices)} choices, need at least 2")
            if ex.label is not None and not 0 <= ex.label < len(ex.choices):
                raise FeaturizationError(
                    f"example {ex.guid}: label {ex.label} is not a choice index 0..{len(ex.choices) - 1}")
            for c, choice in enumerate(ex.choices):
                first, second = choice_pair(ex, choice)
                firsts.append(first)
                seconds.append(second)
                rows.append((chunk_start + k, c))
        enc = tokenizer(firsts, seconds, truncation="longest_first", max_length=max_length)
        for row, (example_index, choice_index) in enumerate(rows):
            label = examples[example_index].label
            features.append(MultipleChoiceFeature(
                input_ids=to_ids(enc["input_ids"][row]), example_index=example_index,
                choice_index=choice_index, label=IGNORE_INDEX if label is None else label,
                token_type_ids=token_types(enc, row)))
    return features


def rows_by_example(features: Sequence[MultipleChoiceFeature]) -> list[list[int]]:
    """Feature indices of each example's rows, examples in order of first appearance.

    A training loop batches examples (not rows), so that every choice of an
    example lands in the same batch; these groups are its dataset items.
    """
    groups: dict[int, list[int]] = {}
    for i, f in enumerate(features):
        groups.setdefault(f.example_index, []).append(i)
    return list(groups.values())


def example_lengths(features: Sequence[MultipleChoiceFeature]) -> np.ndarray:
    """Longest row of each example (same order as :func:`rows_by_example`), for length grouping."""
    return np.asarray([max(len(features[i].input_ids) for i in group)
                       for group in rows_by_example(features)], dtype=np.int64)


def collate(features: Sequence[MultipleChoiceFeature], pad_id: int, *,
            pad_to_multiple_of: int | None = None) -> dict[str, torch.Tensor]:
    """Regroup rows into ``input_ids``/``attention_mask`` ``[batch, n_choices, seq]`` and ``labels`` ``[batch]``.

    The batch must hold every choice of each of its examples, and all its
    examples must have the same number of choices.
    """
    if not features:
        raise ValueError("cannot collate an empty batch")
    groups = [sorted((features[i] for i in g), key=lambda f: f.choice_index)
              for g in rows_by_example(features)]
    for g in groups:
        if [f.choice_index for f in g] != list(range(len(g))):
            raise ValueError(f"example {g[0].example_index}: batch holds choices "
                             f"{[f.choice_index for f in g]}; a batch needs every choice of its examples")
    n_choices = len(groups[0])
    if any(len(g) != n_choices for g in groups):
        raise ValueError(f"examples with different numbers of choices in one batch: "
                         f"{sorted({len(g) for g in groups})}")
    rows = [f for g in groups for f in g]
    lengths = [len(f.input_ids) for f in rows]
    length = padded_length(lengths, pad_to_multiple_of)
    shape = (len(groups), n_choices, length)
    batch = {
        "input_ids": pad_rows([f.input_ids for f in rows], pad_id, length).view(shape),
        "attention_mask": attention_mask(lengths, length).view(shape),
        "labels": torch.tensor([g[0].label for g in groups], dtype=torch.long),
    }
    if rows[0].token_type_ids is not None:
        batch["token_type_ids"] = pad_rows([f.token_type_ids for f in rows], 0, length).view(shape)
    return batch


@dataclass
class MultipleChoiceFeaturizer:
    """:func:`featurize_multiple_choice` with its settings, for the feature cache."""

    tokenizer: Any
    max_length: int = field(default=256, metadata={"help": "Longest row in tokens, specials included."})
    name: ClassVar[str] = "multiple_choice"

    def params(self) -> dict[str, Any]:
        return {"max_length": self.max_length}

    def __call__(self, examples: Sequence[MultipleChoiceExample]) -> list[MultipleChoiceFeature]:
        return featurize_multiple_choice(examples, self.tokenizer, max_length=self.max_length)
