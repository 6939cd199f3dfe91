"""One example schema per task family.

Every source (a local file in the original format, or a Hugging Face ``datasets`` id)
is mapped into these records; everything downstream (featurizers, metrics,
intermediate specs) reads only these, so the offline and online paths share code.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class SentenceExample:
    """Sentence or sentence-pair classification (XNLI, PAWS-X, MNLI, ANLI, QQP, SST-2)."""

    guid: str
    lang: str
    text_a: str
    text_b: str | None
    label: str | None  # None where the split ships without gold labels


@dataclass(frozen=True)
class TaggingExample:
    """Word-level tagging (UD-POS, PAN-X): one tag per whitespace word."""

    guid: str
    lang: str
    words: tuple[str, ...]
    tags: tuple[str, ...] | None


@dataclass(frozen=True)
class Answer:
    text: str
    start: int  # character offset into the context


@dataclass(frozen=True)
class SpanQAExample:
    """Extractive QA (SQuAD 1.1/2.0, XQuAD, MLQA, TyDiQA-GoldP)."""

    guid: str
    lang: str
    question: str
    context: str
    answers: tuple[Answer, ...]
    is_impossible: bool = False
    title: str = ""


@dataclass(frozen=True)
class MultipleChoiceExample:
    """Pick one of several endings/answers (HellaSwag, CommonsenseQA, CosmosQA)."""

    guid: str
    lang: str
    context: str
    question: str
    choices: tuple[str, ...]
    label: int | None


@dataclass(frozen=True)
class ParallelCorpus:
    """Retrieval data (Tatoeba, BUCC): source sentences in ``lang``, targets in English.

    ``gold`` holds (source id, target id) pairs; for Tatoeba line i aligns with line i.
    """

    lang: str
    source_ids: tuple[str, ...]
    source: tuple[str, ...]
    target_ids: tuple[str, ...]
    target: tuple[str, ...]
    gold: tuple[tuple[str, str], ...] = field(default=())


Example = SentenceExample | TaggingExample | SpanQAExample | MultipleChoiceExample
