"""Tatoeba as XTREME scores it: English queries (en -> xx) are the headline, xx -> en beside it,
and the prediction files score against XTREME's own gold layout with XTREME's scoring rule."""
from __future__ import annotations

from pathlib import Path

import pytest

from xstilts.data.loading import load_parallel
from xstilts.evaluation.metrics.retrieval import tatoeba_accuracy


def xtreme_tatoeba_score(prediction_file: Path, label_file: Path) -> float:
    """google-research/xtreme evaluate.py for task tatoeba: ``read_label`` on both files (lines,
    stripped), the same number of lines, then ``accuracy`` (exact string match), in percent."""
    read_label = lambda f: [line.strip() for line in f.open()]  # noqa: E731 - evaluate.py's reader
    predictions, labels = read_label(prediction_file), read_label(label_file)
    assert len(predictions) == len(labels)
    return 100.0 * sum(int(p == g) for p, g in zip(predictions, labels)) / len(predictions)


def test_headline_is_en_to_xx_and_files_score_with_xtreme_evaluate(tmp_path, default_encoder_dir, encoder_2layer,
                                                                   xlmr_tokenizer):
    from xstilts.evaluation.retrieval_eval import _embed
    from xstilts.evaluation.runner import evaluate_model

    report = evaluate_model("default", "tatoeba", langs=["de", "sw"], max_examples=60, bf16=False,
                            out_dir=tmp_path, log_to_mlflow=False, progress=False, num_hidden_layers=2)
    for row in report.languages:
        corpus = load_parallel("tatoeba", row.lang, "test")
        kw = dict(layer=-1, bf16=False, batch_size=64, max_length=128, progress=None)
        xx = _embed(encoder_2layer, xlmr_tokenizer, corpus.source[:60], **kw)
        en = _embed(encoder_2layer, xlmr_tokenizer, corpus.target[:60], **kw)
        both = tatoeba_accuracy(xx, en)
        assert row.scores == {"accuracy": pytest.approx(both.en_to_xx), "accuracy_xx_to_en": pytest.approx(both.xx_to_en)}
        pred = tmp_path / "predictions" / "tatoeba" / f"test-{row.lang}.tsv"
        gold = tmp_path / "labels" / "tatoeba" / f"test-{row.lang}.tsv"
        assert gold.read_text() == "".join(f"{i}\n" for i in range(60))  # XTREME's label file layout
        assert [int(x) for x in pred.read_text().split()] == both.en_to_xx_predictions.tolist()
        assert xtreme_tatoeba_score(pred, gold) == pytest.approx(row.scores["accuracy"])
    assert report.summary["tatoeba.accuracy.avg"] == pytest.approx(
        sum(r.scores["accuracy"] for r in report.languages) / 2)
