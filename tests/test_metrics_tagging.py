"""seqeval F1 as XTREME uses it for PAN-X and UD-POS, on real sentences."""
from __future__ import annotations

import pytest

from xstilts.evaluation.metrics import MetricInputError
from xstilts.evaluation.metrics.tagging import seqeval_f1

# Two sentences of PAN-X English dev (../shared/data/panx/dev-en.tsv.gz) with their gold tags.
PANX_WORDS = [
    ["Fairground]]", "''", "by", "Simply", "Red", "''", "Bad", "Romance", "''", "by", "Lady", "Gaga"],
    ["The", "Game]]", ",", "Ice", "Cube", ",", "Dr.", "Dre"],
]
PANX_GOLD = [
    ["O", "O", "O", "B-ORG", "I-ORG", "O", "B-ORG", "I-ORG", "O", "O", "B-PER", "I-PER"],
    ["O", "O", "O", "B-PER", "I-PER", "O", "B-PER", "I-PER"],
]


def test_panx_multi_entity_by_hand() -> None:
    pred = [
        # ORG(3-4) right; "Bad Romance" typed PER (wrong); "Lady" alone as PER (wrong span)
        ["O", "O", "O", "B-ORG", "I-ORG", "O", "B-PER", "I-PER", "O", "O", "B-PER", "O"],
        # Ice Cube right; Dr. Dre missed
        ["O", "O", "O", "B-PER", "I-PER", "O", "O", "O"],
    ]
    assert [len(w) for w in PANX_WORDS] == [len(t) for t in PANX_GOLD]
    # gold entities: ORG, ORG, PER | PER, PER            -> 5
    # predicted:     ORG, PER(6-7), PER(10-10) | PER     -> 4
    # correct:       ORG(3-4) | PER(3-4)                 -> 2
    # precision 2/4 = 50, recall 2/5 = 40, F1 = 2*.5*.4/.9 = 44.44
    scores = seqeval_f1(PANX_GOLD, pred)
    assert scores["precision"] == pytest.approx(50.0)
    assert scores["recall"] == pytest.approx(40.0)
    assert scores["f1"] == pytest.approx(100 * 0.4 / 0.9)


def test_default_mode_accepts_i_without_b() -> None:
    # XTREME uses seqeval's default (conlleval) mode: I-PER after O opens an entity,
    # so this prediction matches the gold B-PER I-PER span exactly (strict IOB2 would not).
    gold = [["O", "B-PER", "I-PER"]]
    pred = [["O", "I-PER", "I-PER"]]
    assert seqeval_f1(gold, pred)["f1"] == pytest.approx(100.0)


def test_udpos_is_scored_as_xtreme_does_chunk_f1_not_accuracy() -> None:
    # First five words of UD English-EWT dev sentence -0002:
    # "President Bush on Tuesday nominated"
    gold = [["PROPN", "PROPN", "ADP", "PROPN", "VERB"]]
    pred = [["PROPN", "NOUN", "ADP", "PROPN", "VERB"]]
    # seqeval reads PROPN as prefix P + type ROPN, so "President Bush" is one chunk.
    # gold chunks: ROPN(0-1) DP(2) ROPN(3) ERB(4)           -> 4
    # pred chunks: ROPN(0) OUN(1) DP(2) ROPN(3) ERB(4)      -> 5
    # correct: DP(2), ROPN(3), ERB(4) -> P = 3/5, R = 3/4, F1 = 2/3 (token accuracy would be 80)
    scores = seqeval_f1(gold, pred)
    assert scores["precision"] == pytest.approx(60.0)
    assert scores["recall"] == pytest.approx(75.0)
    assert scores["f1"] == pytest.approx(200 / 3)


def test_no_predicted_entities_scores_zero() -> None:
    assert seqeval_f1(PANX_GOLD, [["O"] * len(s) for s in PANX_GOLD]) == {
        "f1": 0.0, "precision": 0.0, "recall": 0.0}


def test_shape_errors_name_the_sentence() -> None:
    with pytest.raises(MetricInputError, match="sentence 1: 8 gold tags vs 7"):
        seqeval_f1(PANX_GOLD, [PANX_GOLD[0], PANX_GOLD[1][:-1]])
    with pytest.raises(MetricInputError, match="number of sentences differs"):
        seqeval_f1(PANX_GOLD, PANX_GOLD[:1])
