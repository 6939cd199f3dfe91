"""Tab-separated sentence(-pair) classification files.

Covers the XTREME-processed ``{split}-{lang}.tsv`` files (XNLI, PAWS-X: premise,
hypothesis, label; no header), the original releases with a header (PAWS-X
``x-final/{lang}/*.tsv``, XNLI-1.0 ``xnli.{split}.tsv`` with a ``language`` column, XNLI-MT
``multinli.train.{lang}.tsv``) and the GLUE files (MNLI, QQP, SST-2).
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from xstilts.data.examples import SentenceExample
from xstilts.data.readers._io import PathLike, check_label, numbered, read_lines
from xstilts.errors import DataFormatError


def read_headerless_pair_tsv(path: PathLike, lang: str, *, labels: Sequence[str] | None,
                             label_map: Mapping[str, str] | None = None,
                             guid_prefix: str = "") -> list[SentenceExample]:
    """XTREME-processed ``text_a<TAB>text_b<TAB>label`` rows, one example per line."""
    examples: list[SentenceExample] = []
    for lineno, line in numbered(read_lines(path)):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) != 3:
            raise DataFormatError(path, "3 tab-separated columns (text_a, text_b, label)", line=lineno,
                                  got=f"{len(cols)} column(s)")
        label = (label_map or {}).get(cols[2].strip(), cols[2].strip())
        check_label(path, label, labels, line=lineno)
        examples.append(SentenceExample(f"{guid_prefix}{lang}-{len(examples)}", lang, cols[0], cols[1], label))
    return examples


def read_header_tsv(path: PathLike, lang: str, *, text_a: str, text_b: str | None, label: str,
                    labels: Sequence[str] | None, label_map: Mapping[str, str] | None = None,
                    guid: str | None = None, lang_column: str | None = None,
                    guid_prefix: str = "") -> list[SentenceExample]:
    """A TSV with a header row; columns are picked by name.

    Every row must have as many columns as the header (GLUE's MNLI files carry parse
    trees in extra columns, so rows are split on tabs without any quoting rules).
    ``lang_column`` keeps only the rows of ``lang`` (XNLI-1.0 holds all 15 languages).
    """
    lines = read_lines(path)
    header = lines[0].split("\t")
    wanted = [c for c in (text_a, text_b, label, guid, lang_column) if c is not None]
    missing = [c for c in wanted if c not in header]
    if missing:
        raise DataFormatError(path, f"a header with columns {', '.join(wanted)}", line=1,
                              got=f"missing {', '.join(missing)}")
    idx = {name: header.index(name) for name in wanted}
    examples: list[SentenceExample] = []
    for lineno, line in numbered(lines[1:], start=2):
        if not line.strip():
            continue
        cols = line.split("\t")
        if len(cols) != len(header):
            raise DataFormatError(path, f"{len(header)} tab-separated columns as in the header", line=lineno,
                                  got=f"{len(cols)} column(s)")
        if lang_column is not None and cols[idx[lang_column]] != lang:
            continue
        raw = cols[idx[label]].strip()
        value = (label_map or {}).get(raw, raw)
        check_label(path, value, labels, line=lineno)
        ident = cols[idx[guid]] if guid is not None else str(len(examples))
        examples.append(SentenceExample(f"{guid_prefix}{lang}-{ident}", lang, cols[idx[text_a]],
                                        cols[idx[text_b]] if text_b is not None else None, value))
    return examples
