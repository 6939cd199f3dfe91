"""Prediction files in XTREME's layout: paths, formats, round trips, atomic writes."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from xstilts.errors import DataFormatError, XstiltsError
from xstilts.evaluation import predictions as P
from xstilts.evaluation.metrics.tagging import seqeval_f1


def test_tag_file_layout_and_round_trip(tmp_path: Path) -> None:
    tags = [["O", "B-PER", "I-PER"], ["B-LOC"], []]
    path = P.write_tag_predictions(tmp_path / "predictions", "panx", "test", "de", tags)
    assert path == tmp_path / "predictions" / "panx" / "test-de.tsv"
    # one tag per line, a blank line closing each sentence (also the empty one)
    assert path.read_text(encoding="utf-8") == "O\nB-PER\nI-PER\n\nB-LOC\n\n\n"
    assert P.read_tag_predictions(path) == tags
    assert seqeval_f1(tags[:2], P.read_tag_predictions(path)[:2])["f1"] == 100.0


def test_label_answer_and_pair_files(tmp_path: Path) -> None:
    p = P.write_label_predictions(tmp_path, "xnli", "dev", "sw", ["entailment", "neutral"])
    assert p.name == "dev-sw.tsv" and P.read_label_predictions(p) == ["entailment", "neutral"]
    q = P.write_answer_predictions(tmp_path, "mlqa", "test", "zh", {"36e2d9": "《毁灭战士3》"})
    assert q.name == "test-zh.json"
    assert json.loads(q.read_text(encoding="utf-8")) == {"36e2d9": "《毁灭战士3》"}
    assert "《" in q.read_text(encoding="utf-8")          # kept readable, not \u-escaped
    r = P.write_pair_predictions(tmp_path, "bucc2018", "dev", "zh",
                                 {("zh-000000057", "en-000008530"), ("zh-000000137", "en-000003060")})
    assert r.read_text(encoding="utf-8").splitlines() == [
        "zh-000000057\ten-000008530", "zh-000000137\ten-000003060"]
    assert P.read_pair_predictions(r) == {("zh-000000057", "en-000008530"),
                                          ("zh-000000137", "en-000003060")}


def test_write_replaces_atomically_and_leaves_no_temp(tmp_path: Path) -> None:
    P.write_label_predictions(tmp_path, "pawsx", "test", "ja", ["0", "1"])
    P.write_label_predictions(tmp_path, "pawsx", "test", "ja", ["1"])
    assert sorted(x.name for x in (tmp_path / "pawsx").iterdir()) == ["test-ja.tsv"]
    assert P.read_label_predictions(tmp_path / "pawsx" / "test-ja.tsv") == ["1"]


def test_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = P.write_label_predictions(tmp_path, "pawsx", "test", "ja", ["0"])

    def boom(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(P.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        P.write_label_predictions(tmp_path, "pawsx", "test", "ja", ["1"])
    assert path.read_text(encoding="utf-8") == "0\n"
    assert [x.name for x in path.parent.iterdir()] == ["test-ja.tsv"]


def test_bad_names_and_values_are_refused(tmp_path: Path) -> None:
    with pytest.raises(XstiltsError, match="invalid split '../x'"):
        P.prediction_path(tmp_path, "panx", "../x", "de", "tsv")
    with pytest.raises(XstiltsError, match="example 1"):
        P.write_label_predictions(tmp_path, "xnli", "test", "de", ["a", "b\tc"])
    with pytest.raises(XstiltsError, match="sentence 0, word 1"):
        P.write_tag_predictions(tmp_path, "panx", "test", "de", [["O", ""]])


def test_reading_malformed_files_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "test-en.json"
    bad.write_text('{"q1": 3}', encoding="utf-8")
    with pytest.raises(DataFormatError, match="test-en.json"):
        P.read_answer_predictions(bad)
    bad.write_text('{"q1": ', encoding="utf-8")
    with pytest.raises(DataFormatError, match="test-en.json, line 1"):
        P.read_answer_predictions(bad)
    pairs = tmp_path / "p.tsv"
    pairs.write_text("a\tb\nc\n", encoding="utf-8")
    with pytest.raises(DataFormatError, match="p.tsv, line 2"):
        P.read_pair_predictions(pairs)
