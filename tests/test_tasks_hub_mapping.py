"""The Hub path maps real Hub field names to the same records as the local readers.

Each test builds a ``datasets.Dataset`` in the Hub dataset's schema (field names,
ClassLabel columns) from the vendored real files, runs the task's Hub mapping and compares
with what the local reader produced. No network.
"""
from __future__ import annotations

import datasets
import pytest

from xstilts.data.hub import examples_from_dataset
from xstilts.data.loading import load_examples, load_parallel
from xstilts.tasks import get_task


def _strip_guid(examples: list) -> list:
    return [{k: v for k, v in vars(ex).items() if k != "guid"} for ex in examples]


def _class_label(names: tuple[str, ...] | list[str]) -> datasets.ClassLabel:
    return datasets.ClassLabel(names=list(names))


def test_xnli_facebook_xnli_schema() -> None:
    local = load_examples("xnli", "hi", "dev", max_examples=50)
    names = ["entailment", "neutral", "contradiction"]  # facebook/xnli ClassLabel order
    ds = datasets.Dataset.from_list(
        [{"premise": e.text_a, "hypothesis": e.text_b, "label": names.index(e.label)} for e in local],
        features=datasets.Features({"premise": datasets.Value("string"), "hypothesis": datasets.Value("string"),
                                    "label": _class_label(names)}))
    assert _strip_guid(examples_from_dataset(get_task("xnli"), [ds], "hi", "dev")) == _strip_guid(local)


@pytest.mark.parametrize("task,lang,field", [("panx", "de", "ner_tags"), ("udpos", "ja", "pos_tags")])
def test_tagging_google_xtreme_schema(task: str, lang: str, field: str) -> None:
    local = load_examples(task, lang, "dev", max_examples=40)
    names = list(get_task(task).labels)[::-1]  # a ClassLabel order unlike ours: mapping must use names
    ds = datasets.Dataset.from_list(
        [{"tokens": list(e.words), field: [names.index(t) for t in e.tags], "langs": [lang] * len(e.words)}
         for e in local],
        features=datasets.Features({"tokens": datasets.Sequence(datasets.Value("string")),
                                    field: datasets.Sequence(_class_label(names)),
                                    "langs": datasets.Sequence(datasets.Value("string"))}))
    assert _strip_guid(examples_from_dataset(get_task(task), [ds], lang, "dev")) == _strip_guid(local)


def _squad_rows(examples: list) -> list[dict]:
    return [{"id": e.guid, "title": e.title, "context": e.context, "question": e.question,
             "answers": {"text": [a.text for a in e.answers], "answer_start": [a.start for a in e.answers]}}
            for e in examples]


@pytest.mark.parametrize("task,lang,split", [("xquad", "ar", "test"), ("mlqa", "hi", "dev"),
                                             ("squad_v2", "en", "dev")])
def test_span_qa_squad_schema(task: str, lang: str, split: str) -> None:
    local = load_examples(task, lang, split, max_examples=60)
    ds = datasets.Dataset.from_list(_squad_rows(local))
    assert examples_from_dataset(get_task(task), [ds], lang, split) == local


def test_tydiqa_keeps_only_the_language_rows() -> None:
    # The Hub config mixes all TyDi languages; ids start with the language name.
    en = load_examples("tydiqa", "en", "train", max_examples=30)
    en_rows = [dict(r, id="english-" + r["id"]) for r in _squad_rows(en)]
    ko_rows = [dict(r, id="korean-" + r["id"]) for r in _squad_rows(en[:5])]
    ds = datasets.Dataset.from_list(ko_rows[:2] + en_rows + ko_rows[2:])
    assert _strip_guid(examples_from_dataset(get_task("tydiqa"), [ds], "en", "train")) == _strip_guid(en)


def test_squad_v2_empty_answers_are_impossible() -> None:
    ds = datasets.Dataset.from_list([{"id": "x", "title": "", "context": "c", "question": "q",
                                      "answers": {"text": [], "answer_start": []}}])
    (ex,) = examples_from_dataset(get_task("squad_v2"), [ds], "en", "dev")
    assert ex.is_impossible and ex.answers == ()


@pytest.mark.parametrize("task,split,hub_names", [
    ("sst2", "dev", ["negative", "positive"]), ("qqp", "dev", ["not_duplicate", "duplicate"])])
def test_glue_schema(task: str, split: str, hub_names: list[str]) -> None:
    local = load_examples(task, "en", split, max_examples=30)
    t = get_task(task)
    rows = [{t.hub_text_a: e.text_a, **({t.hub_text_b: e.text_b} if t.hub_text_b else {}),
             "label": int(e.label), "idx": i} for i, e in enumerate(local)]
    feats = {t.hub_text_a: datasets.Value("string"), "label": _class_label(hub_names), "idx": datasets.Value("int32")}
    if t.hub_text_b:
        feats[t.hub_text_b] = datasets.Value("string")
    ds = datasets.Dataset.from_list(rows, features=datasets.Features(feats))
    assert _strip_guid(examples_from_dataset(t, [ds], "en", split)) == _strip_guid(local)


def test_anli_three_rounds_concatenated() -> None:
    local = load_examples("anli", "en", "dev")
    names = ["entailment", "neutral", "contradiction"]
    per_round = [local[0:3], local[3:6], local[6:9]]
    dss = [datasets.Dataset.from_list([{"uid": e.guid, "premise": e.text_a, "hypothesis": e.text_b,
                                        "label": names.index(e.label), "reason": ""} for e in part],
                                      features=datasets.Features({"uid": datasets.Value("string"),
                                                                  "premise": datasets.Value("string"),
                                                                  "hypothesis": datasets.Value("string"),
                                                                  "label": _class_label(names),
                                                                  "reason": datasets.Value("string")}))
           for part in per_round]
    assert len(get_task("anli").hub_refs("en", "dev")) == 3
    assert _strip_guid(examples_from_dataset(get_task("anli"), dss, "en", "dev")) == _strip_guid(local)


def test_multiple_choice_schemas() -> None:
    hs = load_examples("hellaswag", "en", "dev")
    ds = datasets.Dataset.from_list([{"ind": int(e.guid), "ctx_a": e.context, "ctx_b": e.question, "ctx": "",
                                      "endings": list(e.choices), "label": str(e.label)} for e in hs])
    assert examples_from_dataset(get_task("hellaswag"), [ds], "en", "dev") == hs

    csqa = load_examples("commonsenseqa", "en", "dev", max_examples=25)
    ds = datasets.Dataset.from_list([{"id": e.guid, "question": e.question, "question_concept": "",
                                      "choices": {"label": list("ABCDE"), "text": list(e.choices)},
                                      "answerKey": "ABCDE"[e.label]} for e in csqa])
    assert examples_from_dataset(get_task("commonsenseqa"), [ds], "en", "dev") == csqa

    cosmos = load_examples("cosmosqa", "en", "dev", max_examples=25)
    ds = datasets.Dataset.from_list([{"id": e.guid, "context": e.context, "question": e.question,
                                      **{f"answer{i}": c for i, c in enumerate(e.choices)}, "label": e.label}
                                     for e in cosmos])
    assert examples_from_dataset(get_task("cosmosqa"), [ds], "en", "dev") == cosmos


def test_tatoeba_google_xtreme_schema() -> None:
    local = load_parallel("tatoeba", "sw", "test")
    ds = datasets.Dataset.from_list([{"source_sentence": s, "target_sentence": t, "source_lang": "swh",
                                      "target_lang": "eng"} for s, t in zip(local.source, local.target)])
    assert examples_from_dataset(get_task("tatoeba"), [ds], "sw", "test") == local
