"""Readers driven by a field mapping, for datasets declared in a config (``tasks.declared``).

Each takes the file, the language and a mapping from the record's fields (``text_a``,
``text_b``, ``label``, ``guid``; ``word``/``tag``; ``words``/``tags``) to where they sit in
the file (a column name, a 0-based column index or a JSON key), and raises
:class:`~xstilts.errors.DataFormatError` naming file and line, like the built-in readers.
"""
from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from typing import Any

from xstilts.data.examples import SentenceExample, TaggingExample
from xstilts.data.readers._io import PathLike, check_label, numbered, read_lines, read_text
from xstilts.data.readers.jsonl import iter_jsonl
from xstilts.errors import DataFormatError

Column = str | int
SENTENCE_FIELDS = ("text_a", "text_b", "label", "guid")


def _label(path: PathLike, raw: Any, labels: Sequence[str] | None, label_map: Mapping[str, str] | None,
           line: int) -> str | None:
    text = "" if raw is None else str(raw).strip()
    if labels is None and text == "":
        return None  # unlabelled text (masked-LM data)
    text = (label_map or {}).get(text, text)
    return check_label(path, text, labels, line=line)


def _sentence(path, lang, n, row: Mapping[Column, Any], fields, labels, label_map, line) -> SentenceExample:
    guid = row[fields["guid"]] if "guid" in fields else n
    label = _label(path, row[fields["label"]], labels, label_map, line) if "label" in fields else None
    text_b = row[fields["text_b"]] if "text_b" in fields else None
    return SentenceExample(f"{lang}-{guid}", lang, str(row[fields["text_a"]]),
                           None if text_b is None else str(text_b), label)


def _indexed_rows(path: PathLike, rows: list[tuple[int, list[str]]], fields: Mapping[str, Column],
                  header: bool, sep: str) -> list[tuple[int, dict[Column, str]]]:
    """Rows as {column name or index: cell}; the header (if any) names the columns."""
    names: list[str] = []
    if header:
        if not rows:
            raise DataFormatError(path, "a header row", got="no rows")
        names = rows[0][1]
        rows = rows[1:]
        missing = [str(c) for c in fields.values() if isinstance(c, str) and c not in names]
        if missing:
            raise DataFormatError(path, f"a header with column(s) {', '.join(missing)}", line=1,
                                  got=sep.join(names)[:200])
    width = len(names) if header else max((c for c in fields.values() if isinstance(c, int)), default=-1) + 1
    out = []
    for line, cells in rows:
        if (header and len(cells) != width) or len(cells) < width:
            raise DataFormatError(path, f"{width} {'columns as in the header' if header else 'columns or more'}",
                                  line=line, got=f"{len(cells)} column(s)")
        row: dict[Column, str] = dict(enumerate(cells))
        row.update(zip(names, cells))
        out.append((line, row))
    return out


def read_mapped_tsv(path: PathLike, lang: str, *, fields: Mapping[str, Column], header: bool,
                    labels: Sequence[str] | None, label_map: Mapping[str, str] | None = None
                    ) -> list[SentenceExample]:
    """Tab-separated sentence(-pair) rows; columns by header name or 0-based index."""
    rows = [(n, line.split("\t")) for n, line in numbered(read_lines(path)) if line.strip()]
    return [_sentence(path, lang, i, row, fields, labels, label_map, line)
            for i, (line, row) in enumerate(_indexed_rows(path, rows, fields, header, "\t"))]


def read_mapped_csv(path: PathLike, lang: str, *, fields: Mapping[str, Column], header: bool,
                    labels: Sequence[str] | None, label_map: Mapping[str, str] | None = None
                    ) -> list[SentenceExample]:
    """Comma-separated (RFC 4180 quoting) sentence(-pair) rows."""
    reader = csv.reader(io.StringIO(read_text(path), newline=""))
    try:
        rows = [(reader.line_num, r) for r in reader if r]
    except csv.Error as exc:
        raise DataFormatError(path, "valid CSV", line=reader.line_num, got=str(exc)) from None
    return [_sentence(path, lang, i, row, fields, labels, label_map, line)
            for i, (line, row) in enumerate(_indexed_rows(path, rows, fields, header, ","))]


def _json_row(path: PathLike, obj: dict[str, Any], keys: Sequence[str], line: int) -> dict[str, Any]:
    missing = [k for k in keys if k not in obj]
    if missing:
        raise DataFormatError(path, f'field(s) {", ".join(missing)}', line=line, got=f"keys {sorted(obj)}")
    return obj


def read_mapped_jsonl(path: PathLike, lang: str, *, fields: Mapping[str, str], labels: Sequence[str] | None,
                      label_map: Mapping[str, str] | None = None) -> list[SentenceExample]:
    """One JSON object per line; ``fields`` maps record fields to keys."""
    return [_sentence(path, lang, i, _json_row(path, obj, list(fields.values()), line), fields, labels,
                      label_map, line) for i, (line, obj) in enumerate(iter_jsonl(path))]


def read_mapped_tagging_jsonl(path: PathLike, lang: str, *, fields: Mapping[str, str],
                              labels: Sequence[str] | None, label_map: Mapping[str, str] | None = None
                              ) -> list[TaggingExample]:
    """One sentence per JSON line: a list of words and a list of tags (``fields.words``/``tags``)."""
    out = []
    for line, obj in iter_jsonl(path):
        row = _json_row(path, obj, [fields["words"], fields["tags"]], line)
        words, tags = row[fields["words"]], row[fields["tags"]]
        if not isinstance(words, list) or not isinstance(tags, list) or len(words) != len(tags) or not words:
            raise DataFormatError(path, "equally long non-empty lists of words and tags", line=line,
                                  got=f"{type(words).__name__} / {type(tags).__name__}")
        tags = [_label(path, t, labels, label_map, line) for t in tags]
        guid = row.get(fields["guid"], len(out)) if "guid" in fields else len(out)
        out.append(TaggingExample(f"{lang}-{guid}", lang, tuple(map(str, words)), tuple(tags)))
    return out


def read_conll(path: PathLike, lang: str, *, word: int = 0, tag: int = -1, delimiter: str | None = None,
               labels: Sequence[str] | None, label_map: Mapping[str, str] | None = None) -> list[TaggingExample]:
    """CoNLL-style columns, one word per line, a blank line between sentences.

    ``delimiter`` None splits on any whitespace (CoNLL-2003, MasakhaNER ``word TAG``);
    ``"\\t"`` keeps spaces inside fields (XTREME's PAN-X). ``-DOCSTART-`` lines are skipped.
    """
    examples: list[TaggingExample] = []
    words: list[str] = []
    tags: list[str] = []
    for line, text in numbered(read_lines(path)):
        cells = text.split(delimiter) if text.strip() else []
        if cells and cells[0] == "-DOCSTART-":
            continue
        if not cells:
            if words:
                examples.append(TaggingExample(f"{lang}-{len(examples)}", lang, tuple(words), tuple(tags)))
                words, tags = [], []
            continue
        if len(cells) < max(word, tag) + 1 or len(cells) < -min(word, tag):
            raise DataFormatError(path, f"a word column {word} and a tag column {tag}", line=line,
                                  got=f"{len(cells)} column(s)")
        words.append(cells[word])
        tags.append(_label(path, cells[tag], labels, label_map, line) or "")
    if words:
        examples.append(TaggingExample(f"{lang}-{len(examples)}", lang, tuple(words), tuple(tags)))
    return examples


def read_text_lines(path: PathLike, lang: str) -> list[SentenceExample]:
    """One unlabelled sentence per non-blank line (masked-LM text)."""
    return [SentenceExample(f"{lang}-{i}", lang, text.strip(), None, None)
            for i, (_, text) in enumerate((n, t) for n, t in numbered(read_lines(path)) if t.strip())]
