"""Prediction files in XTREME's submission layout, written atomically.

``{predictions_dir}/{task}/{split}-{lang}.{tsv|json}``, with the contents that
google-research/xtreme ``evaluate.py`` reads back:

* classification (XNLI, PAWS-X) and Tatoeba: one label (or retrieved index) per line;
  Tatoeba's is the xx line retrieved for each English line (XTREME's direction), and its gold
  goes to ``labels/{task}/{split}-{lang}.tsv`` beside the predictions folder (line i: ``i``);
* tagging (UD-POS, PAN-X): one tag per word and line, a blank line after each
  sentence (``read_tag``; ``run_tag.py`` ``save_predictions``);
* QA (XQuAD, MLQA, TyDiQA): a JSON object ``{question_id: answer_text}``;
* BUCC: one ``source_id<TAB>target_id`` mined pair per line.

Each file is written to a temporary file in the same directory and renamed over
the target, so a reader never sees a half-written file.
"""
from __future__ import annotations

import json
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from os import PathLike
from pathlib import Path
from typing import Literal

from xstilts.errors import DataFormatError, XstiltsError
from xstilts.evaluation.metrics.bucc import read_bucc_gold

Suffix = Literal["tsv", "json"]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]*$")


def _check_name(kind: str, value: str) -> None:
    if not _NAME.match(value) or ".." in value:
        raise XstiltsError(
            f"invalid {kind} {value!r} for a prediction file name: use letters, digits and _.+-")


def prediction_path(predictions_dir: str | PathLike[str], task: str, split: str, lang: str,
                    suffix: Suffix) -> Path:
    """``{predictions_dir}/{task}/{split}-{lang}.{suffix}``."""
    for kind, value in (("task", task), ("split", split), ("language", lang)):
        _check_name(kind, value)
    if suffix not in ("tsv", "json"):
        raise XstiltsError(f"prediction file suffix must be 'tsv' or 'json', got {suffix!r}")
    return Path(predictions_dir) / task / f"{split}-{lang}.{suffix}"


def write_atomic(path: str | PathLike[str], text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` via a temporary file and ``os.replace``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _check_field(value: str, where: str) -> str:
    text = str(value)
    if text == "" or any(c in text for c in "\t\n\r"):
        raise XstiltsError(f"{where}: a prediction must be non-empty without tabs or newlines, got {text!r}")
    return text


def write_label_predictions(predictions_dir: str | PathLike[str], task: str, split: str, lang: str,
                            labels: Sequence[str | int]) -> Path:
    """One label (or retrieved index) per line; returns the file's path."""
    lines = [_check_field(str(label), f"example {i}") for i, label in enumerate(labels)]
    return write_atomic(prediction_path(predictions_dir, task, split, lang, "tsv"),
                        "".join(f"{line}\n" for line in lines))


def write_index_gold(labels_dir: str | PathLike[str], task: str, split: str, lang: str, n: int) -> Path:
    """Gold of an aligned retrieval set in XTREME's label layout: line i holds ``i`` (the query's partner)."""
    return write_atomic(prediction_path(labels_dir, task, split, lang, "tsv"), "".join(f"{i}\n" for i in range(n)))


def write_tag_predictions(predictions_dir: str | PathLike[str], task: str, split: str, lang: str,
                          sentences: Sequence[Sequence[str]]) -> Path:
    """One tag per line, a blank line closing every sentence; returns the file's path."""
    parts: list[str] = []
    for i, tags in enumerate(sentences):
        for j, tag in enumerate(tags):
            tag = _check_field(tag, f"sentence {i}, word {j}")
            if tag != tag.strip() or " " in tag:
                raise XstiltsError(f"sentence {i}, word {j}: tag {tag!r} contains spaces")
            parts.append(f"{tag}\n")
        parts.append("\n")
    return write_atomic(prediction_path(predictions_dir, task, split, lang, "tsv"), "".join(parts))


def write_answer_predictions(predictions_dir: str | PathLike[str], task: str, split: str, lang: str,
                             answers: Mapping[str, str]) -> Path:
    """``{question_id: answer_text}`` as JSON; returns the file's path."""
    for qid, text in answers.items():
        if not isinstance(qid, str) or not isinstance(text, str):
            raise XstiltsError(f"question {qid!r}: ids and answers must be strings, got {text!r}")
    return write_atomic(prediction_path(predictions_dir, task, split, lang, "json"),
                        json.dumps(dict(answers), ensure_ascii=False, indent=1) + "\n")


def write_pair_predictions(predictions_dir: str | PathLike[str], task: str, split: str, lang: str,
                           pairs: Iterable[tuple[str, str]]) -> Path:
    """One mined ``source_id<TAB>target_id`` per line, sorted; returns the file's path."""
    lines = [f"{_check_field(s, 'source id')}\t{_check_field(t, 'target id')}\n"
             for s, t in sorted(pairs)]
    return write_atomic(prediction_path(predictions_dir, task, split, lang, "tsv"), "".join(lines))


def read_label_predictions(path: str | PathLike[str]) -> list[str]:
    """Lines of a label file (XTREME ``read_label``)."""
    with Path(path).open(encoding="utf-8") as f:
        return [line.strip() for line in f]


def read_tag_predictions(path: str | PathLike[str]) -> list[list[str]]:
    """Sentences of a tag file (XTREME ``read_tag``: blank lines end sentences)."""
    sentences: list[list[str]] = []
    current: list[str] = []
    with Path(path).open(encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if line:
                current.append(line)
            else:
                sentences.append(current)
                current = []
    if current:
        sentences.append(current)
    return sentences


def read_answer_predictions(path: str | PathLike[str]) -> dict[str, str]:
    """The ``{question_id: answer}`` object of a QA prediction file.

    Raises:
        DataFormatError: not JSON, or not an object of strings.
    """
    try:
        with Path(path).open(encoding="utf-8") as f:
            data = json.load(f)
    except json.JSONDecodeError as err:
        raise DataFormatError(path, "a JSON object {question_id: answer}", line=err.lineno,
                              got=err.msg) from None
    if not isinstance(data, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise DataFormatError(path, "a JSON object mapping question ids to answer strings")
    return data


def read_pair_predictions(path: str | PathLike[str]) -> set[tuple[str, str]]:
    """Mined pairs of a BUCC prediction file (same format as a ``.gold`` file).

    Raises:
        DataFormatError: a line without exactly two tab-separated ids.
    """
    return read_bucc_gold(path)
