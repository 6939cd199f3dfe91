"""Accuracy and the metric registry."""
from __future__ import annotations

import pytest

from xstilts.errors import UnknownNameError
from xstilts.evaluation.metrics import MetricInputError, get_metric, metric_names
from xstilts.evaluation.metrics.classification import accuracy


def test_accuracy_hand_case() -> None:
    # XNLI labels; 3 of 4 positions agree -> 75 %
    gold = ["entailment", "neutral", "contradiction", "neutral"]
    pred = ["entailment", "neutral", "neutral", "neutral"]
    assert accuracy(gold, pred) == {"accuracy": 75.0}


def test_accuracy_rejects_mismatched_or_empty() -> None:
    with pytest.raises(MetricInputError, match="3 gold labels vs 2 predictions"):
        accuracy(["a", "b", "c"], ["a", "b"])
    with pytest.raises(MetricInputError, match="empty"):
        accuracy([], [])


def test_registry_names_and_headlines() -> None:
    assert set(metric_names()) == {"accuracy", "acc_and_f1", "seqeval_f1", "xtreme_pos_f1", "squad_em_f1", "mlqa_em_f1",
                                   "tatoeba_accuracy", "bucc_f1"}
    assert get_metric("squad_em_f1").headline == ("exact_match", "f1")
    assert get_metric("mlqa_em_f1").needs_language
    # tatoeba_accuracy scores retrieved indices against the line alignment
    assert get_metric("tatoeba_accuracy").compute([0, 1, 2, 3], [0, 1, 3, 2]) == {"accuracy": 50.0}


def test_registry_unknown_name_lists_choices() -> None:
    with pytest.raises(UnknownNameError, match="valid choices: acc_and_f1, accuracy, bucc_f1"):
        get_metric("f1")
