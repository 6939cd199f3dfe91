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


# ---------------------------------------------------------------- UD-POS as XTREME (seqeval 0.0.12)

from xstilts.evaluation.metrics.tagging import seqeval_0012_chunks, xtreme_pos_f1  # noqa: E402


def test_cconj_vs_sconj_is_wrong_under_xtremes_definition() -> None:
    # seqeval 0.0.12: types CCONJ and SCONJ (whole tag) -> no match. seqeval >= 1.0
    # reads both as prefix + "CONJ" and scores the error as correct.
    assert xtreme_pos_f1([["CCONJ"]], [["SCONJ"]]) == {"f1": 0.0, "precision": 0.0, "recall": 0.0,
                                                        "accuracy": 0.0}
    assert seqeval_f1([["CCONJ"]], [["SCONJ"]])["f1"] == pytest.approx(100.0)


def test_0012_chunks_runs_of_identical_tags_by_hand() -> None:
    # Prefix letters without rules of their own (N, P, V, ...): a run is one chunk.
    assert seqeval_0012_chunks([["NOUN", "NOUN", "VERB"]]) == [("NOUN", 0, 1), ("VERB", 2, 2)]
    # INTJ (prefix I, O->I opens, I->I same type continues): one chunk.
    assert seqeval_0012_chunks([["INTJ", "INTJ"]]) == [("INTJ", 0, 1)]
    # SCONJ/SYM (prefix S = single): every word its own chunk.
    assert seqeval_0012_chunks([["SYM", "SYM", "SCONJ"]]) == [("SYM", 0, 0), ("SYM", 1, 1), ("SCONJ", 2, 2)]
    # Sentences are joined with an "O" in between: no chunk crosses a boundary.
    assert seqeval_0012_chunks([["NOUN"], ["NOUN"]]) == [("NOUN", 0, 0), ("NOUN", 2, 2)]
    # CCONJ then SCONJ: two chunks (seqeval 1.x merges the types and drops the first).
    assert seqeval_0012_chunks([["CCONJ", "SCONJ"]]) == [("CCONJ", 0, 0), ("SCONJ", 1, 1)]


def test_xtreme_pos_f1_runs_by_hand() -> None:
    # gold NOUN(0-1) VERB(2) | pred NOUN(0) PROPN(1) VERB(2): 1 correct
    # P = 1/3, R = 1/2, F1 = 2/5; accuracy 2/3
    out = xtreme_pos_f1([["NOUN", "NOUN", "VERB"]], [["NOUN", "PROPN", "VERB"]])
    assert out["precision"] == pytest.approx(100 / 3) and out["recall"] == pytest.approx(50.0)
    assert out["f1"] == pytest.approx(40.0) and out["accuracy"] == pytest.approx(200 / 3)
    # A wrong word inside a NOUN run loses the whole run ...
    assert xtreme_pos_f1([["NOUN", "NOUN"]], [["NOUN", "X"]])["f1"] == 0.0
    # ... but SYM words are single chunks, so one of two is still right: P = R = 1/2.
    assert xtreme_pos_f1([["SYM", "SYM"]], [["SYM", "X"]])["f1"] == pytest.approx(50.0)


def test_xtreme_pos_f1_mixed_sentence_by_hand() -> None:
    # "The cat and dog sat because it rained ." with one CCONJ -> SCONJ error (word 2),
    # plus the EWT "President Bush on Tuesday nominated" sentence used above.
    gold = [["DET", "NOUN", "CCONJ", "NOUN", "VERB", "SCONJ", "PRON", "VERB", "PUNCT"],
            ["PROPN", "PROPN", "ADP", "PROPN", "VERB"]]
    pred = [["DET", "NOUN", "SCONJ", "NOUN", "VERB", "SCONJ", "PRON", "VERB", "PUNCT"],
            ["PROPN", "NOUN", "ADP", "PROPN", "VERB"]]
    # sentence 1: 9 gold chunks, 9 predicted, 8 correct
    # sentence 2: gold PROPN(0-1) ADP PROPN VERB = 4; pred PROPN NOUN ADP PROPN VERB = 5; 3 correct
    # P = 11/14, R = 11/13; accuracy 12/14 words
    out = xtreme_pos_f1(gold, pred)
    p, r = 11 / 14, 11 / 13
    assert out["precision"] == pytest.approx(100 * p) and out["recall"] == pytest.approx(100 * r)
    assert out["f1"] == pytest.approx(100 * 2 * p * r / (p + r))
    assert out["accuracy"] == pytest.approx(100 * 12 / 14)
    # seqeval >= 1.0 counts the CCONJ/SCONJ error as correct: 12/14 and 12/13.
    assert seqeval_f1(gold, pred)["precision"] == pytest.approx(100 * 12 / 14)


def test_xtreme_pos_f1_equals_installed_seqeval_without_the_conj_pair() -> None:
    # Away from SCONJ (type CONJ like CCONJ in seqeval >= 1.0) and X (type "_" like the
    # "O" between sentences in >= 1.0) the two definitions chunk identically (only
    # type names differ), so the installed seqeval is a reference for random sequences.
    import numpy as np

    from xstilts.data.readers import UPOS_TAGS
    tags = [t for t in UPOS_TAGS if t not in ("SCONJ", "X")]
    rng = np.random.default_rng(0)
    for _ in range(50):
        lens = rng.integers(1, 8, size=rng.integers(1, 5))
        gold = [list(rng.choice(tags[:5], size=n)) for n in lens]  # few tags: long runs
        pred = [[t if rng.random() < 0.7 else str(rng.choice(tags)) for t in s] for s in gold]
        ours, ref = xtreme_pos_f1(gold, pred), seqeval_f1(gold, pred)
        for k in ("f1", "precision", "recall"):
            assert ours[k] == pytest.approx(ref[k])


def test_udpos_task_uses_xtreme_pos_f1_with_f1_headline() -> None:
    from xstilts.evaluation.metrics import get_metric, summarize_task
    from xstilts.tasks import get_task

    spec = get_metric(get_task("udpos").metric)
    assert spec.name == "xtreme_pos_f1" and spec.headline == ("f1",)
    per_lang = {"en": xtreme_pos_f1([["NOUN", "VERB"]], [["NOUN", "VERB"]]),
                "de": xtreme_pos_f1([["NOUN", "VERB"]], [["NOUN", "X"]])}
    summary = summarize_task("udpos", per_lang, spec.headline).as_metrics()
    assert summary["udpos.score"] == pytest.approx(75.0)  # (100 + 50) / 2, F1 not accuracy
    assert summary["udpos.accuracy.avg"] == pytest.approx(75.0)
    assert summary["udpos.accuracy.avg_no_en"] == pytest.approx(50.0)


def test_xtreme_pos_f1_rejects_bad_input() -> None:
    with pytest.raises(MetricInputError):
        xtreme_pos_f1([["NOUN"]], [["NOUN", "VERB"]])
    with pytest.raises(MetricInputError, match="no words"):
        xtreme_pos_f1([[]], [[]])
