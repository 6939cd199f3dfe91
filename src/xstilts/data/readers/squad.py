"""SQuAD-style JSON (SQuAD 1.1/2.0, XQuAD, MLQA, TyDiQA-GoldP)."""
from __future__ import annotations

import json
from typing import Any

from xstilts.data.examples import Answer, SpanQAExample
from xstilts.data.readers._io import PathLike, read_text
from xstilts.errors import DataFormatError


def _load_json(path: PathLike) -> Any:
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise DataFormatError(path, "valid JSON", line=exc.lineno, got=f"{exc.msg} at column {exc.colno}") from None


def read_squad_json(path: PathLike, lang: str) -> list[SpanQAExample]:
    """One example per question.

    Answers with empty text are dropped: XTREME's TyDiQA-GoldP dev files ship every
    question with a blanked ``{"text": "", "answer_start": 0}`` answer (gold hidden), so
    such questions come back with ``answers=()`` and ``is_impossible=False``; use
    ``is_impossible`` (SQuAD 2.0) to tell unanswerable questions apart.
    """
    data = _load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("data"), list):
        raise DataFormatError(path, 'a JSON object with a "data" list (SQuAD format)', record="top level")
    examples: list[SpanQAExample] = []
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
    return examples
