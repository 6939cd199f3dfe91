"""Examples of any task -> cached features, batch units and a collator.

The task's family (:mod:`xstilts.families`) chooses the featurizer, the
collator and how features group into the units a batch must keep together.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from xstilts.data.feature_cache import cached_featurize, examples_fingerprint


@dataclass
class TaskFeatures:
    features: list[Any]
    units: list[list[int]]
    collate: Callable[[Sequence[Any]], dict]


def make_featurizer(task, tokenizer, *, max_length: int, doc_stride: int = 128):
    return task.family.featurizer(task, tokenizer, max_length=max_length, doc_stride=doc_stride)


def task_features(task, examples: Sequence[Any], tokenizer, *, lang: str, split: str, max_length: int,
                  doc_stride: int = 128, cache: bool = True) -> TaskFeatures:
    """Featurize ``examples`` of ``task`` (through the on-disk cache by default)."""
    featurizer = make_featurizer(task, tokenizer, max_length=max_length, doc_stride=doc_stride)
    if cache:
        features = cached_featurize(featurizer, list(examples), task=task.name, lang=lang, split=split,
                                    source_fingerprint=examples_fingerprint(examples))
    else:
        features = featurizer(list(examples))
    family = task.family
    return TaskFeatures(features, family.units(features), family.collator(tokenizer.pad_token_id))
