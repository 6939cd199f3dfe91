"""Examples of any task -> cached features, batch units and a collator.

One small table per family (no isinstance dispatch): which featurizer, which
collator, and how features group into the units a batch must keep together.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

from xstilts.data.feature_cache import cached_featurize, examples_fingerprint
from xstilts.data.featurize import classification, multiple_choice, span_qa, tagging
from xstilts.data.featurize.multiple_choice import rows_by_example


@dataclass
class TaskFeatures:
    features: list[Any]
    units: list[list[int]]
    collate: Callable[[Sequence[Any]], dict]


def _singletons(features: Sequence[Any]) -> list[list[int]]:
    return [[i] for i in range(len(features))]


def make_featurizer(task, tokenizer, *, max_length: int, doc_stride: int = 128):
    family = task.family
    if family == "sentence_classification":
        return classification.ClassificationFeaturizer(tokenizer, list(task.labels), max_length=max_length)
    if family == "tagging":
        return tagging.TaggingFeaturizer(tokenizer, list(task.labels), max_length=max_length)
    if family == "span_qa":
        # The stride must leave room for the question inside a window.
        return span_qa.SpanQAFeaturizer(tokenizer, max_length=max_length, doc_stride=min(doc_stride, max_length // 2))
    if family == "multiple_choice":
        return multiple_choice.MultipleChoiceFeaturizer(tokenizer, max_length=max_length)
    raise ValueError(f"task {task.name}: family {family} has no featurizer for training")


_COLLATE = {"sentence_classification": classification.collate, "tagging": tagging.collate,
            "span_qa": span_qa.collate, "multiple_choice": multiple_choice.collate}
_UNITS = {"multiple_choice": rows_by_example}


def task_features(task, examples: Sequence[Any], tokenizer, *, lang: str, split: str, max_length: int,
                  doc_stride: int = 128, cache: bool = True) -> TaskFeatures:
    """Featurize ``examples`` of ``task`` (through the on-disk cache by default)."""
    featurizer = make_featurizer(task, tokenizer, max_length=max_length, doc_stride=doc_stride)
    if cache:
        features = cached_featurize(featurizer, list(examples), task=task.name, lang=lang, split=split,
                                    source_fingerprint=examples_fingerprint(examples))
    else:
        features = featurizer(list(examples))
    units = _UNITS.get(task.family, _singletons)(features)
    return TaskFeatures(features, units, partial(_COLLATE[task.family], pad_id=tokenizer.pad_token_id))
