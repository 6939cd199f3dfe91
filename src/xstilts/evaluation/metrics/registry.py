"""Metric name -> implementation, for tasks that declare their metric by name.

Every metric shares XTREME ``evaluate.py``'s calling convention
``compute(labels, predictions, language=None) -> {name: percent}``:

==================  ===========================================  =====================================
name                labels / predictions                         result keys (headline first)
==================  ===========================================  =====================================
accuracy            label per example                            accuracy
acc_and_f1          label per example (positive class "1")       acc_and_f1, accuracy, f1
seqeval_f1          tag list per sentence                        f1, precision, recall
xtreme_pos_f1       UPOS tag list per sentence                   f1, precision, recall, accuracy
squad_em_f1         {id: [answers]} / {id: answer}               exact_match, f1
mlqa_em_f1          as squad_em_f1; ``language`` required        exact_match, f1
tatoeba_accuracy    gold index per query / retrieved index       accuracy
bucc_f1             gold (src_id, tgt_id) pairs / mined pairs    f1, precision, recall
==================  ===========================================  =====================================

The retrieval steps that produce Tatoeba indices and BUCC pairs from
embeddings are :func:`~xstilts.evaluation.metrics.retrieval.tatoeba_accuracy`
and :mod:`~xstilts.evaluation.metrics.bucc`.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from xstilts.errors import UnknownNameError
from xstilts.evaluation.metrics.bucc import bucc_f1
from xstilts.evaluation.metrics.classification import accuracy, accuracy_and_f1
from xstilts.evaluation.metrics.mlqa import mlqa_em_f1
from xstilts.evaluation.metrics.squad import squad_em_f1
from xstilts.evaluation.metrics.tagging import seqeval_f1, xtreme_pos_f1


class MetricFn(Protocol):
    def __call__(self, labels: Any, predictions: Any,
                 language: str | None = None) -> dict[str, float]: ...


@dataclass(frozen=True)
class MetricSpec:
    """A named metric: how to compute it and which keys form the task's headline score."""

    name: str
    compute: MetricFn
    headline: tuple[str, ...]
    needs_language: bool
    definition: str  # the official definition it follows


_REGISTRY: dict[str, MetricSpec] = {}


def register_metric(name: str, *, headline: tuple[str, ...], definition: str,
                    needs_language: bool = False) -> Callable[[MetricFn], MetricFn]:
    """Decorator registering ``compute`` under ``name`` (names are unique)."""
    def wrap(fn: MetricFn) -> MetricFn:
        if name in _REGISTRY:
            raise ValueError(f"metric {name!r} is already registered")
        _REGISTRY[name] = MetricSpec(name=name, compute=fn, headline=headline,
                                     needs_language=needs_language, definition=definition)
        return fn
    return wrap


def get_metric(name: str) -> MetricSpec:
    """The metric registered as ``name``.

    Raises:
        UnknownNameError: no such metric (the message lists the valid names).
    """
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownNameError("metric", name, tuple(_REGISTRY)) from None


def metric_names() -> tuple[str, ...]:
    """All registered metric names."""
    return tuple(_REGISTRY)


register_metric("accuracy", headline=("accuracy",),
                definition="xtreme evaluate.py accuracy")(accuracy)
register_metric("acc_and_f1", headline=("acc_and_f1",),
                definition="GLUE acc_and_f1 (QQP): accuracy and binary F1 of label 1")(accuracy_and_f1)
register_metric("seqeval_f1", headline=("f1",),
                definition="seqeval default-mode f1/precision/recall (xtreme run_tag.py)")(seqeval_f1)
register_metric("xtreme_pos_f1", headline=("f1",),
                definition="seqeval 0.0.12 f1/precision/recall (xtreme run_tag.py, UD-POS: whole tag "
                           "= chunk type) plus token accuracy (XTREME-R)")(xtreme_pos_f1)
register_metric("squad_em_f1", headline=("exact_match", "f1"),
                definition="SQuAD evaluate-v1.1.py")(squad_em_f1)
register_metric("mlqa_em_f1", headline=("exact_match", "f1"), needs_language=True,
                definition="MLQA mlqa_evaluation_v1.py")(mlqa_em_f1)
register_metric("tatoeba_accuracy", headline=("accuracy",),
                definition="xtreme run_retrieval.py similarity_search + evaluate.py accuracy")(accuracy)
register_metric("bucc_f1", headline=("f1",),
                definition="xtreme utils_retrieve.py bucc_eval + evaluate.py bucc_f1")(bucc_f1)
