"""Translate-train sets from the Hub as the multilingual source of an English task, offline.

``multi_source: hub`` (as in the paper configs' XNLI-MT setting) reads each language's train
split through ``datasets.load_dataset("facebook/xnli", LANG, split="train")``. Offline, the same
call is answered by a local directory laid out like that Hub repository (one parquet config per
language, the Hub's field names and ``ClassLabel``), which ``datasets`` loads by the same path;
its rows are the real XNLI-MT 1.0 rows vendored under ``data/hf_dummy_samples`` (CC BY-NC 4.0).
Nothing in xstilts is patched: the test runs the loader, the field mapping and the size-matched
sampling a Hub run uses.
"""
from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

import pytest

from xstilts.data.intermediate_spec import build_examples
from xstilts.data.loading import load_examples
from xstilts.grid.config import GridConfig
from xstilts.grid.plan import intermediate_specs
from xstilts.paths import repo_root
from xstilts.tasks.xnli import NLI_LABELS, XNLI_LABEL_MAP

LANGS = ("en", "hi", "sw")
MT = repo_root() / "data" / "hf_dummy_samples" / "xnli" / "XNLI-MT-1.0" / "multinli"


def _mt_rows(lang: str) -> list[dict]:
    with open(MT / f"multinli.train.{lang}.tsv", encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))


def _write_hub_repo(root: Path) -> None:
    """``facebook/xnli`` as the Hub stores it: README configs, ``LANG/train-*.parquet``."""
    import datasets

    features = datasets.Features({"premise": datasets.Value("string"), "hypothesis": datasets.Value("string"),
                                  "label": datasets.ClassLabel(names=list(NLI_LABELS))})
    repo, configs = root / "facebook" / "xnli", []
    for lang in LANGS:
        rows = _mt_rows(lang)
        labels = [NLI_LABELS.index(XNLI_LABEL_MAP.get(r["label"], r["label"])) for r in rows]
        ds = datasets.Dataset.from_dict({"premise": [r["premise"] for r in rows],
                                         "hypothesis": [r["hypo"] for r in rows], "label": labels}, features=features)
        (repo / lang).mkdir(parents=True)
        ds.to_parquet(repo / lang / "train-00000-of-00001.parquet")
        configs.append(f"- config_name: {lang}\n  data_files:\n  - split: train\n    path: {lang}/train-*\n")
    (repo / "README.md").write_text("---\nconfigs:\n" + "".join(configs) + "---\n", encoding="utf-8")


@pytest.fixture()
def hub_xnli(tmp_path, monkeypatch) -> Path:
    import datasets

    _write_hub_repo(tmp_path / "hub")
    monkeypatch.chdir(tmp_path / "hub")  # "facebook/xnli" now names the local repository
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets-cache")
    return tmp_path / "hub"


def _triples(examples) -> list[tuple]:
    return [(e.text_a, e.text_b, e.label, e.lang) for e in examples]


def test_the_hub_translate_train_maps_to_the_rows_of_the_original_files(hub_xnli):
    for lang in LANGS:
        hub = load_examples("xnli", lang, "train", source="hub")
        local = load_examples("xnli", lang, "train", source="local")  # XNLI-MT 1.0's own TSV
        assert len(hub) == 4 and _triples(hub) == _triples(local)
    assert {e.label for e in load_examples("xnli", "sw", "train", source="hub")} <= set(NLI_LABELS)


def test_the_paper_configs_xnli_mt_setting_draws_its_multi_data_from_the_hub(hub_xnli):
    cfg = GridConfig.from_file(repo_root() / "configs" / "paper-xlmr-base.yaml")
    [inter] = [i for i in cfg.intermediates if i.label == "xnli-mt"]
    assert (inter.source, inter.multi_source, inter.source_kind) == ("hub", "hub", "machine_translated_train")
    inter = replace(inter, size=4, languages=["hi", "sw"])  # the full setting: all of MultiNLI, 15 languages
    [english] = intermediate_specs(inter, "en", seed=0)
    [multi] = intermediate_specs(inter, "multi", seed=0)
    assert [s.source for s in multi.languages] == ["hub", "hub"]
    en_rows, multi_rows = build_examples(english), build_examples(multi)
    assert len(en_rows) == len(multi_rows) == 4  # size-matched to the English condition
    assert {e.lang for e in en_rows} == {"en"} and {e.lang for e in multi_rows} == {"hi", "sw"}
    pools = {lang: set(_triples(load_examples("xnli", lang, "train", source="local"))) for lang in ("hi", "sw")}
    assert all(t in pools[t[3]] for t in _triples(multi_rows))  # every drawn row is a real translate-train row
