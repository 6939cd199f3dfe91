"""Which sub-token carries a word's tag: XTREME's first sub-token, or first_content (no lone '▁')."""
from __future__ import annotations

import numpy as np
import pytest

from xstilts.data.examples import TaggingExample
from xstilts.data.featurize.tagging import (TaggingFeaturizer, featurize_tagging, first_subtoken_positions,
                                            word_predictions)
from xstilts.tasks import declared, get_task
from xstilts.tasks.declared import declare_datasets

ZH = TaggingExample("zh-0", "zh", ("同樣", "，", "施力"), ("ADV", "PUNCT", "VERB"))
EN = TaggingExample("en-0", "en", ("Hello", "world"), ("INTJ", "NOUN"))
LABELS = ["ADV", "INTJ", "NOUN", "PUNCT", "VERB"]


def labelled(feature, tokenizer) -> list[str]:
    tokens = tokenizer.convert_ids_to_tokens(feature.input_ids.tolist())
    return [tokens[p] for p in first_subtoken_positions(feature)]


def test_xtreme_alignment_puts_every_chinese_label_on_a_lone_space_piece(xlmr_tokenizer):
    [f] = featurize_tagging([ZH], xlmr_tokenizer, LABELS)
    assert xlmr_tokenizer.convert_ids_to_tokens(f.input_ids.tolist()) == \
        ["<s>", "▁", "同樣", "▁", ",", "▁", "施", "力", "</s>"]
    assert labelled(f, xlmr_tokenizer) == ["▁", "▁", "▁"]  # three labels, one indistinguishable input piece


def test_first_content_labels_the_piece_that_carries_the_word(xlmr_tokenizer):
    [f] = featurize_tagging([ZH], xlmr_tokenizer, LABELS, alignment="first_content")
    assert labelled(f, xlmr_tokenizer) == ["同樣", ",", "施"]
    assert f.labels.tolist() == [-100, -100, 0, -100, 3, -100, 4, -100, -100]
    assert f.word_ids.tolist() == [-1, -1, 0, -1, 1, -1, 2, 2, -1]  # the '▁' stays an input, in no word
    preds = np.arange(len(f.input_ids))  # a token's "prediction" is its position
    assert word_predictions([f], [preds], [ZH]) == [[2, 4, 6]]
    xtreme, content = (featurize_tagging([EN], xlmr_tokenizer, LABELS, alignment=a)[0]
                       for a in ("first_subtoken", "first_content"))
    assert xtreme.labels.tolist() == content.labels.tolist()  # '▁Hello': nothing to skip


def test_alignment_enters_the_cache_key_only_when_not_xtremes(xlmr_tokenizer):
    assert TaggingFeaturizer(xlmr_tokenizer, LABELS).params() == {"label_list": LABELS, "max_length": 128}
    assert TaggingFeaturizer(xlmr_tokenizer, LABELS, alignment="first_content").params()["alignment"] == \
        "first_content"
    with pytest.raises(Exception, match="tag alignment 'last'"):
        featurize_tagging([ZH], xlmr_tokenizer, LABELS, alignment="last")


def test_a_declared_variant_records_the_alignment_and_its_featurizer_uses_it(xlmr_tokenizer):
    from xstilts.config import PhaseConfig, TaskData

    declared._forget_all()
    try:
        declare_datasets([{"name": "panx-fc", "extends": "panx", "tag_alignment": "first_content"}])
        task = get_task("panx-fc")
        assert get_task("panx").tag_alignment == "first_subtoken" and task.tag_alignment == "first_content"
        assert task.family.featurizer(task, xlmr_tokenizer, max_length=128, doc_stride=0).alignment == "first_content"
        cfg = PhaseConfig(phase="target", tasks=[TaskData(task="panx-fc")])
        assert cfg.datasets[0]["tag_alignment"] == "first_content"
        assert cfg.run_key() != PhaseConfig(phase="target", tasks=[TaskData(task="panx")]).run_key()
    finally:
        declared._forget_all()


def test_the_report_says_which_alignment_produced_each_tagging_tasks_scores():
    from xstilts.analysis.report import task_method_notes

    declared._forget_all()
    try:
        declare_datasets([{"name": "panx-fc", "extends": "panx", "tag_alignment": "first_content"}])
        notes = task_method_notes(["tatoeba", "panx-fc", "panx", "panx", "not-registered-here"])
    finally:
        declared._forget_all()
    assert len(notes) == 2  # Tatoeba has no alignment; an unknown task is skipped, not an error
    assert notes[0].startswith("panx: ") and "first_subtoken, XTREME's convention" in notes[0]
    assert notes[1].startswith("panx-fc: ") and "first_content" in notes[1] and "not XTREME's" in notes[1]
