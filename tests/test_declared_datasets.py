"""Datasets declared in a config: the two worked examples of docs/datasets.md end to end, every
role a declared dataset can play, and one clear error per bad declaration before any training."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from xstilts.config import MLMConfig, PhaseConfig, TaskData, TrainingArgs
from xstilts.data.leakage import LeakageError
from xstilts.data.loading import load_examples
from xstilts.errors import DataFormatError, XstiltsError
from xstilts.grid.config import GridConfig
from xstilts.tasks import get_task, task_names
from xstilts.tasks import declared
from xstilts.tasks.declared import DeclarationError, declare_datasets

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "docs" / "examples"
DATA = REPO / "data" / "declared"
TINY = dict(batch_size=8, max_steps=2, max_length=64, eval_batch_size=32)


@pytest.fixture(autouse=True)
def _fresh_registry():
    """Each test starts from the built-in tasks (declarations are process-wide)."""
    declared._forget_all()
    yield
    declared._forget_all()


def quick(cfg: GridConfig, out: Path) -> GridConfig:
    """A worked example's grid cut to one cell on the 2-layer encoder (CI time), data untouched."""
    cfg.conditions, cfg.seeds, cfg.num_hidden_layers, cfg.output_dir = ["none"], [0], 2, str(out)
    cfg.experiment = "declared-test"
    for t in cfg.targets:
        t.max_train_examples, t.max_dev_examples, t.training = 16, 8, TrainingArgs(**TINY)
    return cfg.validate()


@pytest.mark.slow
def test_worked_example_wolof_pos_conllu_runs_end_to_end(tracking, default_encoder_dir):
    from xstilts.grid.runner import run_grid

    cfg = GridConfig.from_file(EXAMPLES / "wolof-pos.yaml")
    task = get_task("wolof-pos")
    assert task.languages == ("wo",) and task.labels == get_task("udpos").labels and task.metric == "xtreme_pos_f1"
    result = run_grid(quick(cfg, tracking / "out"), progress=False)
    table = pd.read_parquet(result.table_parquet)
    assert set(table["task"]) == {"wolof-pos"} and set(table["language"]) == {"wo"}
    assert set(table["metric"]) == {"f1", "precision", "recall", "accuracy"}
    assert set(table["resource_group"]) == {"low"}  # Joshi et al.: wolof 2
    assert result.trained == 1 and result.evaluated == 1  # one cell: no report (it compares conditions)


@pytest.mark.slow
def test_worked_example_quechua_nli_extends_xnli_end_to_end(tracking, default_encoder_dir):
    from xstilts.grid.runner import run_grid

    cfg = GridConfig.from_file(EXAMPLES / "quechua-nli.yaml")
    task = get_task("xnli-quy")
    assert task.languages[-1] == "quy" and set(get_task("xnli").languages) < set(task.languages)
    quy = load_examples("xnli-quy", "quy", "dev")
    assert len(quy) == 12 and quy[0].guid == "quy-12451" and quy[0].label == "neutral"
    assert load_examples("xnli-quy", "sw", "dev", max_examples=3) == load_examples("xnli", "sw", "dev", max_examples=3)
    result = run_grid(quick(cfg, tracking / "out"), progress=False)
    table = pd.read_parquet(result.table_parquet)
    groups = dict(table[["language", "resource_group"]].drop_duplicates().itertuples(index=False))
    assert groups == {"en": "high", "quy": "low"}  # quy's class comes from the declaration
    # the model records its declared training task, so its config re-declares it elsewhere
    cell = PhaseConfig(phase="target", tasks=[TaskData(task="xnli-quy")])
    assert [d["name"] for d in cell.datasets] == ["xnli-quy"]


def test_declared_sets_train_as_intermediate_data_and_feed_masked_lm(default_encoder_dir):
    from xstilts.encoders.loading import load_tokenizer
    from xstilts.training.phase import _mlm_set, build_train_sets

    path = str(DATA / "americasnli" / "quy.dev.tsv")
    declare_datasets([
        {"name": "quy-nli", "family": "sentence_classification", "format": "tsv", "kind": "intermediate",
         "fields": {"text_a": "premise", "text_b": "hypothesis", "label": "label"}, "labels": "xnli",
         "languages": {"quy": {"train": path}}, "resource_classes": {"quy": 1}},
        {"name": "quy-text", "family": "sentence_classification", "format": "tsv", "fields": {"text_a": "hypothesis"},
         "languages": {"quy": {"train": path}}, "resource_classes": {"quy": 1}},
    ])
    tok = load_tokenizer("default")
    cfg = PhaseConfig(phase="intermediate", selection="last",
                      tasks=[TaskData(task="quy-nli", languages=["quy"], dev_split="train", dev_languages=["quy"])],
                      mlm=MLMConfig(task="quy-text", split="train", languages=["quy"], max_examples=12),
                      training=TrainingArgs(**TINY)).validate()
    sets = build_train_sets(cfg, tok)  # the NLI rows and, mixed in, the masked-LM text
    assert [len(s.units) for s in sets] == [12, 12]
    assert len(_mlm_set(cfg, tok).units) == 12  # unlabelled hypotheses as masked-LM text
    assert {d["name"] for d in cfg.datasets} == {"quy-nli", "quy-text"}
    assert all(len(f["sha256"]) == 64 for d in cfg.to_dict()["datasets"]
               for f in d["languages"]["quy"]["train"])  # recorded with the config, keyed by content


def test_extension_of_a_parallel_task_shares_its_leakage_identity():
    from xstilts.data.leakage import SplitUse, check_no_leakage

    cfg = GridConfig.from_file(EXAMPLES / "quechua-nli.yaml")
    assert get_task("xnli-quy").parallel and get_task("xnli-quy").data_of == "xnli"
    with pytest.raises(LeakageError, match="xnli-quy/dev.*xnli/dev"):
        check_no_leakage([SplitUse("xnli", "dev", ("en", "sw"), "intermediate_train"),
                          SplitUse("xnli-quy", "dev", ("quy",), "evaluation")])
    cfg.conditions = ["none", "en"]
    from xstilts.grid.runner import run_grid

    with pytest.raises(LeakageError, match="xnli-quy/dev"):
        run_grid(cfg.validate(), progress=False)


def test_an_ner_language_added_to_panx_in_conll_format():
    declare_datasets([{"name": "panx-qu", "extends": "panx", "format": "conll", "delimiter": "\t",
                       "languages": {"qu": {"dev": str(DATA / "wikiann-qu" / "dev-qu.tsv")}}}])
    qu = load_examples("panx-qu", "qu", "dev")
    assert len(qu) == 12 and qu[0].words[0] == "Chilu" and qu[0].tags[0] == "B-ORG"
    assert load_examples("panx-qu", "yo", "dev") == load_examples("panx", "yo", "dev")


def test_a_declared_hub_source_fails_clearly_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    declare_datasets([{"name": "hub-nli", "family": "sentence_classification", "labels": "xnli",
                       "hub": {"path": "americas_nli", "name": "{lang}", "splits": {"test": "test"}},
                       "languages": ["quy"], "resource_classes": {"quy": 1}}])
    with pytest.raises(XstiltsError, match=r"could not load americas_nli \(config quy\) split test.*without internet"):
        load_examples("hub-nli", "quy", "test")


def _wolof(**change):
    decl = {"name": "wo-pos", "family": "tagging", "format": "conllu", "labels": "udpos",
            "languages": {"wo": {"test": str(DATA / "wolof-wtb" / "wo_wtb-ud-test.conllu")}}}
    return {k: v for k, v in {**decl, **change}.items() if v is not None}


@pytest.mark.parametrize("decl, error, match", [
    (_wolof(family="ner"), DeclarationError,
     r"datasets\[1\] \(wo-pos\)\.family: unknown family 'ner'; declarable families: sentence_classification, "
     r"tagging, span_qa"),
    ({"name": "quy", "family": "sentence_classification", "format": "tsv", "labels": "xnli",
      "fields": {"text_a": "premise", "text_b": "hypothesis"},
      "languages": {"quy": {"dev": str(DATA / "americasnli" / "quy.dev.tsv")}}, "resource_classes": {"quy": 1}},
     DeclarationError, r"\(quy\)\.fields: missing field label: a sentence_classification dataset in tsv format "
                       r"needs text_a, label"),
    (_wolof(languages={"wo": {"test": "no/such/file.conllu"}}), DeclarationError,
     r"\(wo-pos\)\.languages\.wo\.test: file not found: .*no/such/file\.conllu"),
    (_wolof(labels=["NOUN", "VERB", "DET", "AUX", "PRON", "PUNCT"]), DataFormatError,
     r"wo_wtb-ud-test\.conllu, line 15: expected a label in \{NOUN, VERB, DET, AUX, PRON, PUNCT\}, got 'CCONJ'"),
    (_wolof(languages={"xyz": {"test": str(DATA / "wolof-wtb" / "wo_wtb-ud-test.conllu")}}), DeclarationError,
     r"language 'xyz' has no Joshi et al\. \(2020\) class.*resource_classes: \{xyz: N\}"),
    (_wolof(name="udpos"), DeclarationError, r"'udpos' is a built-in task"),
    (_wolof(fields={"tag": "UPOS", "lemma": 2}), DeclarationError, r"unknown field\(s\) lemma for tagging/conllu"),
    (_wolof(format="squad"), DeclarationError, r"format: 'squad' is not a tagging format; valid: conll, conllu, jsonl"),
])
def test_a_bad_declaration_is_one_clear_error_and_registers_nothing(decl, error, match):
    before = set(task_names())
    with pytest.raises(error, match=match):
        declare_datasets([_wolof(name="fine-pos"), decl], source="datasets")
    assert set(task_names()) == before  # the valid declaration before it was not registered either


def test_a_bad_declaration_stops_a_grid_config_before_anything_trains(tmp_path):
    grid = yaml.safe_load((EXAMPLES / "wolof-pos.yaml").read_text())
    grid["datasets"][0]["languages"]["wo"]["test"] = str(tmp_path / "missing.conllu")
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(grid))
    with pytest.raises(DeclarationError, match=r"grid\.yaml: datasets\[0\] \(wolof-pos\)\.languages\.wo\.test: "
                                               r"file not found"):
        GridConfig.from_file(path)
    assert "wolof-pos" not in task_names()


def test_redeclaring_is_a_no_op_and_a_changed_file_is_refused(tmp_path):
    src = DATA / "wolof-wtb" / "wo_wtb-ud-test.conllu"
    copy = tmp_path / "wo.conllu"
    copy.write_bytes(src.read_bytes())
    [recorded] = declare_datasets([_wolof(languages={"wo": {"test": str(copy)}})])
    assert declare_datasets([recorded]) == [recorded]  # a config's recorded form, e.g. from config.yaml
    with pytest.raises(DeclarationError, match="a different dataset 'wo-pos' is already declared"):
        declare_datasets([_wolof(labels=list(get_task("udpos").labels) + ["EXTRA"],
                                 languages={"wo": {"test": str(copy)}})])
    declared._forget_all()
    copy.write_text(src.read_text().replace("Jimbulang", "Jimbulaŋ", 1))
    with pytest.raises(DeclarationError, match=r"changed since the config recorded it"):
        declare_datasets([recorded])
