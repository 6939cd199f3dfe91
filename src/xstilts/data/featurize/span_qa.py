"""Extractive QA (SQuAD 1.1/2.0, XQuAD, MLQA, TyDiQA-GoldP), as HF ``run_qa`` does it.

Question first, context second, ``truncation="only_second"``: a long context
becomes several windows overlapping by ``doc_stride`` tokens. Each window keeps
the character offsets of its context tokens so that :func:`best_spans` can cut
the predicted answer out of the original context.

One change from ``run_qa``: offsets are trimmed of leading whitespace. XLM-R's
sentencepiece tokens carry the preceding space (``"▁word"`` covers ``" word"``),
so untrimmed offsets would make every predicted answer start with a space.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import numpy as np
import torch

from xstilts.data.examples import SpanQAExample
from xstilts.data.featurize.base import (
    TOKENIZE_CHUNK,
    FeaturizationError,
    SpanQAFeature,
    collate_inputs,
    to_ids,
    token_types,
)


def _context_offsets(offsets: Sequence[tuple[int, int]], sequence_ids: Sequence[int | None],
                     context: str, context_id: int) -> np.ndarray:
    """``[seq, 2]`` char spans of context tokens, -1 elsewhere, cleaned for answer extraction.

    Leading whitespace is trimmed, and a span that overlaps the next token's is
    cut at that token's start: sentencepiece emits a lone ``"▁"`` token for a
    space it inserted itself (e.g. before the first character of the context)
    and the tokenizer maps it onto the next character, which would otherwise
    make the answer walk below put the end before the start.
    """
    out = np.full((len(offsets), 2), -1, dtype=np.int32)
    previous = -1
    for pos, ((start, end), seq) in enumerate(zip(offsets, sequence_ids)):
        if seq != context_id:
            continue
        while start < end and context[start].isspace():
            start += 1
        out[pos] = (start, end)
        if previous >= 0 and out[previous, 1] > start:
            out[previous] = (min(out[previous, 0], start), start)
        previous = pos
    return out


def _answer_chars(ex: SpanQAExample) -> tuple[int, int]:
    """``[start, end)`` of the first answer in the context, whitespace at either end dropped."""
    answer = ex.answers[0]
    start, end = answer.start, answer.start + len(answer.text)
    if ex.context[start:end] != answer.text:
        raise FeaturizationError(
            f"example {ex.guid}: answer {answer.text!r} is not at character {start} of the context "
            f"(found {ex.context[start:end]!r})")
    while start < end and ex.context[start].isspace():
        start += 1
    while end > start and ex.context[end - 1].isspace():
        end -= 1
    if start == end:
        raise FeaturizationError(f"example {ex.guid}: answer {answer.text!r} is only whitespace")
    return start, end


def _answer_tokens(offsets: np.ndarray, start_char: int, end_char: int, cls_index: int
                   ) -> tuple[int, int]:
    """Token span of ``[start_char, end_char)`` in this window, or ``(cls, cls)`` if not inside it."""
    context_positions = np.flatnonzero(offsets[:, 0] >= 0)
    first, last = context_positions[0], context_positions[-1]
    if not (offsets[first, 0] <= start_char and offsets[last, 1] >= end_char):
        return cls_index, cls_index
    # Same walk as run_qa: last token starting at or before the answer start,
    # first token ending at or after the answer end.
    start = first
    while start <= last and offsets[start, 0] <= start_char:
        start += 1
    end = last
    while end >= first and offsets[end, 1] >= end_char:
        end -= 1
    return int(start - 1), int(end + 1)


def featurize_span_qa(examples: Sequence[SpanQAExample], tokenizer: Any, *, max_length: int = 384,
                      doc_stride: int = 128) -> list[SpanQAFeature]:
    """One feature per window; ``start/end_position`` label the first answer, CLS otherwise."""
    features: list[SpanQAFeature] = []
    for chunk_start in range(0, len(examples), TOKENIZE_CHUNK):
        chunk = examples[chunk_start:chunk_start + TOKENIZE_CHUNK]
        # run_qa strips the question's left whitespace: some questions start with
        # long runs of spaces that would waste the window.
        enc = tokenizer([ex.question.lstrip() for ex in chunk], [ex.context for ex in chunk],
                        truncation="only_second", max_length=max_length, stride=doc_stride,
                        return_overflowing_tokens=True, return_offsets_mapping=True)
        for row, k in enumerate(enc["overflow_to_sample_mapping"]):
            ex = chunk[k]
            ids = enc["input_ids"][row]
            cls_index = ids.index(tokenizer.cls_token_id) if tokenizer.cls_token_id in ids else 0
            offsets = _context_offsets(enc["offset_mapping"][row], enc.sequence_ids(row), ex.context, 1)
            if ex.is_impossible or not ex.answers or not (offsets[:, 0] >= 0).any():
                start = end = cls_index
            else:
                start, end = _answer_tokens(offsets, *_answer_chars(ex), cls_index)
            features.append(SpanQAFeature(
                input_ids=to_ids(ids), offsets=offsets, start_position=start, end_position=end,
                cls_index=cls_index, example_index=chunk_start + k, token_type_ids=token_types(enc, row)))
    return features


class AnswerSpan(NamedTuple):
    """A predicted answer: its text, its ``[start, end)`` character offsets in the context (from the
    tokenizer's offset mapping) and ``score``, the probability of the span in its window (below)."""

    text: str
    start: int | None
    end: int | None
    score: float | None

    def to_dict(self) -> dict[str, Any]:
        return {"answer": self.text, "start": self.start, "end": self.end, "score": self.score}


NO_ANSWER = AnswerSpan("", None, None, None)


def best_spans(start_logits: Sequence[np.ndarray] | np.ndarray, end_logits: Sequence[np.ndarray] | np.ndarray,
               features: Sequence[SpanQAFeature], examples: Sequence[SpanQAExample], **kw: Any) -> dict[str, str]:
    """Answer text per example ``guid`` (:func:`answer_spans`' texts; the same keyword arguments)."""
    return {guid: span.text for guid, span in answer_spans(start_logits, end_logits, features, examples,
                                                           **kw).items()}


def _window_best(starts: np.ndarray, ends: np.ndarray, f: SpanQAFeature, n_best: int,
                 max_answer_len: int) -> tuple[float, int, int] | None:
    """(start + end logit, start token, end token) of the window's best valid span, or None."""
    # all n_best x n_best (start, end) pairs at once, in run_qa's loop order
    s = np.argsort(starts)[::-1][:n_best][:, None]
    e = np.argsort(ends)[::-1][:n_best][None, :]
    valid = ((f.offsets[s, 0] >= 0) & (f.offsets[e, 0] >= 0) & (e >= s)
             & (e - s + 1 <= max_answer_len)
             & (f.offsets[s, 0] < f.offsets[e, 1]))  # non-empty text
    if not valid.any():
        return None
    scores = np.where(valid, starts[s] + ends[e], -np.inf)
    i, j = np.unravel_index(np.argmax(scores), scores.shape)  # first best, as run_qa's sort
    return float(scores[i, j]), int(s[i, 0]), int(e[0, j])


def _span_probability(starts: np.ndarray, ends: np.ndarray, f: SpanQAFeature, s: int, e: int) -> float:
    """p(start = s) * p(end = e), each a softmax over the window's context tokens and CLS
    (the Hugging Face question-answering pipeline's score; question tokens cannot be answers)."""
    keep = f.offsets[:, 0] >= 0
    keep[f.cls_index] = True

    def log_softmax_at(x: np.ndarray, k: int) -> float:
        v = x[keep]
        top = v.max()
        return float(x[k] - top - np.log(np.exp(v - top).sum()))

    return float(np.exp(log_softmax_at(starts, s) + log_softmax_at(ends, e)))


def answer_spans(start_logits: Sequence[np.ndarray] | np.ndarray, end_logits: Sequence[np.ndarray] | np.ndarray,
                 features: Sequence[SpanQAFeature], examples: Sequence[SpanQAExample], *, n_best: int = 20,
                 max_answer_len: int = 30, allow_impossible: bool = False,
                 null_score_diff_threshold: float = 0.0) -> dict[str, AnswerSpan]:
    """The answer span per example ``guid`` from per-feature logits (HF ``postprocess_qa_predictions``).

    For every window, the ``n_best`` highest start and end logits are paired;
    pairs outside the context, reversed or longer than ``max_answer_len`` tokens
    are dropped and the pair with the highest ``start + end`` logit over all
    windows wins. With ``allow_impossible`` (SQuAD 2.0) the answer is ``""`` when
    the lowest CLS score ``start[cls] + end[cls]`` over the windows exceeds the
    best span's score by more than ``null_score_diff_threshold``. Logit rows may
    be padded past the feature's length. Spans whose text is empty (a lone
    ``"▁"`` token) are skipped, and an example with no valid span gets ``""``
    (run_qa writes the placeholder ``"empty"``, which scores the same) with no
    offsets and no score.

    Raises:
        ValueError: row counts differ, or two examples share a guid (their
            answers would collapse into one dict entry).
    """
    if not (len(start_logits) == len(end_logits) == len(features)):
        raise ValueError(f"{len(start_logits)} start rows, {len(end_logits)} end rows, "
                         f"{len(features)} features")
    guids = [ex.guid for ex in examples]
    if len(set(guids)) != len(guids):
        seen: set[str] = set()
        dup = next(g for g in guids if g in seen or seen.add(g))  # type: ignore[func-returns-value]
        raise ValueError(f"example guid {dup!r} occurs more than once: answers are keyed by guid, "
                         "so two questions would share one prediction")
    per_example: dict[int, list[int]] = {}
    for i, f in enumerate(features):
        per_example.setdefault(f.example_index, []).append(i)

    answers: dict[str, AnswerSpan] = {}
    for example_index, ex in enumerate(examples):
        best: tuple[float, int, int, int, np.ndarray, np.ndarray] | None = None
        null_score = np.inf
        for i in per_example.get(example_index, []):
            f = features[i]
            n = len(f.input_ids)
            starts = np.asarray(start_logits[i], dtype=np.float64)[:n]
            ends = np.asarray(end_logits[i], dtype=np.float64)[:n]
            null_score = min(null_score, starts[f.cls_index] + ends[f.cls_index])
            found = _window_best(starts, ends, f, n_best, max_answer_len)
            if found is not None and (best is None or found[0] > best[0]):
                best = (found[0], i, found[1], found[2], starts, ends)
        if best is None or (allow_impossible and null_score - best[0] > null_score_diff_threshold):
            answers[ex.guid] = NO_ANSWER
            continue
        _, i, s, e, starts, ends = best
        a, b = int(features[i].offsets[s, 0]), int(features[i].offsets[e, 1])
        answers[ex.guid] = AnswerSpan(ex.context[a:b], a, b, _span_probability(starts, ends, features[i], s, e))
    return answers


def collate(features: Sequence[SpanQAFeature], pad_id: int, *,
            pad_to_multiple_of: int | None = None) -> dict[str, torch.Tensor]:
    """Pad to the longest row: ``input_ids``, ``attention_mask``, ``start_positions``, ``end_positions``."""
    batch = collate_inputs(features, pad_id, pad_to_multiple_of)
    batch["start_positions"] = torch.tensor([f.start_position for f in features], dtype=torch.long)
    batch["end_positions"] = torch.tensor([f.end_position for f in features], dtype=torch.long)
    return batch


@dataclass
class SpanQAFeaturizer:
    """:func:`featurize_span_qa` with its settings, for the feature cache."""

    tokenizer: Any
    max_length: int = field(default=384, metadata={"help": "Window length in tokens, question included."})
    doc_stride: int = field(default=128, metadata={"help": "Tokens shared by consecutive windows."})
    name: ClassVar[str] = "span_qa"

    def params(self) -> dict[str, Any]:
        return {"max_length": self.max_length, "doc_stride": self.doc_stride}

    def __call__(self, examples: Sequence[SpanQAExample]) -> list[SpanQAFeature]:
        return featurize_span_qa(examples, self.tokenizer, max_length=self.max_length,
                                 doc_stride=self.doc_stride)

