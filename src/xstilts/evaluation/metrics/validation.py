"""Input checks shared by the metric functions.

Metrics are pure functions over Python/numpy values; when their inputs disagree
(different lengths, empty sets, unknown language) they raise
:class:`MetricInputError`, which the CLI prints on one line like any other
:class:`~xstilts.errors.XstiltsError`.
"""
from __future__ import annotations

from collections.abc import Sized

from xstilts.errors import XstiltsError


class MetricInputError(XstiltsError, ValueError):
    """Labels and predictions that cannot be scored together (names the offending field)."""


def check_same_length(labels: Sized, predictions: Sized, *, what: str = "examples") -> None:
    """Raise unless ``labels`` and ``predictions`` have the same, non-zero length."""
    if len(labels) != len(predictions):
        raise MetricInputError(
            f"number of {what} differs: {len(labels)} gold labels vs {len(predictions)} predictions")
    if len(labels) == 0:
        raise MetricInputError(f"no {what} to score: labels and predictions are empty")
