"""SQuAD v1.1 exact match and F1 (XQuAD and TyDiQA-GoldP in XTREME).

Re-implements the official ``evaluate-v1.1.py`` (the copy XTREME downloads as
``third_party/evaluate_squad.py``):

* ``normalize_answer``: lower-case, drop ASCII punctuation (``string.punctuation``
  only; other Unicode punctuation is kept), drop the English articles
  ``a|an|the`` as whole words, collapse whitespace;
* exact match: normalized strings are equal;
* F1: bag-of-tokens overlap of the whitespace tokens of the normalized strings;
* per question the maximum over its ground-truth answers; questions without a
  prediction count as 0; averages in percent over all gold questions.
"""
from __future__ import annotations

import re
import string
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence

from xstilts.data.examples import SpanQAExample
from xstilts.evaluation.metrics.validation import MetricInputError

_ASCII_PUNCT = frozenset(string.punctuation)
_EN_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """Lower text, remove ASCII punctuation, English articles and extra whitespace."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _ASCII_PUNCT)
    text = _EN_ARTICLES.sub(" ", text)
    return " ".join(text.split())


def overlap_f1(prediction_tokens: Sequence[str], truth_tokens: Sequence[str]) -> float:
    """Token-multiset F1 in [0, 1] as in the official script (0 when nothing overlaps)."""
    common = Counter(prediction_tokens) & Counter(truth_tokens)
    num_same = sum(common.values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(prediction_tokens)
    recall = num_same / len(truth_tokens)
    return 2 * precision * recall / (precision + recall)


def exact_match_score(prediction: str, ground_truth: str) -> bool:
    """Whether the normalized strings are equal."""
    return normalize_answer(prediction) == normalize_answer(ground_truth)


def f1_score(prediction: str, ground_truth: str) -> float:
    """Token F1 in [0, 1] of the normalized strings."""
    return overlap_f1(normalize_answer(prediction).split(), normalize_answer(ground_truth).split())


def em_f1_with(normalize: Callable[[str], str], references: Mapping[str, Sequence[str]],
               predictions: Mapping[str, str]) -> dict[str, float]:
    """EM and F1 in percent with a given normalizer (shared by SQuAD and MLQA).

    ``references`` maps each question id to its gold answer texts; every gold
    question counts, an unanswered one scores 0, and predictions for ids that are
    not in ``references`` are ignored, as in the official scripts.
    """
    if not references:
        raise MetricInputError("no gold questions to score: references are empty")
    exact = f1 = 0.0
    for qid, truths in references.items():
        if isinstance(truths, str) or len(truths) == 0:
            raise MetricInputError(
                f"question {qid!r}: expected a non-empty list of gold answer texts, got {truths!r}")
        if qid not in predictions:
            continue
        pred = predictions[qid]
        if not isinstance(pred, str):
            raise MetricInputError(f"question {qid!r}: prediction must be a string, got {pred!r}")
        norm_pred = normalize(pred)
        pred_tokens = norm_pred.split()
        norm_truths = [normalize(t) for t in truths]
        exact += max(float(norm_pred == t) for t in norm_truths)
        f1 += max(overlap_f1(pred_tokens, t.split()) for t in norm_truths)
    total = len(references)
    return {"exact_match": 100.0 * exact / total, "f1": 100.0 * f1 / total}


def squad_em_f1(references: Mapping[str, Sequence[str]], predictions: Mapping[str, str],
                language: str | None = None) -> dict[str, float]:
    """SQuAD v1.1 ``{"exact_match", "f1"}`` in percent (``language`` is unused).

    Args:
        references: question id -> gold answer texts (see
            :func:`references_from_examples`).
        predictions: question id -> predicted answer text.
    """
    return em_f1_with(normalize_answer, references, predictions)


def references_from_examples(examples: Iterable[SpanQAExample]) -> dict[str, list[str]]:
    """Question id -> gold answer texts, the form both QA metrics take.

    Raises:
        MetricInputError: an id repeats or an example has no gold answer (the
            split's labels are missing).
    """
    refs: dict[str, list[str]] = {}
    for ex in examples:
        if ex.guid in refs:
            raise MetricInputError(f"question id {ex.guid!r} occurs twice")
        if not ex.answers:
            raise MetricInputError(f"question {ex.guid!r} has no gold answer")
        refs[ex.guid] = [a.text for a in ex.answers]
    return refs
