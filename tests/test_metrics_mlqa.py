"""MLQA normalisation per language on real MLQA dev gold answers.

Rules (facebookresearch/MLQA mlqa_evaluation_v1.py): lower-case; delete every
Unicode P* character and ASCII punctuation; delete articles by language (ar:
every "ال"; vi: của là cái chiếc những; hi, zh: none); zh is split into single
CJK characters with other runs split on whitespace; F1 over the resulting tokens.
"""
from __future__ import annotations

import pytest

from xstilts.errors import UnknownNameError
from xstilts.evaluation.metrics.mlqa import (
    f1_score, exact_match_score, mixed_segmentation, mlqa_em_f1, normalize_answer, punctuation)
from xstilts.evaluation.metrics.squad import f1_score as squad_f1


def test_punctuation_set_is_unicode_wide() -> None:
    p = punctuation()
    for ch in "《》，。।،؟«»“”" + "$+<=>^`|~":   # Unicode P* and ASCII symbols of string.punctuation
        assert ch in p
    for ch in "a3中ि":                              # letters, digits, CJK, Devanagari vowel sign (Mc)
        assert ch not in p


@pytest.mark.parametrize(("lang", "text", "normalized"), [
    # zh: dev-context-zh-question-zh answers
    ("zh", "《毁灭战士3》", "毁 灭 战 士 3"),
    ("zh", "BFG 9000和电锯", "bfg 9000 和 电 锯"),
    # ar: the official regex removes every "ال", also inside a word ("سؤال" -> "سؤ")
    ("ar", "النسيج الغروي.", "نسيج غروي"),
    ("ar", "الطب الشرعي", "طب شرعي"),
    ("ar", "سؤال", "سؤ"),
    ("ar", "القاهرة،", "قاهرة"),                    # Arabic comma is P*
    # hi: no articles ("द" = "the" stays); danda is P*; vowel signs are kept
    ("hi", "द पेन्न", "द पेन्न"),
    ("hi", "वर्जीनिया विश्वविद्यालय।", "वर्जीनिया विश्वविद्यालय"),
    # vi: article words removed as whole words only ("làm" keeps its "là")
    ("vi", "hệ thống chính trị của Phổ", "hệ thống chính trị phổ"),
    ("vi", "Những cái bàn", "bàn"),
    ("vi", "làm việc", "làm việc"),
    ("en", "“The Paris”", "paris"),
])
def test_normalize_answer(lang: str, text: str, normalized: str) -> None:
    assert normalize_answer(text, lang) == normalized


def test_mixed_segmentation() -> None:
    assert mixed_segmentation("2008年北京 olympic games") == ["2008", "年", "北", "京", "olympic", "games"]


@pytest.mark.parametrize(("lang", "prediction", "gold", "em", "f1"), [
    # zh: 4 of 5 character tokens: P 1, R 4/5 -> F1 8/9 (SQuAD rules would give 0)
    ("zh", "毁灭战士", "《毁灭战士3》", False, 8 / 9),
    ("zh", "BFG 9000", "BFG 9000和电锯", False, 2 * 0.4 / 1.4),      # P 1, R 2/5
    ("zh", "毁灭战士3", "《毁灭战士3》", True, 1.0),
    ("ar", "نسيج غروي", "النسيج الغروي.", True, 1.0),
    ("ar", "النسيج", "النسيج الغروي.", False, 2 / 3),                 # P 1, R 1/2
    ("hi", "पेन्न", "द पेन्न", False, 2 / 3),                           # P 1, R 1/2
    ("hi", "वर्जीनिया विश्वविद्यालय।", "वर्जीनिया विश्वविद्यालय", True, 1.0),
    ("vi", "Hệ thống chính trị Phổ", "hệ thống chính trị của Phổ", True, 1.0),
    # gold after article removal has 9 tokens, prediction 2: P 1, R 2/9 -> F1 4/11
    ("vi", "vị ngọt", "Sự gia tăng của vị ngọt từ đường thêm vào", False, 4 / 11),
])
def test_em_f1_by_language(lang: str, prediction: str, gold: str, em: bool, f1: float) -> None:
    assert exact_match_score(prediction, gold, lang) is em
    assert f1_score(prediction, gold, lang) == pytest.approx(f1)


def test_differs_from_squad_where_the_official_scripts_differ() -> None:
    assert squad_f1("毁灭战士", "《毁灭战士3》") == 0.0
    assert squad_f1("Hệ thống chính trị Phổ", "hệ thống chính trị của Phổ") < 1.0


def test_mlqa_em_f1_aggregate_and_language_check() -> None:
    # real zh question ids; the second one is unanswered and scores 0
    refs = {"36e2d9a94f3e08427a85e202229e50350abc80e1": ["《毁灭战士3》"],
            "faf513d17057c6bb95175c670ec98061b5cb2fce": ["BFG 9000和电锯"]}
    preds = {"36e2d9a94f3e08427a85e202229e50350abc80e1": "毁灭战士"}
    scores = mlqa_em_f1(refs, preds, "zh")
    assert scores == {"exact_match": 0.0, "f1": pytest.approx(100 * (8 / 9) / 2)}
    with pytest.raises(UnknownNameError, match="MLQA answer language 'fr'"):
        mlqa_em_f1(refs, preds, "fr")
    with pytest.raises(UnknownNameError):
        mlqa_em_f1(refs, preds)
