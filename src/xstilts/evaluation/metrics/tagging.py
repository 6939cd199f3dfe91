"""Word-level tagging scores (PAN-X, UD-POS) exactly as XTREME computes them.

XTREME (``third_party/run_tag.py`` ``evaluate`` and ``evaluate.py`` ``f1``) calls
seqeval's ``f1_score``, ``precision_score`` and ``recall_score`` in their default
mode for *both* NER and POS. The default mode is seqeval's conlleval-compatible
chunking (not ``mode="strict"``): an ``I-X`` after ``O`` still opens an entity.

For UD-POS this has a consequence worth knowing: a POS tag such as ``NOUN`` is
read as chunk prefix ``N`` and type ``OUN``, so a run of identical tags forms
one chunk and "F1" is a chunk score, not per-word accuracy (``PROPN PROPN`` is a
single chunk; tagging one of them wrongly loses the whole chunk). We reproduce
that on purpose, because it is the number XTREME reports; seqeval's
"seems not to be NE tag" warnings are silenced for that reason.

Scores are micro-averaged over all chunks of all sentences and given in percent.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence

from seqeval.metrics import f1_score, precision_score, recall_score

from xstilts.evaluation.metrics.validation import MetricInputError, check_same_length


def seqeval_f1(labels: Sequence[Sequence[str]], predictions: Sequence[Sequence[str]],
               language: str | None = None) -> dict[str, float]:
    """seqeval chunk F1, precision and recall over words, in percent.

    Args:
        labels: gold tags, one list per sentence, one tag per word.
        predictions: predicted tags (the first sub-token's prediction of each
            word), with the same shape as ``labels``.
        language: unused; kept for the shared metric signature.

    Returns:
        ``{"f1", "precision", "recall"}`` in percent; 0 where no chunk is
        predicted or none is gold (seqeval's ``zero_division`` default).

    Raises:
        MetricInputError: sentence counts differ, a sentence has a different
            number of tags in labels and predictions, or a tag is not a string.
    """
    check_same_length(labels, predictions, what="sentences")
    gold = [list(s) for s in labels]
    pred = [list(s) for s in predictions]
    for i, (g, p) in enumerate(zip(gold, pred)):
        if len(g) != len(p):
            raise MetricInputError(
                f"sentence {i}: {len(g)} gold tags vs {len(p)} predicted tags")
        for tag in (*g, *p):
            if not isinstance(tag, str):
                raise MetricInputError(f"sentence {i}: tags must be strings, got {tag!r}")
    with warnings.catch_warnings():
        # POS tags are not B-/I- tags, and empty predictions trigger zero-division
        # warnings; both are expected here (see module docstring).
        warnings.simplefilter("ignore")
        f1 = f1_score(gold, pred)
        precision = precision_score(gold, pred)
        recall = recall_score(gold, pred)
    return {"f1": 100.0 * float(f1), "precision": 100.0 * float(precision),
            "recall": 100.0 * float(recall)}
