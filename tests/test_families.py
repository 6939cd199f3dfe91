"""The task family objects: lengths, decoding, gold checks, and serving through the pyfunc.

Serving must featurize and decode exactly as evaluation does, so the serving
tests compare the pyfunc's answers with ``predict`` on the same rows.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from xstilts.data.examples import Answer, ParallelCorpus, SpanQAExample
from xstilts.data.loading import load_examples
from xstilts.data.task_features import task_features
from xstilts.errors import XstiltsError
from xstilts.evaluation.predict import EvalData, predict
from xstilts.families import (BUCC, MASKED_LM, SPAN_QA, TAGGING, TATOEBA, head_family, resolve_lengths)
from xstilts.models.heads import TaskOutput
from xstilts.models.multitask import HeadSpec, XstiltsModel
from xstilts.tasks import get_task

# -- lengths -----------------------------------------------------------------------------------


def test_family_defaults_are_xtremes_lengths_and_explicit_values_win():
    assert resolve_lengths(get_task("xquad")) == (384, 128)
    for name in ("xnli", "panx", "hellaswag", "tatoeba", "bucc2018"):
        assert resolve_lengths(get_task(name)) == (128, 128)
    assert resolve_lengths(get_task("squad"), 256, 64) == (256, 64)
    assert MASKED_LM.lengths(None, None) == (128, 128)


def test_run_key_is_the_same_whether_the_default_length_is_stated_or_left_out():
    from xstilts.config import PhaseConfig, TaskData, TrainingArgs

    def cfg(**training):
        return PhaseConfig(phase="target", tasks=[TaskData(task="panx")], training=TrainingArgs(**training))

    assert TrainingArgs().max_length is None and TrainingArgs().doc_stride is None
    assert cfg(max_length=128).run_key() == cfg().run_key() == cfg(max_length=128, doc_stride=128).run_key()
    assert cfg(max_length=256).run_key() != cfg().run_key()


# -- data and heads ------------------------------------------------------------------------------


def test_span_qa_drops_questions_without_answer_unless_marked_impossible():
    rows = [SpanQAExample("a", "en", "q", "ctx", (Answer("ctx", 0),)), SpanQAExample("b", "en", "q", "ctx", ()),
            SpanQAExample("c", "en", "q", "ctx", (), is_impossible=True)]
    assert [ex.guid for ex in SPAN_QA.filter_examples(rows)] == ["a", "c"]
    assert TAGGING.filter_examples(rows) == rows


def test_head_families_by_stored_name_and_head_checks():
    assert head_family("tagging") is TAGGING and head_family("mlm") is MASKED_LM
    with pytest.raises(XstiltsError, match="head family"):
        head_family("retrieval")
    panx = get_task("panx")
    panx.family.check_head(HeadSpec("panx", "tagging", 7), panx, "panx")
    with pytest.raises(XstiltsError, match="is a sentence_classification head"):
        panx.family.check_head(HeadSpec("xnli", "sentence_classification", 3), panx, "xnli")
    with pytest.raises(XstiltsError, match="predicts 9 labels"):
        panx.family.check_head(HeadSpec("panx", "tagging", 9), panx, "panx")


def test_retrieval_gold_checks_differ_between_tatoeba_and_bucc():
    tatoeba, bucc = get_task("tatoeba"), get_task("bucc2018")
    misaligned = ParallelCorpus("de", ("0", "1"), ("a", "b"), ("0",), ("x",))
    with pytest.raises(XstiltsError, match="line alignment"):
        TATOEBA.require_gold(tatoeba, "de", "test", misaligned)
    BUCC.require_gold(bucc, "de", "dev", ParallelCorpus("de", ("s",), ("a",), ("t", "u"), ("x", "y"),
                                                         (("s", "t"),)))
    with pytest.raises(XstiltsError, match="no gold sentence pairs"):
        BUCC.require_gold(bucc, "de", "dev", misaligned)
    assert not TATOEBA.needs_head and tatoeba.family.name == bucc.family.name == "retrieval"


# -- decoding hand-made outputs ------------------------------------------------------------------


def _data(task_name: str, lang: str, split: str, n: int, tokenizer) -> EvalData:
    task = get_task(task_name)
    examples = load_examples(task_name, lang, split, max_examples=n)
    max_length, doc_stride = resolve_lengths(task)
    features = task_features(task, examples, tokenizer, lang=lang, split=split, max_length=max_length,
                             doc_stride=doc_stride, cache=False)
    return EvalData(task, lang, split, examples, features)


def _one_batch(data: EvalData, logits):
    units = list(range(len(data.features.units)))
    rows = [i for u in units for i in data.features.units[u]]
    return [(units, rows, TaskOutput(None, logits))]


def test_classification_decodes_the_argmax_label_of_each_example(xlmr_tokenizer):
    data = _data("xnli", "en", "dev", 3, xlmr_tokenizer)
    logits = torch.tensor([[0.0, 1.0, 0.0], [2.0, 0.0, 0.0], [0.0, 0.0, 3.0]])
    labels = data.task.labels
    assert data.task.family.decode(data, _one_batch(data, logits)) == [labels[1], labels[0], labels[2]]
    assert data.task.family.gold(data.task, data.examples) == [ex.label for ex in data.examples]


def test_multiple_choice_decodes_one_choice_per_example(xlmr_tokenizer):
    data = _data("commonsenseqa", "en", "dev", 2, xlmr_tokenizer)
    assert len(data.features.features) == 10  # five choices each, one unit per example
    logits = torch.tensor([[0.0, 0.0, 0.0, 5.0, 0.0], [1.0, 0.0, 0.0, 0.0, 0.0]])
    assert data.task.family.decode(data, _one_batch(data, logits)) == [3, 0]


def test_tagging_decodes_one_tag_per_word_from_first_subtokens(xlmr_tokenizer):
    data = _data("panx", "de", "dev", 4, xlmr_tokenizer)
    width = max(len(f.input_ids) for f in data.features.features)
    logits = torch.zeros(len(data.features.features), width, 7)
    logits[..., 5] = 1.0  # B-LOC everywhere
    tags = data.task.family.decode(data, _one_batch(data, logits))
    assert tags == [["B-LOC"] * len(ex.words) for ex in data.examples]


def test_span_qa_decodes_the_span_the_logits_point_at(xlmr_tokenizer):
    data = _data("xquad", "de", "test", 2, xlmr_tokenizer)
    feats = data.features.features
    width = max(len(f.input_ids) for f in feats)
    start, end = torch.zeros(len(feats), width), torch.zeros(len(feats), width)
    for i, f in enumerate(feats):
        first = int(np.flatnonzero(f.offsets[:, 0] >= 0)[0])  # the first context token of each window
        start[i, first], end[i, first + 1] = 10.0, 10.0
    answers = data.task.family.decode(data, _one_batch(data, (start, end)))
    assert set(answers) == {ex.guid for ex in data.examples}
    for ex in data.examples:
        assert answers[ex.guid] and answers[ex.guid] in ex.context


# -- serving through the pyfunc ------------------------------------------------------------------


@pytest.fixture(scope="module")
def served(encoder_2layer, xlmr_tokenizer):
    """A pyfunc over one model with a head of every family, without an MLflow artifact."""
    from xstilts.tracking.pyfunc import XstiltsPyfunc

    heads = [HeadSpec("xnli", "sentence_classification", 3), HeadSpec("panx", "tagging", 7),
             HeadSpec("squad", "span_qa"), HeadSpec("commonsenseqa", "multiple_choice")]
    model = XstiltsModel(encoder_2layer, heads, seed=3).eval()
    pyfunc = XstiltsPyfunc()
    pyfunc.model, pyfunc.tokenizer = model, xlmr_tokenizer
    pyfunc.manifest = {"base_model": "multilingual-e5-small", "max_length": None, "doc_stride": None}
    pyfunc.base_model, pyfunc.max_length, pyfunc.doc_stride = "multilingual-e5-small", None, None
    return pyfunc


def _evaluated(served, task_name: str, head: str, lang: str, split: str, n: int):
    data = _data(task_name, lang, split, n, served.tokenizer)
    return data, predict(served.model, head, data)


def test_serving_classification_matches_evaluation(served):
    data, expected = _evaluated(served, "xnli", "xnli", "de", "dev", 6)
    rows = [{"text": ex.text_a, "text_pair": ex.text_b} for ex in data.examples]
    assert served.predict(None, rows, {"task": "xnli"}) == expected
    single = served.predict(None, [{"text": "Ein Satz."}], {"task": "xnli"})
    assert len(single) == 1 and single[0] in data.task.labels


def test_serving_tagging_matches_evaluation_from_words_or_text(served):
    import pandas as pd

    data, expected = _evaluated(served, "panx", "panx", "de", "dev", 6)
    assert served.predict(None, pd.DataFrame({"words": [list(ex.words) for ex in data.examples]}),
                          {"task": "panx"}) == expected
    assert served.predict(None, [{"text": " ".join(data.examples[0].words)}], {"task": "panx"}) == expected[:1]
    with pytest.raises(XstiltsError, match="'words'"):
        served.predict(None, [{"text": "  "}], {"task": "panx"})


def test_serving_span_qa_uses_the_squad_head_and_384_token_windows(served):
    data, expected = _evaluated(served, "xquad", "squad", "de", "test", 3)
    rows = [{"question": ex.question, "context": ex.context} for ex in data.examples]
    assert served.predict(None, rows, {"task": "xquad"}) == [expected[ex.guid] for ex in data.examples]
    with pytest.raises(XstiltsError, match="missing field 'context'"):
        served.predict(None, [{"question": "Wer?"}], {"task": "xquad"})


def test_serving_multiple_choice_matches_evaluation(served):
    data, expected = _evaluated(served, "commonsenseqa", "commonsenseqa", "en", "dev", 4)
    rows = [{"question": ex.question, "choices": list(ex.choices)} for ex in data.examples]
    assert served.predict(None, rows, {"task": "commonsenseqa"}) == expected


def test_serving_retrieval_returns_the_embedding_evaluation_uses(served):
    from xstilts.encoders.embed import embed_sentences
    from xstilts.evaluation.retrieval_eval import default_layer

    texts = ["Das ist ein Haus.", "This is a house."]
    vectors = served.predict(None, [{"text": t} for t in texts], {"task": "tatoeba"})
    encoder = served.model.encoder
    expected = embed_sentences(encoder, served.tokenizer, texts, max_length=128,
                               layer=default_layer("multilingual-e5-small", encoder.config.num_hidden_layers))
    assert np.allclose(np.asarray(vectors), expected, atol=1e-6)
    assert len(vectors[0]) == encoder.config.hidden_size


def test_every_family_describes_its_request():
    for name in ("xnli", "panx", "xquad", "hellaswag", "tatoeba", "bucc2018"):
        schema = get_task(name).family.serving.to_dict()
        assert schema["inputs"] and schema["output"]


def test_served_chinese_and_japanese_text_is_tagged_by_character_as_evaluation_tags_it(served):
    """PAN-X's zh and ja sentences have no spaces and one tag per character: served as one string, the text
    is split the same way, so the answers equal evaluation's on the gold characters."""
    import unicodedata

    script = ("CJK", "HIRAGANA", "KATAKANA", "FULLWIDTH", "IDEOGRAPHIC")
    for lang in ("zh", "ja"):
        data, expected = _evaluated(served, "panx", "panx", lang, "dev", 40)
        rows = [(ex.words, tags) for ex, tags in zip(data.examples, expected)
                if all(len(w) == 1 and unicodedata.name(w, "").startswith(script) for w in ex.words)]
        assert len(rows) >= 10, lang
        texts = [{"text": "".join(words)} for words, _ in rows]
        assert served.predict(None, texts, {"task": "panx"}) == [tags for _, tags in rows], lang
    tags = ["B-LOC", "I-LOC", "I-LOC", "I-LOC", "I-LOC", "O", "B-LOC"]
    mixed = TAGGING.describe([{"text": "東京\u3000タワー in Tokyo"}], [tags])[0]
    assert [t["word"] for t in mixed["tokens"]] == ["東", "京", "タ", "ワ", "ー", "in", "Tokyo"]
    assert [e["text"] for e in mixed["entities"]] == ["東京\u3000タワー", "Tokyo"]


def test_entities_leave_out_the_punctuation_written_against_their_words():
    """Hand-worked: words split at whitespace keep their punctuation; the entities built from them do not,
    except an initial's full stop, and the word tags stay as the model gave them."""
    text = "Aare Obasanjo lo si Naijiria."
    out = TAGGING.describe([{"text": text}], [["B-LOC", "I-LOC", "O", "O", "B-LOC"]])[0]
    assert out["tokens"][-1]["word"] == "Naijiria." and out["tokens"][-1]["tag"] == "B-LOC"
    assert out["entities"] == [{"text": "Aare Obasanjo", "label": "LOC", "start": 0, "end": 13},
                               {"text": "Naijiria", "label": "LOC", "start": 20, "end": 28}]
    cases = [("Miji (Sudan), ''Lisbon''", ["O", "B-LOC", "B-LOC"], ["Sudan", "Lisbon"]),
             ("J. R. R. Tolkien alikuja.", ["B-PER", "I-PER", "I-PER", "I-PER", "O"], ["J. R. R. Tolkien"]),
             ("Alienda U.S. mwaka", ["O", "B-LOC", "O"], ["U.S."]),
             ("Sioux Falls , South Dakota )", ["B-LOC", "I-LOC", "I-LOC", "I-LOC", "I-LOC", "I-LOC"],
              ["Sioux Falls , South Dakota"]),
             ("Nairobi , Kenya", ["B-LOC", "B-LOC", "B-LOC"], ["Nairobi", "Kenya"]),  # the lone comma: dropped
             ("Dar es Salaam.", ["B-LOC", "I-LOC", "I-LOC"], ["Dar es Salaam"])]
    for text, tags, names in cases:
        entities = TAGGING.describe([{"text": text}], [tags])[0]["entities"]
        assert [e["text"] for e in entities] == names, text
        assert all(text[e["start"]:e["end"]] == e["text"] for e in entities)
