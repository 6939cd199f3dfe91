"""MLQA exact match and F1 with the official language-aware normalisation.

Re-implements facebookresearch/MLQA ``mlqa_evaluation_v1.py`` (the copy XTREME
downloads as ``third_party/evaluate_mlqa.py``), in the same order of steps:

1. lower-case;
2. remove every character in ``PUNCT``: all code points whose Unicode category
   starts with ``P`` plus ASCII ``string.punctuation`` (so ``$+<=>^`|~`` too);
3. remove articles by language (``language`` is the answer/context language):
   en ``a an the``; es ``un una unos unas el la los las``; de ``ein eine einen
   einem eines einer der die das den dem des``; vi ``của là cái chiếc những``
   (whole words, Unicode ``\\b``); hi and zh none; ar: the official regex
   ``'\\sال^|ال'`` -- its first branch can never match, so *every* occurrence of
   ``ال`` is replaced by a space, also inside words (``سؤال`` -> ``سؤ``). We keep
   that, because it is what the published MLQA/XTREME numbers used;
4. tokenize: whitespace for en es hi vi de ar; for zh "mixed segmentation":
   each character in U+4E00..U+9FA5 (or in ``PUNCT``) is a token of its own and
   the runs between them are split on whitespace; tokens are joined by spaces.

EM compares the normalized strings; F1 is the token-bag overlap of their
whitespace tokens; each question takes the max over its gold answers.
"""
from __future__ import annotations

import functools
import re
import string
import sys
import unicodedata
from collections.abc import Mapping, Sequence

from xstilts.errors import UnknownNameError
from xstilts.evaluation.metrics.squad import em_f1_with, overlap_f1
from xstilts.evaluation.metrics.validation import MetricInputError

WHITESPACE_LANGS: tuple[str, ...] = ("en", "es", "hi", "vi", "de", "ar")
MIXED_SEGMENTATION_LANGS: tuple[str, ...] = ("zh",)
MLQA_LANGUAGES: tuple[str, ...] = WHITESPACE_LANGS + MIXED_SEGMENTATION_LANGS

_ARTICLES: dict[str, re.Pattern[str] | None] = {
    "en": re.compile(r"\b(a|an|the)\b"),
    "es": re.compile(r"\b(un|una|unos|unas|el|la|los|las)\b"),
    "hi": None,  # Hindi has no formal articles
    "vi": re.compile(r"\b(của|là|cái|chiếc|những)\b"),
    "de": re.compile(r"\b(ein|eine|einen|einem|eines|einer|der|die|das|den|dem|des)\b"),
    # Verbatim official pattern; see module docstring for why it strips every "ال".
    "ar": re.compile("\\sال^|ال"),
    "zh": None,  # Chinese has no formal articles
}
_CJK = re.compile(r"[\u4e00-\u9fa5]")


@functools.cache
def punctuation() -> frozenset[str]:
    """The official ``PUNCT`` set: Unicode categories P* plus ``string.punctuation``.

    Built once on first use (scanning all code points takes a fraction of a second).
    """
    return frozenset(
        ch for ch in map(chr, range(sys.maxunicode))
        if unicodedata.category(ch).startswith("P")).union(string.punctuation)


def _check_language(language: str | None) -> str:
    if language not in MLQA_LANGUAGES:
        raise UnknownNameError("MLQA answer language", str(language), MLQA_LANGUAGES)
    return language


def mixed_segmentation(text: str) -> list[str]:
    """Split CJK characters and punctuation into single tokens, the rest on whitespace."""
    punct = punctuation()
    tokens: list[str] = []
    run = ""
    for ch in text:
        if _CJK.match(ch) or ch in punct:
            if run:
                tokens.extend(run.split())
                run = ""
            tokens.append(ch)
        else:
            run += ch
    if run:
        tokens.extend(run.split())
    return tokens


def normalize_answer(text: str, language: str) -> str:
    """MLQA's normalisation: lower, strip ``PUNCT``, strip articles, re-tokenize.

    Raises:
        UnknownNameError: ``language`` is not one of :data:`MLQA_LANGUAGES`.
    """
    language = _check_language(language)
    punct = punctuation()
    text = "".join(ch for ch in text.lower() if ch not in punct)
    articles = _ARTICLES[language]
    if articles is not None:
        text = articles.sub(" ", text)
    tokens = mixed_segmentation(text) if language in MIXED_SEGMENTATION_LANGS else text.split()
    return " ".join(t for t in tokens if t.strip())


def exact_match_score(prediction: str, ground_truth: str, language: str) -> bool:
    """Whether the MLQA-normalized strings are equal."""
    return normalize_answer(prediction, language) == normalize_answer(ground_truth, language)


def f1_score(prediction: str, ground_truth: str, language: str) -> float:
    """Token F1 in [0, 1] of the MLQA-normalized strings."""
    return overlap_f1(normalize_answer(prediction, language).split(),
                      normalize_answer(ground_truth, language).split())


def mlqa_em_f1(references: Mapping[str, Sequence[str]], predictions: Mapping[str, str],
               language: str | None = None) -> dict[str, float]:
    """MLQA ``{"exact_match", "f1"}`` in percent for answers in ``language``.

    Raises:
        UnknownNameError: ``language`` is missing or not an MLQA language.
        MetricInputError: references are empty or malformed.
    """
    lang = _check_language(language)
    if not references:
        raise MetricInputError("no gold questions to score: references are empty")
    return em_f1_with(lambda s: normalize_answer(s, lang), references, predictions)
