"""Task families as objects: each owns what its tasks do differently (see :mod:`.base`).

A task declares ``family = TAGGING`` (etc.); everything else asks ``task.family``.
Model heads are stored by family *name* (``HeadSpec.family``, the model manifest),
so :func:`head_family` maps a stored name back to the object that builds and runs
that head.
"""
from __future__ import annotations

from xstilts.errors import UnknownNameError
from xstilts.families.base import ServingField, ServingSchema, TaskFamily
from xstilts.families.classification import SENTENCE_CLASSIFICATION, SentenceClassification
from xstilts.families.mlm import MASKED_LM, MaskedLM
from xstilts.families.multiple_choice import MULTIPLE_CHOICE, MultipleChoice
from xstilts.families.retrieval import BUCC, TATOEBA, BuccMining, Retrieval, TatoebaRetrieval
from xstilts.families.span_qa import SPAN_QA, SpanQA
from xstilts.families.tagging import TAGGING, Tagging

#: Families whose tasks have a trained head, by the name a stored model records.
_HEAD_FAMILIES: dict[str, TaskFamily] = {f.name: f for f in (SENTENCE_CLASSIFICATION, TAGGING, SPAN_QA,
                                                              MULTIPLE_CHOICE, MASKED_LM)}
#: Every family object a task may declare.
TASK_FAMILIES: tuple[TaskFamily, ...] = (SENTENCE_CLASSIFICATION, TAGGING, SPAN_QA, MULTIPLE_CHOICE, TATOEBA, BUCC)
FAMILY_NAMES: tuple[str, ...] = tuple(dict.fromkeys(f.name for f in (*TASK_FAMILIES, MASKED_LM)))


def head_family(name: str) -> TaskFamily:
    """The family that builds and runs a head recorded as ``name`` (``HeadSpec.family``)."""
    try:
        return _HEAD_FAMILIES[name]
    except KeyError:
        raise UnknownNameError("head family", name, list(_HEAD_FAMILIES)) from None


def resolve_lengths(task, max_length: int | None = None, doc_stride: int | None = None) -> tuple[int, int]:
    """``(max_length, doc_stride)`` for ``task``: the given values, else its family's defaults.

    The one place a default input length is decided, for training, evaluation and serving.
    """
    return task.family.lengths(max_length, doc_stride)


__all__ = [
    "BUCC", "FAMILY_NAMES", "MASKED_LM", "MULTIPLE_CHOICE", "SENTENCE_CLASSIFICATION", "SPAN_QA", "TAGGING",
    "TASK_FAMILIES", "TATOEBA", "BuccMining", "MaskedLM", "MultipleChoice", "Retrieval", "SentenceClassification",
    "ServingField", "ServingSchema", "SpanQA", "Tagging", "TaskFamily", "TatoebaRetrieval", "head_family",
    "resolve_lengths",
]
