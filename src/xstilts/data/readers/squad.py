"""SQuAD-style JSON (SQuAD 1.1/2.0, XQuAD, MLQA, TyDiQA-GoldP)."""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import replace
from typing import Any

from xstilts.data.examples import Answer, SpanQAExample
from xstilts.data.readers._io import PathLike, read_text
from xstilts.errors import DataFormatError


def _load_json(path: PathLike) -> Any:
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise DataFormatError(path, "valid JSON", line=exc.lineno, got=f"{exc.msg} at column {exc.colno}") from None


DUPLICATE_ID_SEPARATOR = "#"
"""Joins a repeated question id and the question's ordinal in its file (``"0#17"``)."""


def read_squad_json(path: PathLike, lang: str) -> list[SpanQAExample]:
    """One example per question.

    Answers with empty text are dropped: XTREME's TyDiQA-GoldP dev files ship every
    question with a blanked ``{"text": "", "answer_start": 0}`` answer (gold hidden), so
    such questions come back with ``answers=()`` and ``is_impossible=False``; use
    ``is_impossible`` (SQuAD 2.0) to tell unanswerable questions apart.

    Question ids become ``guid``. Where an id occurs more than once in the file
    (the vendored English TyDiQA-GoldP train file reuses ``"0"``, ``"1"``, ...:
    3,696 questions, 89 distinct ids), *every* question carrying that id gets
    ``f"{id}#{ordinal}"``, ordinal being the question's 0-based position among all
    questions of the file, so guids are unique and the same on every read; ids
    that occur once are kept as they are. Predictions and references are dicts
    keyed by guid, so this is what keeps two questions from sharing one answer.

    Raises:
        DataFormatError: the file is not SQuAD-shaped, or a guid would still
            repeat (an original id equal to a generated ``id#ordinal``).
    """
    data = _load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise DataFormatError(path, 'a JSON object with a "data" list (SQuAD format)', record="top level")
    examples: list[SpanQAExample] = []
    where_of: list[str] = []
    for a_i, article in enumerate(data["data"]):
        paragraphs = article.get("paragraphs") if isinstance(article, dict) else None
        if not isinstance(paragraphs, list):
            raise DataFormatError(path, 'a "paragraphs" list', record=f"data[{a_i}]")
        title = str(article.get("title", "")).strip()
        for p_i, para in enumerate(paragraphs):
            where = f"data[{a_i}].paragraphs[{p_i}]"
            if not isinstance(para, dict) or not isinstance(para.get("context"), str) \
                    or not isinstance(para.get("qas"), list):
                raise DataFormatError(path, 'a "context" string and a "qas" list', record=where)
            for q_i, qa in enumerate(para["qas"]):
                qwhere = f"{where}.qas[{q_i}]"
                if not isinstance(qa, dict) or not {"id", "question", "answers"} <= qa.keys():
                    raise DataFormatError(path, 'a question with "id", "question" and "answers"', record=qwhere)
                answers = []
                for ans in qa["answers"]:
                    if not isinstance(ans, dict) or not isinstance(ans.get("answer_start"), int) \
                            or not isinstance(ans.get("text"), str):
                        raise DataFormatError(path, 'answers with "text" and an integer "answer_start"',
                                              record=qwhere)
                    if ans["text"]:
                        answers.append(Answer(ans["text"], ans["answer_start"]))
                examples.append(SpanQAExample(
                    guid=str(qa["id"]), lang=lang, question=qa["question"], context=para["context"],
                    answers=tuple(answers), is_impossible=bool(qa.get("is_impossible", False)), title=title))
                where_of.append(qwhere)
    return _unique_guids(examples, where_of, path)


def _unique_guids(examples: list[SpanQAExample], where_of: list[str], path: PathLike) -> list[SpanQAExample]:
    """Suffix repeated ids with the question's ordinal; refuse if any guid still repeats."""
    counts = Counter(ex.guid for ex in examples)
    if max(counts.values(), default=0) > 1:
        examples = [replace(ex, guid=f"{ex.guid}{DUPLICATE_ID_SEPARATOR}{i}") if counts[ex.guid] > 1 else ex
                    for i, ex in enumerate(examples)]
    first: dict[str, int] = {}
    for i, ex in enumerate(examples):
        if ex.guid in first:
            raise DataFormatError(path, "unique question ids", record=where_of[i],
                                  got=f"guid {ex.guid!r} again (first at {where_of[first[ex.guid]]})")
        first[ex.guid] = i
    return examples
