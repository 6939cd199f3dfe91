"""Accuracy, as XTREME scores XNLI, PAWS-X and (over retrieved indices) Tatoeba.

Follows ``accuracy`` in google-research/xtreme ``evaluate.py``: the share of
positions where prediction == label, reported in percent.
"""
from __future__ import annotations

from collections.abc import Hashable, Sequence

from xstilts.evaluation.metrics.validation import check_same_length


def accuracy(labels: Sequence[Hashable], predictions: Sequence[Hashable],
             language: str | None = None) -> dict[str, float]:
    """Percent of examples whose prediction equals the gold label.

    Args:
        labels: gold labels, one per example.
        predictions: predicted labels in the same order.
        language: unused; accepted so every metric shares XTREME's
            ``(labels, predictions, language)`` signature.

    Returns:
        ``{"accuracy": percent}``.

    Raises:
        MetricInputError: the two sequences differ in length or are empty.
    """
    check_same_length(labels, predictions)
    correct = sum(int(p == g) for g, p in zip(labels, predictions))
    return {"accuracy": 100.0 * correct / len(labels)}


def accuracy_and_f1(labels: Sequence[Hashable], predictions: Sequence[Hashable],
                    language: str | None = None, *, positive: Hashable = "1") -> dict[str, float]:
    """GLUE's QQP/MRPC metric: accuracy plus F1 of the positive class, both in percent.

    Follows ``acc_and_f1`` in HF transformers' GLUE metrics (``sklearn.f1_score``
    with binary averaging on label 1); F1 is 0 when nothing is predicted positive
    and nothing is positive, as sklearn's ``zero_division=0``.
    """
    check_same_length(labels, predictions)
    tp = sum(1 for g, p in zip(labels, predictions) if g == positive and p == positive)
    fp = sum(1 for g, p in zip(labels, predictions) if g != positive and p == positive)
    fn = sum(1 for g, p in zip(labels, predictions) if g == positive and p != positive)
    f1 = 2 * tp / (2 * tp + fp + fn) if tp else 0.0
    acc = accuracy(labels, predictions)["accuracy"]
    return {"accuracy": acc, "f1": 100.0 * f1, "acc_and_f1": (acc + 100.0 * f1) / 2}
