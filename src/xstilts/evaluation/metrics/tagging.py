"""Word-level tagging scores (PAN-X, UD-POS) exactly as XTREME computes them.

XTREME (``third_party/run_tag.py`` ``evaluate`` and ``evaluate.py`` ``f1``) calls
seqeval's ``f1_score``, ``precision_score`` and ``recall_score`` in their default
mode for *both* NER and POS. The default mode is seqeval's conlleval-compatible
chunking (not ``mode="strict"``): an ``I-X`` after ``O`` still opens an entity.

PAN-X (:func:`seqeval_f1`) uses the installed seqeval: for ``B-``/``I-`` tags its
chunking is the same in every version.

UD-POS (:func:`xtreme_pos_f1`) is where versions differ. XTREME ran seqeval
0.0.12, whose ``get_entities`` splits a tag into ``prefix = tag[0]`` and
``type = tag.split("-")[-1]``: a POS tag without a hyphen keeps its *whole name*
as the type (``CCONJ`` -> prefix ``C``, type ``CCONJ``). seqeval >= 1.0 takes
``type = tag[1:]`` instead, so ``CCONJ`` and ``SCONJ`` both become type
``CONJ`` and a gold ``CCONJ`` predicted as ``SCONJ`` counts as correct (and
``X`` gets the empty type ``"_"``, the same as ``O``, so X chunks do not open
after an ``O``).
:func:`xtreme_pos_f1` re-implements the 0.0.12 chunking (see
:func:`seqeval_0012_chunks`), so it gives XTREME's number. In both versions the
first letter still acts as a chunk prefix, which makes "F1" a chunk score, not
per-word accuracy: a run of identical tags is one chunk (``PROPN PROPN``;
tagging one of them wrongly loses the whole chunk), except for tags whose first
letter is a prefix letter with its own rules (``SCONJ``/``SYM``: ``S`` = single,
each word its own chunk). We reproduce that on purpose, because it is the number
XTREME reports, and report token accuracy (XTREME-R's POS metric) beside it.

Scores are micro-averaged over all chunks of all sentences and given in percent.
"""
from __future__ import annotations

import warnings
from collections.abc import Sequence

from seqeval.metrics import f1_score, precision_score, recall_score

from xstilts.evaluation.metrics.validation import MetricInputError, check_same_length


def _checked(labels: Sequence[Sequence[str]],
             predictions: Sequence[Sequence[str]]) -> tuple[list[list[str]], list[list[str]]]:
    """Both tag sets as lists of lists, after checking shapes and tag types."""
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
    return gold, pred


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
    gold, pred = _checked(labels, predictions)
    with warnings.catch_warnings():
        # POS tags are not B-/I- tags, and empty predictions trigger zero-division
        # warnings; both are expected here (see module docstring).
        warnings.simplefilter("ignore")
        f1 = f1_score(gold, pred)
        precision = precision_score(gold, pred)
        recall = recall_score(gold, pred)
    return {"f1": 100.0 * float(f1), "precision": 100.0 * float(precision),
            "recall": 100.0 * float(recall)}


def _end_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    """seqeval 0.0.12 ``end_of_chunk``: did a chunk end before the current word?"""
    return (prev_tag in ("E", "S")
            or (prev_tag in ("B", "I") and tag in ("B", "S", "O"))
            or (prev_tag not in ("O", ".") and prev_type != type_))


def _start_of_chunk(prev_tag: str, tag: str, prev_type: str, type_: str) -> bool:
    """seqeval 0.0.12 ``start_of_chunk``: does a chunk start at the current word?"""
    return (tag in ("B", "S")
            or (prev_tag in ("E", "S", "O") and tag in ("E", "I"))
            or (tag not in ("O", ".") and prev_type != type_))


def seqeval_0012_chunks(sentences: Sequence[Sequence[str]]) -> list[tuple[str, int, int]]:
    """Chunks ``(type, first, last)`` exactly as seqeval 0.0.12 ``get_entities`` finds them.

    Sentences are joined with an ``"O"`` between them (and one at the end), and
    positions count over that joined sequence, as in 0.0.12. For every tag,
    ``prefix = tag[0]`` and ``type = tag.split("-")[-1]``; chunk boundaries follow
    0.0.12's ``end_of_chunk``/``start_of_chunk`` rules on that prefix. For the 17
    UPOS tags this means:

    * the type is the whole tag, so every tag is its own chunk type
      (``CCONJ`` != ``SCONJ``);
    * prefixes ``A C D N P V X`` (ADJ ADP ADV AUX CCONJ DET NOUN NUM PART PRON
      PROPN PUNCT VERB X) have no rule of their own: a chunk ends and a new one
      starts only where the type changes, so a run of one tag is one chunk;
    * ``INTJ`` has prefix ``I``: a run of INTJ is likewise one chunk;
    * ``SCONJ`` and ``SYM`` have prefix ``S`` ("single"): every such word is a
      chunk of its own, so ``SYM SYM`` is two chunks.
    """
    seq = [tag for sentence in sentences for tag in (*sentence, "O")]
    prev_tag, prev_type, begin = "O", "", 0
    chunks: list[tuple[str, int, int]] = []
    for i, chunk in enumerate([*seq, "O"]):
        tag, type_ = chunk[0], chunk.split("-")[-1]
        if _end_of_chunk(prev_tag, tag, prev_type, type_):
            chunks.append((prev_type, begin, i - 1))
        if _start_of_chunk(prev_tag, tag, prev_type, type_):
            begin = i
        prev_tag, prev_type = tag, type_
    return chunks


def xtreme_pos_f1(labels: Sequence[Sequence[str]], predictions: Sequence[Sequence[str]],
                  language: str | None = None) -> dict[str, float]:
    """UD-POS as XTREME scored it (seqeval 0.0.12 chunk F1) plus token accuracy, in percent.

    ``f1``/``precision``/``recall`` are micro-averaged over the chunks of
    :func:`seqeval_0012_chunks` (0.0.12 ``f1_score``: sets of ``(type, first,
    last)``, 0 where nothing is predicted or gold). ``accuracy`` is the share of
    words whose tag is right (XTREME-R's POS metric); it is an extra key, the
    headline stays ``f1``.

    Args:
        labels: gold UPOS tags, one list per sentence, one tag per word.
        predictions: predicted tags, the same shape.
        language: unused; kept for the shared metric signature.

    Raises:
        MetricInputError: shapes differ, a tag is not a non-empty string, or
            there are no words at all.
    """
    gold, pred = _checked(labels, predictions)
    if any(not tag for s in (*gold, *pred) for tag in s):
        raise MetricInputError("tags must be non-empty strings, got ''")
    n_words = sum(len(s) for s in gold)
    if n_words == 0:
        raise MetricInputError("no words to score: every sentence is empty")
    true_chunks = set(seqeval_0012_chunks(gold))
    pred_chunks = set(seqeval_0012_chunks(pred))
    correct = len(true_chunks & pred_chunks)
    p = correct / len(pred_chunks) if pred_chunks else 0.0
    r = correct / len(true_chunks) if true_chunks else 0.0
    f1 = 2 * p * r / (p + r) if p + r > 0 else 0.0
    right = sum(g == q for gs, ps in zip(gold, pred) for g, q in zip(gs, ps))
    return {"f1": 100.0 * f1, "precision": 100.0 * p, "recall": 100.0 * r,
            "accuracy": 100.0 * right / n_words}
