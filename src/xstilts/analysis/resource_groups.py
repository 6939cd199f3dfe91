"""Resource groups of languages: Joshi et al. (2020) classes 0-5.

Source: P. Joshi, S. Santy, A. Budhiraja, K. Bali, M. Choudhury (2020), "The State
and Fate of Linguistic Diversity and Inclusion in the NLP World", ACL 2020,
https://aclanthology.org/2020.acl-main.560/ ; per-language classes from the
authors' published list https://microsoft.github.io/linguisticdiversity/assets/lang2tax.txt
(lines ``<language name>,<class>``). The list names languages, not codes; the
ISO 639-1 codes below were matched by hand for the XTREME languages and checked
(2025) against two independent code mappings of that list
(MaLA-LM/LangResourceAtlas ``language-source-classification-by-Joshi.json`` and
the FLORES tiering in a public evaluation script), which agree on every entry
here. For example: telugu 1, burmese 1, javanese 1, malayalam 1, marathi 2,
swahili 2, yoruba 2, so the issue's low-resource set {mr, sw, yo, jv, ml, my, te}
is exactly the XTREME languages with class <= 2.

Classes: 0 "left-behinds" ... 5 "winners". The default split is low = class <= 2.
Both the table and the threshold are configurable.
"""
from __future__ import annotations

import csv
from collections.abc import Mapping
from os import PathLike
from pathlib import Path

from xstilts.errors import DataFormatError, UnknownNameError

JOSHI_CLASS: dict[str, int] = {
    # class 5
    "ar": 5, "de": 5, "en": 5, "es": 5, "fr": 5, "ja": 5, "zh": 5,
    # class 4
    "eu": 4, "fa": 4, "fi": 4, "hi": 4, "hu": 4, "it": 4, "ko": 4, "nl": 4, "pl": 4,
    "pt": 4, "ru": 4, "tr": 4, "vi": 4,
    # class 3
    "af": 3, "bg": 3, "bn": 3, "el": 3, "et": 3, "he": 3, "id": 3, "ka": 3, "kk": 3,
    "lt": 3, "ms": 3, "ro": 3, "ta": 3, "th": 3, "tl": 3, "uk": 3, "ur": 3,
    # class 2
    "mr": 2, "sw": 2, "wo": 2, "yo": 2,
    # class 1
    "jv": 1, "ml": 1, "my": 1, "te": 1, "qu": 1,
}
"""Joshi et al. (2020) class per ISO 639-1 code for the XTREME / XTREME-R languages."""

ISO3_ALIASES: dict[str, str] = {
    # Tatoeba (and other XTREME files) name languages with ISO 639-3 codes.
    "afr": "af", "ara": "ar", "ben": "bn", "bul": "bg", "cmn": "zh", "deu": "de",
    "ell": "el", "eng": "en", "est": "et", "eus": "eu", "fin": "fi", "fra": "fr",
    "heb": "he", "hin": "hi", "hun": "hu", "ind": "id", "ita": "it", "jav": "jv",
    "jpn": "ja", "kat": "ka", "kaz": "kk", "kor": "ko", "mal": "ml", "mar": "mr",
    "nld": "nl", "pes": "fa", "por": "pt", "rus": "ru", "spa": "es", "swh": "sw",
    "tam": "ta", "tel": "te", "tgl": "tl", "tha": "th", "tur": "tr", "urd": "ur",
    "vie": "vi", "yor": "yo", "mya": "my", "zsm": "ms",
}

LOW_RESOURCE_MAX_CLASS = 2
"""Default: a language is low-resource when its Joshi class is at most this."""

LOW, HIGH = "low", "high"


def resource_class(language: str, mapping: Mapping[str, int] | None = None) -> int:
    """Joshi class of ``language`` (ISO 639-1, or an ISO 639-3 alias)."""
    table = JOSHI_CLASS if mapping is None else mapping
    code = language if language in table else ISO3_ALIASES.get(language, language)
    if code not in table:
        raise UnknownNameError("language (no resource class known; pass a mapping)", language, list(table))
    return int(table[code])


def resource_group(language: str, *, mapping: Mapping[str, int] | None = None,
                   low_max_class: int = LOW_RESOURCE_MAX_CLASS) -> str:
    """``"low"`` if the language's class is at most ``low_max_class``, else ``"high"``."""
    return LOW if resource_class(language, mapping) <= low_max_class else HIGH


def read_class_mapping(path: str | PathLike[str]) -> dict[str, int]:
    """Read a ``language,class`` CSV (header optional) as a class mapping.

    Lets a user swap in another taxonomy without touching code; each class must be
    an integer, and every bad line is reported with its number.
    """
    mapping: dict[str, int] = {}
    with Path(path).open(encoding="utf-8", newline="") as handle:
        for line_no, row in enumerate(csv.reader(handle), start=1):
            if not row or all(not cell.strip() for cell in row) or row[0].lstrip().startswith("#"):
                continue
            if len(row) != 2:
                raise DataFormatError(path, "two fields: language,class", line=line_no, got=f"{len(row)} fields")
            lang, cls = row[0].strip(), row[1].strip()
            if line_no == 1 and not cls.lstrip("-").isdigit():
                continue  # header line
            if not cls.lstrip("-").isdigit():
                raise DataFormatError(path, "an integer class", line=line_no, got=repr(cls))
            mapping[lang] = int(cls)
    if not mapping:
        raise DataFormatError(path, "at least one language,class line", got="none")
    return mapping
