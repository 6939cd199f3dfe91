"""One reader per file format; each returns the family's example records (``data.examples``).

All readers open ``.gz`` files transparently and raise :class:`xstilts.errors.DataFormatError`
naming the file and line (or record) for malformed input.
"""
from xstilts.data.readers.conll import UPOS_TAGS, read_conllu, read_token_tsv
from xstilts.data.readers.jsonl import (read_anli_jsonl, read_commonsenseqa_jsonl, read_cosmosqa_csv,
                                        read_hellaswag_jsonl)
from xstilts.data.readers.retrieval import read_bucc, read_tatoeba
from xstilts.data.readers.squad import read_squad_json
from xstilts.data.readers.tsv import read_header_tsv, read_headerless_pair_tsv

__all__ = ["UPOS_TAGS", "read_anli_jsonl", "read_bucc", "read_commonsenseqa_jsonl", "read_conllu",
           "read_cosmosqa_csv", "read_header_tsv", "read_headerless_pair_tsv", "read_hellaswag_jsonl",
           "read_squad_json", "read_tatoeba", "read_token_tsv"]
