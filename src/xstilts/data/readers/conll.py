"""Word-level tagging files: UD ``.conllu`` and XTREME's token-per-line TSV (PAN-X, UD-POS)."""
from __future__ import annotations

from collections.abc import Sequence

from xstilts.data.examples import TaggingExample
from xstilts.data.readers._io import PathLike, check_label, numbered, read_lines
from xstilts.errors import DataFormatError

UPOS_TAGS = ("ADJ", "ADP", "ADV", "AUX", "CCONJ", "DET", "INTJ", "NOUN", "NUM", "PART", "PRON",
             "PROPN", "PUNCT", "SCONJ", "SYM", "VERB", "X")
"""The 17 Universal POS tags (universaldependencies.org/u/pos), XTREME's UD-POS label set."""


def read_conllu(path: PathLike, lang: str, *, labels: Sequence[str] | None = UPOS_TAGS,
                tag_column: int = 3) -> list[TaggingExample]:
    """One example per sentence: the FORM and UPOS (``tag_column`` 3; XPOS is 4) of every syntactic word.

    Multi-word token ranges (``1-2``) and empty nodes (``8.1``) are skipped, as XTREME's
    UD preprocessing does, so words and tags stay aligned one-to-one.
    """
    examples: list[TaggingExample] = []
    words: list[str] = []
    tags: list[str] = []
    sent_id: str | None = None

    def flush() -> None:
        nonlocal words, tags, sent_id
        if words:
            guid = sent_id or f"{lang}-{len(examples)}"
            examples.append(TaggingExample(guid, lang, tuple(words), tuple(tags)))
        words, tags, sent_id = [], [], None

    for lineno, line in numbered(read_lines(path)):
        if not line.strip():
            flush()
            continue
        if line.startswith("#"):
            if line.startswith("# sent_id"):
                sent_id = line.split("=", 1)[-1].strip()
            continue
        cols = line.split("\t")
        if len(cols) != 10:
            raise DataFormatError(path, "10 tab-separated CoNLL-U fields (ID FORM LEMMA UPOS ...)",
                                  line=lineno, got=f"{len(cols)} field(s)")
        token_id = cols[0]
        if "-" in token_id or "." in token_id:
            continue
        if not token_id.isdigit():
            raise DataFormatError(path, "an integer word ID in the first CoNLL-U field", line=lineno,
                                  got=repr(token_id))
        words.append(cols[1])
        tags.append(check_label(path, cols[tag_column], labels, line=lineno))
    flush()
    return examples


def read_token_tsv(path: PathLike, lang: str, *, labels: Sequence[str] | None) -> list[TaggingExample]:
    """XTREME-processed ``word<TAB>tag`` lines, a blank line between sentences.

    Some XTREME releases prefix each word with ``{lang}:``; the prefix is removed.
    """
    examples: list[TaggingExample] = []
    words: list[str] = []
    tags: list[str] = []
    prefix = f"{lang}:"
    for lineno, line in numbered(read_lines(path)):
        if not line.strip():
            if words:
                examples.append(TaggingExample(f"{lang}-{len(examples)}", lang, tuple(words), tuple(tags)))
                words, tags = [], []
            continue
        cols = line.split("\t")
        if len(cols) != 2:
            raise DataFormatError(path, "2 tab-separated columns (word, tag)", line=lineno,
                                  got=f"{len(cols)} column(s)")
        word = cols[0][len(prefix):] if cols[0].startswith(prefix) else cols[0]
        words.append(word)
        tags.append(check_label(path, cols[1].strip(), labels, line=lineno))
    if words:
        examples.append(TaggingExample(f"{lang}-{len(examples)}", lang, tuple(words), tuple(tags)))
    return examples
