"""JSON-lines and CSV files: ANLI, HellaSwag, CommonsenseQA (jsonl), CosmosQA (csv)."""
from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence
from typing import Any

from xstilts.data.examples import MultipleChoiceExample, SentenceExample
from xstilts.data.readers._io import PathLike, check_label, numbered, read_lines, read_text
from xstilts.errors import DataFormatError

ANLI_LABELS = {"e": "entailment", "n": "neutral", "c": "contradiction"}


def iter_jsonl(path: PathLike) -> list[tuple[int, dict[str, Any]]]:
    """``(line number, object)`` for every non-blank line; each must be a JSON object."""
    rows = []
    for lineno, line in numbered(read_lines(path)):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataFormatError(path, "one JSON object per line", line=lineno,
                                  got=f"{exc.msg} at column {exc.colno}") from None
        if not isinstance(obj, dict):
            raise DataFormatError(path, "one JSON object per line", line=lineno, got=type(obj).__name__)
        rows.append((lineno, obj))
    return rows


def _field(path: PathLike, obj: dict[str, Any], key: str, lineno: int) -> Any:
    if key not in obj:
        raise DataFormatError(path, f'a "{key}" field', line=lineno, got=f"keys {sorted(obj)}")
    return obj[key]


def read_anli_jsonl(path: PathLike, lang: str = "en", *, labels: Sequence[str]) -> list[SentenceExample]:
    """ANLI ``R{1,2,3}/{train,dev,test}.jsonl``: context, hypothesis, label e/n/c."""
    out = []
    for lineno, obj in iter_jsonl(path):
        raw = str(_field(path, obj, "label", lineno))
        label = check_label(path, ANLI_LABELS.get(raw, raw), labels, line=lineno)
        out.append(SentenceExample(str(obj.get("uid", lineno)), lang, _field(path, obj, "context", lineno),
                                   _field(path, obj, "hypothesis", lineno), label))
    return out


def read_hellaswag_jsonl(path: PathLike, lang: str = "en") -> list[MultipleChoiceExample]:
    """HellaSwag: ``ctx_a`` is the context, ``ctx_b`` the start every ending continues."""
    out = []
    for lineno, obj in iter_jsonl(path):
        endings = _field(path, obj, "endings", lineno)
        label = obj.get("label")
        if label is not None and not (isinstance(label, int) and 0 <= label < len(endings)):
            raise DataFormatError(path, f"an integer label in 0..{len(endings) - 1}", line=lineno, got=repr(label))
        out.append(MultipleChoiceExample(str(obj.get("ind", lineno)), lang, _field(path, obj, "ctx_a", lineno),
                                         _field(path, obj, "ctx_b", lineno), tuple(endings), label))
    return out


def read_commonsenseqa_jsonl(path: PathLike, lang: str = "en") -> list[MultipleChoiceExample]:
    """CommonsenseQA, both the original nested layout (``question.stem``/``question.choices``)
    and the flat Hub export (``question`` string, ``choices.label``/``choices.text``)."""
    out = []
    for lineno, obj in iter_jsonl(path):
        q = _field(path, obj, "question", lineno)
        if isinstance(q, dict):
            stem, choice_list = q.get("stem"), q.get("choices", [])
            keys = [c.get("label") for c in choice_list]
            texts = [c.get("text") for c in choice_list]
        else:
            stem = q
            choices = _field(path, obj, "choices", lineno)
            keys, texts = list(choices.get("label", [])), list(choices.get("text", []))
        if not isinstance(stem, str) or not texts or None in texts:
            raise DataFormatError(path, "a question stem and a list of choices", line=lineno)
        answer = obj.get("answerKey") or None
        if answer is not None and answer not in keys:
            raise DataFormatError(path, f"an answerKey in {keys}", line=lineno, got=repr(answer))
        out.append(MultipleChoiceExample(str(obj.get("id", lineno)), lang, "", stem, tuple(texts),
                                         keys.index(answer) if answer is not None else None))
    return out


COSMOSQA_COLUMNS = ("id", "context", "question", "answer0", "answer1", "answer2", "answer3", "label")


def read_cosmosqa_csv(path: PathLike, lang: str = "en") -> list[MultipleChoiceExample]:
    """CosmosQA ``train.csv``/``valid.csv`` (quoted CSV with a header, 4 answers)."""
    reader = csv.reader(io.StringIO(read_text(path), newline=""))
    header = next(reader)
    if tuple(header[:len(COSMOSQA_COLUMNS)]) != COSMOSQA_COLUMNS and \
            tuple(header[:len(COSMOSQA_COLUMNS) - 1]) != COSMOSQA_COLUMNS[:-1]:
        raise DataFormatError(path, f"a header {','.join(COSMOSQA_COLUMNS)}", line=1, got=",".join(header))
    out = []
    for row in reader:
        lineno = reader.line_num
        if not row:
            continue
        if len(row) != len(header):
            raise DataFormatError(path, f"{len(header)} comma-separated fields as in the header", line=lineno,
                                  got=f"{len(row)} field(s)")
        label = None
        if len(row) == len(COSMOSQA_COLUMNS) and row[7] != "":
            check_label(path, row[7], ("0", "1", "2", "3"), line=lineno)
            label = int(row[7])
        out.append(MultipleChoiceExample(row[0], lang, row[1], row[2], tuple(row[3:7]), label))
    return out
