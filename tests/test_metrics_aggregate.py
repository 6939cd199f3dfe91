"""Task and group averages as XTREME's evaluate.py computes them."""
from __future__ import annotations

import pytest

from xstilts.evaluation.metrics import (
    MetricInputError, get_metric, group_scores, language_average, summarize_task)


def test_qa_task_score_is_mean_of_em_and_f1() -> None:
    per_lang = {"en": {"exact_match": 80.0, "f1": 90.0},
                "de": {"exact_match": 60.0, "f1": 70.0},
                "zh": {"exact_match": 40.0, "f1": 50.0}}
    s = summarize_task("xquad", per_lang, get_metric("squad_em_f1").headline)
    # avg EM 60, avg F1 70 -> (60 + 70) / 2 = 65; without en: EM 50, F1 60 -> 55
    assert s.averages == {"exact_match": 60.0, "f1": 70.0}
    assert s.score == 65.0
    assert s.averages_without_en == {"exact_match": 50.0, "f1": 60.0}
    assert s.score_without_en == 55.0
    assert s.as_metrics()["xquad.score_no_en"] == 55.0
    assert s.as_metrics()["xquad.f1.avg"] == 70.0


def test_tagging_score_is_f1_and_english_only_has_no_no_en() -> None:
    s = summarize_task("panx", {"en": {"f1": 82.0, "precision": 80.0, "recall": 84.0}},
                       get_metric("seqeval_f1").headline)
    assert s.score == 82.0
    assert s.score_without_en is None and "panx.score_no_en" not in s.as_metrics()


def test_language_average_rejects_inconsistent_metrics() -> None:
    with pytest.raises(MetricInputError, match="'de' reports metrics"):
        language_average({"en": {"f1": 1.0}, "de": {"accuracy": 1.0}})
    with pytest.raises(MetricInputError, match="no languages"):
        language_average({"en": {"f1": 1.0}}, exclude={"en"})


def test_group_scores_only_for_complete_groups() -> None:
    scores = {"xquad": 65.0, "mlqa": 55.0, "tydiqa": 45.0, "pawsx": 80.0}
    assert group_scores(scores) == {"qa": 55.0}           # classification lacks xnli
    full = {"pawsx": 80.0, "xnli": 70.0, "udpos": 75.0, "panx": 60.0, "xquad": 65.0,
            "mlqa": 55.0, "tydiqa": 45.0, "bucc2018": 50.0, "tatoeba": 40.0}
    out = group_scores(full)
    assert out["classification"] == 75.0
    assert out["retrieval"] == 45.0
    assert out["all_task"] == pytest.approx(540.0 / 9)
