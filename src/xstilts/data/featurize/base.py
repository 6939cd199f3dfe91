"""Feature records shared by every task family, and the helpers that pad them.

A *feature* is one model input row: token ids plus what the loss or the
postprocessing needs. Ids are ``numpy.int32`` arrays (half the memory of int64,
and what the on-disk cache stores); collators widen them to ``torch.long`` at
batch time. Features are never padded: padding to the longest row of a batch
happens in the collators, so short rows do not pay for long ones.

Records are frozen, slotted dataclasses with ``eq=False`` (numpy arrays make
element-wise ``==`` ambiguous); :mod:`xstilts.data.feature_cache` stores any of
them column by column, so every field is an int, an ``ndarray`` or ``None``.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import numpy as np
import torch

from xstilts.errors import XstiltsError

#: Label id ignored by ``torch.nn.CrossEntropyLoss`` (its default ``ignore_index``).
IGNORE_INDEX = -100

#: Rows tokenized per tokenizer call; bounds the Python lists the tokenizer returns.
TOKENIZE_CHUNK = 4096


class FeaturizationError(XstiltsError):
    """An example cannot be turned into model input; the message names the example."""


@dataclass(frozen=True, eq=False, slots=True)
class ClassificationFeature:
    """One sentence or sentence pair: ``[CLS] a [SEP] ([SEP] b [SEP])``."""

    input_ids: np.ndarray  # int32 [seq]
    label: int  # IGNORE_INDEX where the example has no gold label
    example_index: int
    token_type_ids: np.ndarray | None = None  # only for tokenizers that return them


@dataclass(frozen=True, eq=False, slots=True)
class TaggingFeature:
    """One window of a tagged sentence; long sentences become several windows.

    ``labels`` holds a tag id on the first sub-token of each word and
    ``IGNORE_INDEX`` on every other position. ``word_ids`` holds the word's index
    in the whole example (not the window) on every sub-token of that word and -1
    on special tokens, so predictions map back to words.
    """

    input_ids: np.ndarray  # int32 [seq]
    labels: np.ndarray  # int32 [seq]
    word_ids: np.ndarray  # int32 [seq]
    example_index: int
    word_offset: int  # index of the window's first word in the example
    token_type_ids: np.ndarray | None = None


@dataclass(frozen=True, eq=False, slots=True)
class SpanQAFeature:
    """One doc-stride window of (question, context).

    ``offsets[i]`` is the character span of token ``i`` in the example's context,
    leading whitespace trimmed, or ``(-1, -1)`` for question and special tokens.
    ``start_position``/``end_position`` are token indices of the first answer
    inside this window, or ``cls_index`` when the answer lies outside it or the
    example is unanswerable (SQuAD 2.0).
    """

    input_ids: np.ndarray  # int32 [seq]
    offsets: np.ndarray  # int32 [seq, 2]
    start_position: int
    end_position: int
    cls_index: int
    example_index: int
    token_type_ids: np.ndarray | None = None

    @property
    def offset_mapping(self) -> list[tuple[int, int] | None]:
        """Offsets as in HF ``run_qa``: ``None`` outside the context."""
        return [None if s < 0 else (int(s), int(e)) for s, e in self.offsets]


@dataclass(frozen=True, eq=False, slots=True)
class MultipleChoiceFeature:
    """One (context, question + choice) row; an example has one row per choice."""

    input_ids: np.ndarray  # int32 [seq]
    example_index: int
    choice_index: int
    label: int  # index of the correct choice, IGNORE_INDEX when unknown
    token_type_ids: np.ndarray | None = None


@dataclass(frozen=True, eq=False, slots=True)
class SentenceFeature:
    """One sentence to embed for retrieval (Tatoeba, BUCC)."""

    input_ids: np.ndarray  # int32 [seq]
    example_index: int
    token_type_ids: np.ndarray | None = None


Feature = ClassificationFeature | TaggingFeature | SpanQAFeature | MultipleChoiceFeature | SentenceFeature
F = TypeVar("F", ClassificationFeature, TaggingFeature, SpanQAFeature, MultipleChoiceFeature,
            SentenceFeature)

#: Every record type by name; the feature cache stores the name and rebuilds from it.
FEATURE_TYPES: dict[str, type] = {cls.__name__: cls for cls in (
    ClassificationFeature, TaggingFeature, SpanQAFeature, MultipleChoiceFeature, SentenceFeature)}


class Featurizer(Protocol):
    """What :func:`xstilts.data.feature_cache.cached_featurize` needs from a featurizer.

    ``params()`` must return every setting that changes the output (max length,
    label list, doc stride, ...): it is part of the cache key.
    """

    name: str
    tokenizer: Any

    def params(self) -> dict[str, Any]: ...

    def __call__(self, examples: Sequence[Any]) -> list[Any]: ...


def label_index(label_list: Sequence[str]) -> dict[str, int]:
    """Label string -> id (its position in ``label_list``); duplicates are an error."""
    index = {label: i for i, label in enumerate(label_list)}
    if len(index) != len(label_list):
        raise FeaturizationError(f"label list has duplicates: {list(label_list)}")
    return index


def to_ids(values: Sequence[int]) -> np.ndarray:
    return np.asarray(values, dtype=np.int32)


def token_types(encoding: Any, i: int) -> np.ndarray | None:
    """Row ``i`` of ``token_type_ids`` when the tokenizer returns them (not XLM-R)."""
    if "token_type_ids" not in encoding:
        return None
    return to_ids(encoding["token_type_ids"][i])


def feature_lengths(features: Sequence[Any]) -> np.ndarray:
    """Sequence length of every feature (for length-grouped batching)."""
    return np.fromiter((len(f.input_ids) for f in features), dtype=np.int64, count=len(features))


def padded_length(lengths: Sequence[int], pad_to_multiple_of: int | None) -> int:
    longest = max(lengths)
    if pad_to_multiple_of:
        longest = -(-longest // pad_to_multiple_of) * pad_to_multiple_of
    return longest


def pad_rows(rows: Sequence[np.ndarray], pad_value: int, length: int) -> torch.Tensor:
    """Stack 1-D int rows right-padded with ``pad_value`` into a ``[len(rows), length]`` long tensor."""
    out = np.full((len(rows), length), pad_value, dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return torch.from_numpy(out)


def attention_mask(lengths: Sequence[int], length: int) -> torch.Tensor:
    """1 on real tokens, 0 on padding."""
    positions = np.arange(length)[None, :]
    return torch.from_numpy((positions < np.asarray(lengths)[:, None]).astype(np.int64))


def collate_inputs(features: Sequence[Any], pad_id: int,
                   pad_to_multiple_of: int | None = None) -> dict[str, torch.Tensor]:
    """``input_ids``, ``attention_mask`` (and ``token_type_ids``) padded to the batch's longest row."""
    if not features:
        raise ValueError("cannot collate an empty batch")
    lengths = [len(f.input_ids) for f in features]
    length = padded_length(lengths, pad_to_multiple_of)
    batch = {
        "input_ids": pad_rows([f.input_ids for f in features], pad_id, length),
        "attention_mask": attention_mask(lengths, length),
    }
    if features[0].token_type_ids is not None:
        batch["token_type_ids"] = pad_rows([f.token_type_ids for f in features], 0, length)
    return batch
