"""Question ids from SQuAD-format files are unique guids, on the real TyDiQA-GoldP files."""
from __future__ import annotations

import gzip
import json
from collections import Counter

import numpy as np
import pytest

from xstilts.data.readers import read_squad_json
from xstilts.errors import DataFormatError
from xstilts.paths import data_root

TRAIN_EN = "tydiqa/tydiqa-goldp-v1.1-train/tydiqa.goldp.en.train.json.gz"


def _raw_ids(path) -> list[str]:
    data = json.loads(gzip.open(path, "rt", encoding="utf-8").read())
    return [str(qa["id"]) for a in data["data"] for p in a["paragraphs"] for qa in p["qas"]]


def test_tydiqa_en_train_ids_are_made_unique_deterministically() -> None:
    path = data_root() / TRAIN_EN
    raw = _raw_ids(path)
    counts = Counter(raw)
    assert len(raw) == 3696 and counts["0"] > 1600  # the file reuses ids
    examples = read_squad_json(path, "en")
    guids = [ex.guid for ex in examples]
    assert len(set(guids)) == len(guids) == len(raw)
    for i, (rid, guid) in enumerate(zip(raw, guids)):
        assert guid == (f"{rid}#{i}" if counts[rid] > 1 else rid)
    assert guids == [ex.guid for ex in read_squad_json(path, "en")]  # same on every read


def test_unique_ids_are_kept_as_they_are() -> None:
    path = data_root() / "tydiqa/tydiqa-goldp-v1.1-dev/tydiqa.goldp.sw.dev.json.gz"
    assert [ex.guid for ex in read_squad_json(path, "sw")] == _raw_ids(path)


def _real_rows_file(tmp_path, ids: list[str]):
    """The first paragraph of the real English train file with its questions' ids replaced."""
    data = json.loads(gzip.open(data_root() / TRAIN_EN, "rt", encoding="utf-8").read())
    para = data["data"][0]["paragraphs"][0]
    qa = para["qas"][0]
    para = {"context": para["context"], "qas": [dict(qa, id=i) for i in ids]}
    path = tmp_path / "t.json"
    path.write_text(json.dumps({"data": [{"title": "t", "paragraphs": [para]}]}), encoding="utf-8")
    return path


def test_a_collision_left_after_suffixing_is_an_error(tmp_path) -> None:
    # "0", "0" become "0#0", "0#1", which the third question already uses.
    path = _real_rows_file(tmp_path, ["0", "0", "0#1"])
    with pytest.raises(DataFormatError, match="unique question ids.*'0#1'"):
        read_squad_json(path, "en")
    assert [e.guid for e in read_squad_json(_real_rows_file(tmp_path, ["0", "x", "0"]), "en")] == \
        ["0#0", "x", "0#2"]


def test_best_spans_refuses_duplicate_guids() -> None:
    import dataclasses

    from xstilts.data.featurize.span_qa import best_spans
    ex = read_squad_json(data_root() / TRAIN_EN, "en")[:2]
    dup = [ex[0], dataclasses.replace(ex[1], guid=ex[0].guid)]
    with pytest.raises(ValueError, match="occurs more than once"):
        best_spans(np.zeros((0, 4)), np.zeros((0, 4)), [], dup)
