"""From examples (:mod:`xstilts.data.examples`) to unpadded model features, per task family.

One module per family: ``classification``, ``tagging``, ``span_qa``,
``multiple_choice``, ``retrieval``. Each has a ``featurize_*`` function, a
``*Featurizer`` dataclass (the function plus its settings, which
:mod:`xstilts.data.feature_cache` uses as cache key) and a
``collate(features, pad_id)`` that pads a batch to its longest row.
:func:`~xstilts.data.featurize.batching.length_grouped_batches` makes batches
of similar lengths.
"""
from xstilts.data.featurize.base import (
    FEATURE_TYPES,
    IGNORE_INDEX,
    ClassificationFeature,
    Feature,
    FeaturizationError,
    Featurizer,
    MultipleChoiceFeature,
    SentenceFeature,
    SpanQAFeature,
    TaggingFeature,
    feature_lengths,
)
from xstilts.data.featurize.batching import length_grouped_batches
from xstilts.data.featurize.classification import ClassificationFeaturizer, featurize_classification
from xstilts.data.featurize.multiple_choice import MultipleChoiceFeaturizer, featurize_multiple_choice
from xstilts.data.featurize.retrieval import SentenceFeaturizer, featurize_sentences
from xstilts.data.featurize.span_qa import SpanQAFeaturizer, best_spans, featurize_span_qa
from xstilts.data.featurize.tagging import TaggingFeaturizer, featurize_tagging, word_predictions

__all__ = [
    "FEATURE_TYPES", "IGNORE_INDEX", "ClassificationFeature", "ClassificationFeaturizer", "Feature",
    "FeaturizationError", "Featurizer", "MultipleChoiceFeature", "MultipleChoiceFeaturizer",
    "SentenceFeature", "SentenceFeaturizer", "SpanQAFeature", "SpanQAFeaturizer", "TaggingFeature",
    "TaggingFeaturizer", "best_spans", "feature_lengths", "featurize_classification",
    "featurize_multiple_choice", "featurize_sentences", "featurize_span_qa", "featurize_tagging",
    "length_grouped_batches", "word_predictions",
]
