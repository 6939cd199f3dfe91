"""Span QA windows and answer postprocessing on real XQuAD, MLQA and TyDiQA rows."""
from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from xstilts.data.examples import Answer
from xstilts.data.featurize import FeaturizationError, best_spans, featurize_span_qa
from xstilts.data.featurize.span_qa import collate
from xstilts.data.loading import load_examples

SOURCES = [("xquad", "ar", "test"), ("xquad", "zh", "test"), ("xquad", "hi", "test"),
           ("xquad", "en", "test"), ("mlqa", "zh", "dev"), ("mlqa", "hi", "dev"),
           ("tydiqa", "en", "train")]  # XTREME's TyDiQA dev files blank the gold answers


def _one_hot_logits(features, positions):
    starts, ends = [], []
    for f, (s, e) in zip(features, positions):
        start, end = np.full(len(f.input_ids), -10.0), np.full(len(f.input_ids), -10.0)
        start[s], end[e] = 10.0, 10.0
        starts.append(start)
        ends.append(end)
    return starts, ends


@pytest.mark.parametrize("task,lang,split", SOURCES)
def test_answer_positions_map_back_to_the_answer_text(task, lang, split, xlmr_tokenizer):
    examples = load_examples(task, lang, split, max_examples=120)
    # a short window so that contexts overflow and answers fall outside some windows
    features = featurize_span_qa(examples, xlmr_tokenizer, max_length=192, doc_stride=64)
    assert len(features) > len(examples)
    aligned = inside = 0
    for f in features:
        ex = examples[f.example_index]
        assert len(f.input_ids) <= 192 and f.cls_index == 0
        answer = ex.answers[0]
        a_start, a_end = answer.start, answer.start + len(answer.text)
        context = f.offsets[f.offsets[:, 0] >= 0]
        fits = context[0, 0] <= a_start and context[-1, 1] >= a_end
        if not fits:
            assert f.start_position == f.end_position == 0
            continue
        inside += 1
        s, e = f.start_position, f.end_position
        assert 0 < s <= e and f.offsets[s, 0] >= 0 and f.offsets[e, 0] >= 0
        span_start, span_end = f.offsets[s, 0], f.offsets[e, 1]
        # the span covers the answer, and is the tightest token span that does
        assert span_start <= a_start and span_end >= a_end
        assert s == len(f.offsets) - 1 or f.offsets[s + 1, 0] < 0 or f.offsets[s + 1, 0] > a_start
        assert f.offsets[e - 1, 1] < a_end or e - 1 < s
        if a_start in set(context[:, 0]) and a_end in set(context[:, 1]):
            aligned += 1
            assert ex.context[span_start:span_end] == answer.text
    assert inside >= len(examples) * 0.9
    assert aligned >= inside * 0.8  # most answers start and end on token boundaries


@pytest.mark.parametrize("lang", ["ar", "zh", "hi", "en"])
def test_best_spans_recovers_gold_answers_from_gold_logits(lang, xlmr_tokenizer):
    examples = load_examples("xquad", lang, "test", max_examples=60)
    features = featurize_span_qa(examples, xlmr_tokenizer, max_length=256, doc_stride=96)
    starts, ends = _one_hot_logits(features, [(f.start_position, f.end_position) for f in features])
    predicted = best_spans(starts, ends, features, examples)
    exact = 0
    for ex in examples:
        text = ex.answers[0].text
        assert text in predicted[ex.guid]
        exact += predicted[ex.guid] == text
    assert exact >= len(examples) * 0.9
    # the first XQuAD question ("how many points did the Panthers defense give up?") is 308
    assert predicted[examples[0].guid].strip("分") == "308"


def test_best_spans_rules_on_hand_made_logits(xlmr_tokenizer):
    ex = load_examples("xquad", "en", "test", max_examples=1)[0]
    (f,) = featurize_span_qa([ex], xlmr_tokenizer, max_length=384)
    ctx = np.flatnonzero(f.offsets[:, 0] >= 0)
    question = np.flatnonzero(f.offsets[:, 0] < 0)[1]  # a question token, never an answer
    n = len(f.input_ids)

    def run(start_scores, end_scores, **kw):
        s, e = np.zeros(n), np.zeros(n)
        for i, v in start_scores.items():
            s[i] = v
        for i, v in end_scores.items():
            e[i] = v
        return best_spans([s], [e], [f], [ex], **kw)[ex.guid]

    def text(i, j):
        return ex.context[f.offsets[i, 0]:f.offsets[j, 1]]

    a = ctx[5]
    # the best start+end pair wins
    assert run({a: 5, ctx[10]: 4}, {a + 2: 5, ctx[12]: 4}) == text(a, a + 2)
    # a question token or an end before the start is never chosen
    assert run({question: 9, a: 5}, {question: 9, a + 1: 5}) == text(a, a + 1)
    assert run({a + 3: 9, a: 5}, {a + 1: 9}) == text(a, a + 1)
    # spans longer than max_answer_len are dropped
    assert run({a: 9}, {a + 40: 9, a + 3: 1}, max_answer_len=30) == text(a, a + 3)
    # only the n_best starts are considered
    assert run({a: 9, ctx[20]: 8}, {a - 1: 9, a + 1: 8}, n_best=1) == ""
    assert run({a: 9, ctx[20]: 8}, {a - 1: 9, a + 1: 8}, n_best=2) == text(a, a + 1)
    # SQuAD 2.0: the null answer wins when CLS scores higher than the best span
    assert run({0: 8, a: 5}, {0: 8, a + 1: 5}, allow_impossible=True) == ""
    assert run({0: 4, a: 5}, {0: 4, a + 1: 5}, allow_impossible=True) == text(a, a + 1)
    assert run({0: 8, a: 5}, {0: 8, a + 1: 5}) == text(a, a + 1)  # SQuAD 1.1 ignores CLS


def test_best_spans_combines_windows_and_accepts_padded_rows(xlmr_tokenizer):
    ex = max(load_examples("xquad", "en", "test", max_examples=40), key=lambda e: len(e.context))
    features = featurize_span_qa([ex], xlmr_tokenizer, max_length=128, doc_stride=32)
    assert len(features) >= 3
    last = features[-1]
    ctx = np.flatnonzero(last.offsets[:, 0] >= 0)
    width = max(len(f.input_ids) for f in features) + 7  # padded like a batch
    starts, ends = np.zeros((len(features), width)), np.zeros((len(features), width))
    starts[0, np.flatnonzero(features[0].offsets[:, 0] >= 0)[2]] = 3  # weaker span in window 0
    ends[0, np.flatnonzero(features[0].offsets[:, 0] >= 0)[3]] = 3
    starts[-1, ctx[-3]], ends[-1, ctx[-2]] = 6, 6
    starts[-1, len(last.input_ids):] = ends[-1, len(last.input_ids):] = 100  # padding: ignored
    predicted = best_spans(starts, ends, features, [ex])[ex.guid]
    assert predicted == ex.context[last.offsets[ctx[-3], 0]:last.offsets[ctx[-2], 1]]


def test_impossible_examples_point_at_cls(xlmr_tokenizer):
    ex = load_examples("xquad", "en", "test", max_examples=1)[0]
    impossible = dataclasses.replace(ex, answers=(), is_impossible=True)
    features = featurize_span_qa([impossible], xlmr_tokenizer, max_length=128, doc_stride=32)
    assert all(f.start_position == f.end_position == f.cls_index == 0 for f in features)


def test_misplaced_answer_is_an_error_naming_the_example(xlmr_tokenizer):
    ex = load_examples("xquad", "en", "test", max_examples=1)[0]
    wrong = dataclasses.replace(ex, answers=(Answer(ex.answers[0].text, ex.answers[0].start + 3),))
    with pytest.raises(FeaturizationError, match=rf"example {ex.guid}: answer '308' is not at character"):
        featurize_span_qa([wrong], xlmr_tokenizer)


def test_collate_positions(xlmr_tokenizer):
    examples = load_examples("xquad", "en", "test", max_examples=3)
    features = featurize_span_qa(examples, xlmr_tokenizer)
    batch = collate(features, xlmr_tokenizer.pad_token_id)
    assert batch["input_ids"].shape == (len(features), max(len(f.input_ids) for f in features))
    assert batch["start_positions"].tolist() == [f.start_position for f in features]
    assert batch["end_positions"].tolist() == [f.end_position for f in features]


def _run_qa_reference(start_logits, end_logits, features, examples, version_2, n_best=20, max_len=30):
    """HF run_qa's postprocess_qa_predictions (utils_qa.py), selection logic transcribed as is."""
    out = {}
    for example_index, ex in enumerate(examples):
        min_null, prelim = None, []
        for i, f in enumerate(features):
            if f.example_index != example_index:
                continue
            s_log, e_log, offsets = start_logits[i], end_logits[i], f.offset_mapping
            null = s_log[0] + e_log[0]
            if min_null is None or min_null["score"] > null:
                min_null = {"offsets": (0, 0), "score": null, "start_logit": s_log[0], "end_logit": e_log[0]}
            for s in np.argsort(s_log)[-1:-n_best - 1:-1].tolist():
                for e in np.argsort(e_log)[-1:-n_best - 1:-1].tolist():
                    if s >= len(offsets) or e >= len(offsets) or offsets[s] is None or offsets[e] is None:
                        continue
                    if e < s or e - s + 1 > max_len:
                        continue
                    prelim.append({"offsets": (offsets[s][0], offsets[e][1]), "score": s_log[s] + e_log[e],
                                   "start_logit": s_log[s], "end_logit": e_log[e]})
        if version_2:
            prelim.append(min_null)
            null_score = min_null["score"]
        predictions = sorted(prelim, key=lambda x: x["score"], reverse=True)[:n_best]
        if version_2 and not any(p["offsets"] == (0, 0) for p in predictions):
            predictions.append(min_null)
        for p in predictions:
            p["text"] = ex.context[p["offsets"][0]:p["offsets"][1]]
        if not version_2:
            out[ex.guid] = predictions[0]["text"]
        else:
            best = next(p for p in predictions if p["text"] != "")
            out[ex.guid] = "" if null_score - best["start_logit"] - best["end_logit"] > 0 else best["text"]
    return out


@pytest.mark.parametrize("version_2", [False, True])
def test_best_spans_matches_run_qa_on_random_logits(version_2, xlmr_tokenizer):
    examples = load_examples("xquad", "hi", "test", max_examples=25)
    features = featurize_span_qa(examples, xlmr_tokenizer, max_length=128, doc_stride=32)
    rng = np.random.default_rng(7)
    starts = [rng.normal(0, 3, len(f.input_ids)) for f in features]
    ends = [rng.normal(0, 3, len(f.input_ids)) for f in features]
    if version_2:  # make the null answer competitive on some examples
        for s, e in zip(starts, ends):
            s[0] += 7
            e[0] += 7
    ours = best_spans(starts, ends, features, examples, allow_impossible=version_2)
    reference = _run_qa_reference(starts, ends, features, examples, version_2)
    assert ours == reference
    assert len(set(ours.values())) > 10  # the logits really do pick different spans
    if version_2:
        assert 0 < list(ours.values()).count("") < len(examples)
