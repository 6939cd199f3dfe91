"""Pieces of `xstilts evaluate`: token-budget batches, BUCC two-fold threshold, default layer."""
from __future__ import annotations

import pytest

from xstilts.data.loading import load_examples
from xstilts.data.task_features import task_features
from xstilts.evaluation.predict import EvalData, _batches, predict
from xstilts.evaluation.retrieval_eval import default_layer, two_fold_dev_tuned
from xstilts.tasks import get_task


@pytest.fixture(scope="module")
def panx_de(xlmr_tokenizer):
    task = get_task("panx")
    examples = load_examples("panx", "de", "dev", max_examples=120)
    features = task_features(task, examples, xlmr_tokenizer, lang="de", split="dev", max_length=128, cache=False)
    return EvalData(task, "de", "dev", examples, features)


def test_token_budget_batches_cover_every_unit_once_within_the_budget(panx_de):
    f = panx_de.features
    width = [len(f.features[u[0]].input_ids) for u in f.units]
    batches = _batches(panx_de, 16, max_tokens=256)
    assert sorted(u for b in batches for u in b) == list(range(len(f.units)))
    for b in batches:
        assert len(b) <= 16
        assert len(b) == 1 or len(b) * width[b[0]] <= 256  # padded to its first (longest) row
        assert width[b[0]] == max(width[u] for u in b)
    firsts = [width[b[0]] for b in batches]
    assert firsts == sorted(firsts, reverse=True)
    assert len(batches) > len(f.units) / 16  # the budget, not the count, cut the long rows


def test_predictions_do_not_depend_on_how_rows_are_batched(panx_de, encoder_2layer):
    from xstilts.models.multitask import HeadSpec, XstiltsModel

    model = XstiltsModel(encoder_2layer, [HeadSpec("panx", "tagging", 7)], seed=5)
    by_count = predict(model, "panx", panx_de, batch_size=64)
    by_tokens = predict(model, "panx", panx_de, batch_size=64, max_tokens=300)
    assert by_tokens == by_count
    assert [len(t) for t in by_count] == [len(ex.words) for ex in panx_de.examples]


def test_two_fold_threshold_is_tuned_on_the_other_half():
    ids = ["s0", "s1", "s2", "s3"]  # folds by position: {s0, s2} and {s1, s3}
    candidates = {("s0", "t0"): 1.5, ("s2", "t2"): 1.1, ("s1", "t1"): 1.4, ("s3", "t9"): 1.2}
    gold = {("s0", "t0"), ("s2", "t2"), ("s1", "t1"), ("s3", "t3")}
    predicted, thresholds = two_fold_dev_tuned(candidates, gold, ids)
    # fold {s0,s2} uses fold {s1,s3}'s F1-best cut: after (s1,t1) 1.4, half-way to 1.2 -> 1.3,
    # which drops (s2,t2) at 1.1; fold {s1,s3} uses 1.1 (fold {s0,s2} is best with both kept)
    assert thresholds == pytest.approx([1.3, 1.1])
    assert predicted == {("s0", "t0"), ("s1", "t1"), ("s3", "t9")}


def test_default_layer_follows_xtreme_except_for_e5():
    assert default_layer("/cache/encoders/multilingual-e5-small-q4", 12) == -1
    assert default_layer("intfloat/multilingual-e5-base", 12) == -1
    assert default_layer("xlm-roberta-large", 24) == 13   # run_tatoeba.sh / run_bucc2018.sh
    assert default_layer("bert-base-multilingual-cased", 12) == 7
