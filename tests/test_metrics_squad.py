"""SQuAD v1.1 EM/F1 on hand cases built from real XQuAD English gold answers.

Expected values follow the official evaluate-v1.1.py rules: lower-case, strip
ASCII punctuation, strip a/an/the as words, collapse whitespace; F1 over
whitespace tokens; max over gold answers; unanswered questions score 0.
"""
from __future__ import annotations

import pytest

from xstilts.data.examples import Answer, SpanQAExample
from xstilts.evaluation.metrics import MetricInputError, references_from_examples
from xstilts.evaluation.metrics.squad import exact_match_score, f1_score, normalize_answer, squad_em_f1


@pytest.mark.parametrize(("text", "normalized"), [
    ('"A Machine to End War"', "machine to end war"),        # quotes and leading article go
    ('"We are beggars,"', "we are beggars"),
    ("Polish United Workers' Party", "polish united workers party"),
    ("711,988", "711988"),                                     # punctuation is deleted, not split
    ("multi-cultural", "multicultural"),
    ("An  Theatre", "theatre"),                                # "the" inside a word stays
    ("“Paris”", "“paris”"),                                    # non-ASCII quotes are kept by SQuAD
])
def test_normalize_answer(text: str, normalized: str) -> None:
    assert normalize_answer(text) == normalized


@pytest.mark.parametrize(("prediction", "gold", "em", "f1"), [
    ("a machine to end war", '"A Machine to End War"', True, 1.0),
    ("the Polish United Workers Party", "Polish United Workers' Party", True, 1.0),
    ("711 988", "711,988", False, 0.0),               # tokens 711, 988 vs 711988
    ("Kuechly", "Luke Kuechly.", False, 2 / 3),       # P 1, R 1/2
    ("56.2 percent", "56.2%", False, 2 / 3),          # 562 percent vs 562: P 1/2, R 1
    ("multi cultural", "multi-cultural", False, 0.0),
    ("two two", "two.", False, 2 / 3),                # token counts matter: P 1/2, R 1
])
def test_em_and_f1_pairs(prediction: str, gold: str, em: bool, f1: float) -> None:
    assert exact_match_score(prediction, gold) is em
    assert f1_score(prediction, gold) == pytest.approx(f1)


def test_squad_em_f1_max_over_golds_and_unanswered() -> None:
    refs = {
        "56d9992fdc89441400fdb59f": ["Luke Kuechly.", "Kuechly"],   # second gold added by hand
        "56d9992fdc89441400fdb5a0": ["two."],
        "57338007d058e614000b5bdc": ["56.2%"],
    }
    preds = {
        "56d9992fdc89441400fdb59f": "Kuechly",     # EM 1 via the second gold, F1 1
        "56d9992fdc89441400fdb5a0": "two two",     # EM 0, F1 2/3
        # third question unanswered: 0 and 0, still counted
        "not-a-gold-id": "ignored",
    }
    scores = squad_em_f1(refs, preds)
    assert scores["exact_match"] == pytest.approx(100 / 3)
    assert scores["f1"] == pytest.approx(100 * (1 + 2 / 3) / 3)


def test_references_from_examples_and_errors() -> None:
    ex = SpanQAExample(guid="q1", lang="en", question="Who?", context="Luke Kuechly.",
                       answers=(Answer("Luke Kuechly.", 0), Answer("Kuechly", 5)))
    assert references_from_examples([ex]) == {"q1": ["Luke Kuechly.", "Kuechly"]}
    unlabeled = SpanQAExample(guid="q2", lang="en", question="?", context="c", answers=())
    with pytest.raises(MetricInputError, match="'q2' has no gold answer"):
        references_from_examples([unlabeled])
    with pytest.raises(MetricInputError, match="non-empty list"):
        squad_em_f1({"q": "Kuechly"}, {"q": "Kuechly"})
    with pytest.raises(MetricInputError, match="empty"):
        squad_em_f1({}, {})
