"""Shared Hub-row mapping per task family; task modules subclass these and add their files."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

from xstilts.data.examples import Answer, SentenceExample, SpanQAExample, TaggingExample
from xstilts.errors import XstiltsError
from xstilts.families import SENTENCE_CLASSIFICATION, SPAN_QA, TAGGING
from xstilts.tasks.registry import Task, hub_label


class SentenceTask(Task):
    """Sentence(-pair) classification; Hub rows have two text fields and a label field."""

    family = SENTENCE_CLASSIFICATION
    hub_text_a: ClassVar[str] = "premise"
    hub_text_b: ClassVar[str | None] = "hypothesis"
    hub_label_field: ClassVar[str] = "label"
    hub_guid_field: ClassVar[str | None] = None

    def hub_convert_label(self, text: str) -> str:
        return text

    def from_hub_rows(self, rows: Iterable[Mapping[str, Any]], lang: str, split: str,
                      label_names: Sequence[str] | None = None) -> list[SentenceExample]:
        out = []
        for i, row in enumerate(rows):
            guid = str(row[self.hub_guid_field]) if self.hub_guid_field else str(i)
            out.append(SentenceExample(
                f"{lang}-{guid}", lang, row[self.hub_text_a],
                row[self.hub_text_b] if self.hub_text_b else None,
                hub_label(row[self.hub_label_field], label_names, self.labels, self.hub_convert_label)))
        return out


class TaggingTask(Task):
    """Word tagging; Hub rows have ``tokens`` and a sequence of (ClassLabel) tags."""

    family = TAGGING
    hub_tags_field: ClassVar[str] = "ner_tags"
    # Which sub-token of a word carries its label (data.featurize.tagging.TAG_ALIGNMENTS):
    # XTREME's first sub-token here; a declared variant (tasks.declared) may pick first_content.
    tag_alignment: ClassVar[str] = "first_subtoken"

    def from_hub_rows(self, rows: Iterable[Mapping[str, Any]], lang: str, split: str,
                      label_names: Sequence[str] | None = None) -> list[TaggingExample]:
        out = []
        for i, row in enumerate(rows):
            tags = tuple(hub_label(t, label_names, self.labels) or "" for t in row[self.hub_tags_field])
            out.append(TaggingExample(f"{lang}-{i}", lang, tuple(row["tokens"]), tags))
        return out


class SpanQATask(Task):
    """Extractive QA; Hub rows are SQuAD-like (``answers = {"text": [...], "answer_start": [...]}``)."""

    family = SPAN_QA
    metric = "squad_em_f1"
    # SQuAD 2.0 marks unanswerable questions by an empty answer list.
    empty_answers_mean_impossible: ClassVar[bool] = False

    def from_hub_rows(self, rows: Iterable[Mapping[str, Any]], lang: str, split: str,
                      label_names: Sequence[str] | None = None) -> list[SpanQAExample]:
        out = []
        for row in rows:
            answers = row["answers"]
            texts, starts = list(answers["text"]), list(answers["answer_start"])
            if len(texts) != len(starts):
                raise XstiltsError(f"Hub row {row.get('id')}: {len(texts)} answer texts but {len(starts)} starts")
            pairs = tuple(Answer(t, int(s)) for t, s in zip(texts, starts) if t)
            out.append(SpanQAExample(
                guid=str(row["id"]), lang=lang, question=row["question"], context=row["context"],
                answers=pairs, is_impossible=self.empty_answers_mean_impossible and not pairs,
                title=str(row.get("title", "") or "").strip()))
        return out
