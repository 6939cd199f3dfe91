"""Parallel-sentence retrieval files: Tatoeba (LASER v1) and BUCC 2018."""
from __future__ import annotations

from xstilts.data.examples import ParallelCorpus
from xstilts.data.readers._io import PathLike, numbered, read_lines
from xstilts.errors import DataFormatError


def _non_empty(path: PathLike) -> list[str]:
    lines = read_lines(path)
    while lines and lines[-1] == "":
        lines.pop()
    return lines


def read_tatoeba(source_path: PathLike, english_path: PathLike, lang: str) -> ParallelCorpus:
    """``tatoeba.{xxx}-eng.{xxx}`` and ``tatoeba.{xxx}-eng.eng``: line i translates line i."""
    src = _non_empty(source_path)
    tgt = _non_empty(english_path)
    if len(src) != len(tgt):
        raise DataFormatError(english_path, f"{len(src)} lines, one per line of {source_path}",
                              line=min(len(src), len(tgt)) + 1, got=f"{len(tgt)} lines")
    ids = tuple(str(i) for i in range(len(src)))
    return ParallelCorpus(lang, ids, tuple(src), ids, tuple(tgt), tuple((i, i) for i in ids))


def _id_sentence_file(path: PathLike) -> tuple[tuple[str, ...], tuple[str, ...]]:
    ids, sents = [], []
    for lineno, line in numbered(_non_empty(path)):
        cols = line.split("\t")
        if len(cols) != 2:
            raise DataFormatError(path, "2 tab-separated columns (sentence id, sentence)", line=lineno,
                                  got=f"{len(cols)} column(s)")
        ids.append(cols[0])
        sents.append(cols[1])
    return tuple(ids), tuple(sents)


def read_bucc(source_path: PathLike, english_path: PathLike, gold_path: PathLike, lang: str) -> ParallelCorpus:
    """BUCC 2018 ``{lang}-en.{split}.{lang}``, ``.en`` and ``.gold`` (``src_id<TAB>en_id``) files."""
    src_ids, src = _id_sentence_file(source_path)
    tgt_ids, tgt = _id_sentence_file(english_path)
    known_src, known_tgt = set(src_ids), set(tgt_ids)
    gold = []
    for lineno, line in numbered(_non_empty(gold_path)):
        cols = line.split("\t")
        if len(cols) != 2:
            raise DataFormatError(gold_path, "2 tab-separated sentence ids", line=lineno, got=f"{len(cols)} column(s)")
        if cols[0] not in known_src or cols[1] not in known_tgt:
            raise DataFormatError(gold_path, f"ids present in {source_path} and {english_path}", line=lineno,
                                  got=line)
        gold.append((cols[0], cols[1]))
    return ParallelCorpus(lang, src_ids, src, tgt_ids, tgt, tuple(gold))


def parallel_from_hub_rows(rows, lang: str) -> ParallelCorpus:
    """``google/xtreme`` retrieval rows (``source_sentence``/``target_sentence``): row i pairs with row i."""
    rows = list(rows)
    ids = tuple(str(i) for i in range(len(rows)))
    return ParallelCorpus(lang, ids, tuple(r["source_sentence"] for r in rows), ids,
                          tuple(r["target_sentence"] for r in rows), tuple((i, i) for i in ids))
