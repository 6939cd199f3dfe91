"""Word tagging (UD-POS, PAN-X): one label per word, on its first sub-token."""
from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from xstilts.errors import XstiltsError
from xstilts.families.base import ServingField, ServingSchema, TaskFamily


CONLLU_TAG_COLUMNS = {"UPOS": 3, "XPOS": 4}
"""The CoNLL-U columns a declared dataset may take its tags from."""


class Tagging(TaskFamily):
    """Token logits -> one tag per word; XTREME's file holds one tag per line, a blank line per sentence."""

    name = "tagging"
    serving = ServingSchema(
        (ServingField("words", "list[string]", required=False, doc="the sentence, split into words",
                      words=True),
         ServingField("text", "string", required=False,
                      doc="or the sentence: split at whitespace, Chinese and Japanese script into characters")),
        output="one tag per word")
    endpoint = "tag"
    declared_formats = {"conll": ((), ("word", "tag")), "conllu": ((), ("tag",)),
                        "jsonl": (("words", "tags"), ("guid",))}
    default_metric = "seqeval_f1"

    def read_declared(self, fmt: str, path, lang: str, *, fields: Mapping[str, Any], labels, label_map,
                      options: Mapping[str, Any]) -> list[Any]:
        from xstilts.data.readers import mapped, read_conllu

        if fmt == "conllu":
            return read_conllu(path, lang, labels=labels, tag_column=CONLLU_TAG_COLUMNS[fields.get("tag", "UPOS")])
        if fmt == "jsonl":
            return mapped.read_mapped_tagging_jsonl(path, lang, fields=fields, labels=labels, label_map=label_map)
        return mapped.read_conll(path, lang, word=int(fields.get("word", 0)), tag=int(fields.get("tag", -1)),
                                 delimiter=options.get("delimiter"), labels=labels, label_map=label_map)
    export_outputs = {"logits": ("batch", "sequence", None)}

    def featurizer(self, task, tokenizer, *, max_length: int, doc_stride: int):
        from xstilts.data.featurize.tagging import TaggingFeaturizer

        # The task's alignment (tasks._families.TaggingTask.tag_alignment): XTREME's first
        # sub-token unless a declared task variant chooses first_content.
        return TaggingFeaturizer(tokenizer, list(task.labels), max_length=max_length,
                                 alignment=getattr(task, "tag_alignment", "first_subtoken"))

    def method_note(self, task) -> str | None:
        """Which word-to-piece alignment produced ``task``'s scores (issue 15: zh, ja and th differ a lot)."""
        from xstilts.data.featurize.tagging import FIRST_CONTENT

        if getattr(task, "tag_alignment", None) == FIRST_CONTENT:
            return (f"{task.name}: each word's tag on its first piece that carries the word (tag_alignment "
                    "first_content: a lone '\u2581' piece is skipped), not XTREME's convention.")
        return (f"{task.name}: each word's tag on its first sub-token (tag_alignment first_subtoken, XTREME's "
                "convention; in Chinese and Japanese that is mostly a lone '\u2581' piece, see docs/datasets.md).")

    def collate(self, features: Sequence[Any], pad_id: int) -> dict:
        from xstilts.data.featurize.tagging import collate

        return collate(features, pad_id=pad_id)

    def build_head(self, num_labels: int, config):
        from xstilts.models.heads import TaggingHead

        return TaggingHead(config.hidden_size, num_labels, getattr(config, "hidden_dropout_prob", 0.1))

    def forward(self, model, head, batch: Mapping[str, Any]):
        from xstilts.models.heads import TaskOutput, cross_entropy

        logits = head(model.encode(batch["input_ids"], batch["attention_mask"]))
        labels = batch.get("labels")
        loss = None if labels is None else cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
        return TaskOutput(loss, logits)

    def decode(self, data, outputs: Iterable[tuple[list[int], list[int], Any]]) -> list[list[str]]:
        from xstilts.data.featurize.tagging import word_predictions

        feats = data.features.features
        token_preds: list[Any] = [None] * len(feats)
        for _units, rows, res in outputs:
            for r, p in zip(rows, res.logits.float().argmax(-1).numpy()):
                token_preds[r] = p[: len(feats[r].input_ids)]
        labels = data.task.labels
        return [[labels[i] for i in row] for row in word_predictions(feats, token_preds, data.examples)]

    def gold(self, task, examples: Sequence[Any]) -> list[list[str]]:
        return [list(ex.tags) for ex in examples]

    def require_gold(self, task, lang: str, split: str, data: Any) -> None:
        from xstilts.evaluation.gold_check import MIN_ITEMS_FOR_PLACEHOLDER, constant_value, refuse

        if not data:
            raise refuse(task, lang, split, "the split is empty")
        n = len(data)
        missing = sum(ex.tags is None for ex in data)
        if missing:
            raise refuse(task, lang, split, f"{missing} of {n} sentences have no gold tags")
        only = constant_value([tag for ex in data for tag in ex.tags])
        if only is not None and n >= MIN_ITEMS_FOR_PLACEHOLDER:
            raise refuse(task, lang, split, f"every word of all {n} sentences is tagged {only!r}, "
                                            "a placeholder for held-out gold tags")

    def write_predictions(self, pred_dir: Path, task, split: str, lang: str, predictions: Any) -> Path:
        from xstilts.evaluation import predictions as files

        return files.write_tag_predictions(pred_dir, task.name, split, lang, predictions)

    def check_row(self, i: int, row: Mapping[str, Any]) -> None:
        if not row.get("words") and not text_word_spans(str(row.get("text") or "")):
            raise XstiltsError(f"serving row {i}: give 'words' (a list of words) or 'text' (a sentence)")

    def examples_from_rows(self, task, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        from xstilts.data.examples import TaggingExample

        return [TaggingExample(str(i), "serve", tuple(words_of(r)), None) for i, r in enumerate(rows)]

    def describe(self, rows: Sequence[Mapping[str, Any]], responses: Sequence[Any]) -> list[dict[str, Any]]:
        """Words with their tags and character offsets, and the BIO entities (``B-X I-X ...``) they form.

        Offsets index the row's ``text``, or ``" ".join(words)`` when words were given.
        """
        out = []
        for row, tags in zip(rows, responses):
            text, spans = word_spans(row)
            tokens = [{"word": text[a:b], "tag": t, "start": a, "end": b} for (a, b), t in zip(spans, tags)]
            out.append({"tokens": tokens, "entities": bio_entities(text, spans, tags)})
        return out


def words_of(row: Mapping[str, Any]) -> list[str]:
    """A served row's words: its ``words``, or its ``text`` split as :func:`text_word_spans` splits it."""
    text, spans = word_spans(row)
    return [text[a:b] for a, b in spans]


def word_spans(row: Mapping[str, Any]) -> tuple[str, list[tuple[int, int]]]:
    """The row's text and the ``(start, end)`` of each word: its ``words`` joined by spaces, or its
    ``text`` split by :func:`text_word_spans`."""
    if row.get("words"):
        words = [str(w) for w in row["words"]]
        starts = [sum(len(w) + 1 for w in words[:i]) for i in range(len(words))]
        return " ".join(words), [(s, s + len(w)) for s, w in zip(starts, words)]
    text = str(row["text"])
    return text, text_word_spans(text)


#: Han, kana, CJK punctuation and full-width forms: PAN-X's Chinese and Japanese give each such character
#: a tag of its own (their text has no spaces between words)
_CJK = "\u3001-\u303f\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff00-\uffef\U00020000-\U0002fa1f"
_TEXT_WORDS = re.compile(f"[{_CJK}]|[^\\s{_CJK}]+")


def text_word_spans(text: str) -> list[tuple[int, int]]:
    """The ``(start, end)`` of each word of a served ``text``: runs between whitespace, except that every
    Han, kana or other CJK character is a word of its own, as in PAN-X's Chinese and Japanese."""
    return [m.span() for m in _TEXT_WORDS.finditer(text)]


def bio_entities(text: str, spans: Sequence[tuple[int, int]], tags: Sequence[str]) -> list[dict[str, Any]]:
    """Entities of BIO tags: a ``B-X`` (or a stray ``I-X``) starts one, following ``I-X`` extend it.

    Words are split at whitespace, so punctuation written against a word is part of it ("Naijiria.",
    "(Sudan)"); an entity's text leaves out such punctuation at its two ends (:func:`trim_punctuation`),
    and an entity of nothing but punctuation is dropped. Each word's own tag is unchanged."""
    entities: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None
    for (a, b), tag in zip(spans, tags):
        kind = tag[2:] if tag[:2] in ("B-", "I-") else None
        if kind is not None and tag.startswith("I-") and current is not None and current["label"] == kind:
            current["end"] = b
        elif kind is not None:
            current = {"label": kind, "start": a, "end": b}
            entities.append(current)
        else:
            current = None
    trimmed = [(trim_punctuation(text, e["start"], e["end"]), e["label"]) for e in entities]
    return [{"text": text[a:b], "label": label, "start": a, "end": b} for (a, b), label in trimmed if a < b]


def trim_punctuation(text: str, start: int, end: int) -> tuple[int, int]:
    """``text[start:end]`` without the punctuation (Unicode category P) and spaces at its two ends, except the full
    stop of a one-letter abbreviation ("J.", "U.S."), which belongs to the name."""
    def punct(i: int) -> bool:  # spaces too: a trailing ")" word leaves the space before it
        return text[i].isspace() or unicodedata.category(text[i]).startswith("P")

    def initial_stop(i: int) -> bool:  # text[i] == "." right after a letter that starts a word or follows "."
        return (text[i] == "." and i - 1 >= start and text[i - 1].isalpha()
                and (i - 2 < start or text[i - 2] in ". "))

    while start < end and punct(start):
        start += 1
    while end > start and punct(end - 1) and not initial_stop(end - 1):
        end -= 1
    return start, end


TAGGING = Tagging()
