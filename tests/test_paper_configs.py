"""The paper-scale configs (configs/paper-xlmr-*.yaml) run their code path offline.

Each config is loaded as shipped, planned in full, and then run with everything the
offline machine lacks swapped out: the Hub encoder for a tiny randomly initialised XLM-R
built here and saved to a directory (loaded through the same ``from_pretrained`` path as
a Hub id), the Hub data for a few real local rows (``source: local`` on a data directory
that adds the train files the vendored data lacks, cut from other real sets), one seed and
tiny sizes. The configs' own values (learning rates, selection, mixture, conditions,
which sets train and evaluate) stay. The two configs differ only in the encoder and a few
values, so each runs a different part of the design and together they cover every task
family: base the mixture of all nine intermediate tasks with tagging, classification and
Tatoeba targets; large XNLI-MT (en and multi) with the SQuAD-trained QA targets. TyDiQA
is only planned (its vendored dev files carry no gold answers, so neither its English dev
selection nor its evaluation runs offline), and so is BUCC (its gold pairs first appear
among thousands of sentences, too many for a CPU test). The offline run goes once with
``device: cpu`` and, where torch sees a GPU, once more with ``device: cuda`` (skipped
elsewhere): the same tiny grid trained and evaluated on the GPU, every training run
recording the device it used.
"""
from __future__ import annotations

import gzip
import json
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch

from xstilts.config import TrainingArgs
from xstilts.data.loading import local_files
from xstilts.grid.config import GridConfig
from xstilts.grid.plan import check_grid_leakage, plan_grid
from xstilts.paths import repo_root
from xstilts.tasks import get_task

CONFIGS = {"base": "paper-xlmr-base.yaml", "large": "paper-xlmr-large.yaml"}
# (intermediate settings, targets) each config runs here; the plan covers all of them
RUN = {"base": (["multi-task"], ["udpos", "pawsx", "tatoeba"]),
       "large": (["xnli-mt"], ["xquad", "mlqa"])}


@pytest.fixture(scope="module")
def tiny_xlmr(tmp_path_factory, default_encoder_dir) -> Path:
    """A randomly initialised 2-layer XLM-R (hidden 32) with the real XLM-R tokenizer, saved as a model dir."""
    import torch
    from transformers import AutoTokenizer, XLMRobertaConfig, XLMRobertaModel

    out = tmp_path_factory.mktemp("tiny-xlmr")
    tok = AutoTokenizer.from_pretrained(default_encoder_dir)
    torch.manual_seed(0)
    config = XLMRobertaConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                              intermediate_size=64, max_position_embeddings=514, type_vocab_size=1,
                              pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id,
                              eos_token_id=tok.eos_token_id)
    XLMRobertaModel(config, add_pooling_layer=False).save_pretrained(out)
    tok.save_pretrained(out)
    return out


def _squad_json(questions: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": "tiny", "data": [{"title": "t", "paragraphs": questions}]}))


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    """data/ (linked) plus the train files that exist only on the Hub, cut from real local rows:
    SQuAD v1.1/v2.0 train and dev from English TyDiQA-GoldP train paragraphs, PAWS-X English
    train from PAWS-X English dev rows past those that select models."""
    root = tmp_path_factory.mktemp("tiny-data")
    src = repo_root() / "data"
    for entry in src.iterdir():
        if entry.name != "pawsx":
            (root / entry.name).symlink_to(entry)
    (root / "pawsx").mkdir()
    for entry in (src / "pawsx").iterdir():
        (root / "pawsx" / entry.name).symlink_to(entry)
    tydiqa = json.loads(gzip.open(src / "tydiqa/tydiqa-goldp-v1.1-train/tydiqa.goldp.en.train.json.gz").read())
    paragraphs = [p for a in tydiqa["data"] for p in a["paragraphs"]][:60]
    for name, part in [("squad/train-v1.1.json", paragraphs[:40]), ("squad/dev-v1.1.json", paragraphs[40:]),
                       ("squad_v2/train-v2.0.json", paragraphs[:40])]:
        _squad_json(part, root / name)
    rows = gzip.open(src / "pawsx/dev-en.tsv.gz", "rt", encoding="utf-8").read().splitlines()[1000:1040]
    (root / "pawsx/train-en.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


def _local_eval(task_name: str, split: str | None, langs: list[str], root: Path) -> tuple[str, list[str]]:
    """The config's evaluation split if it has local rows, else one that has; two local languages."""
    task = get_task(task_name)
    for s in [split] + [s for s in task.splits if s != split]:
        have = [lang for lang in langs if s and local_files(task, lang, s, root=root)]
        if have:
            low = [lang for lang in have if lang in ("sw", "yo", "mr", "te", "jv", "my", "ml")]
            return s, sorted(set(have[:1] + low[:1]))
    raise AssertionError(f"{task_name}: no local evaluation data")


TINY_TRAINING = dict(epochs=1, batch_size=4, max_length=64, doc_stride=32, eval_batch_size=16, max_steps=0)


def tiny_variant(cfg: GridConfig, model_dir: Path, root: Path, out: Path, inters, targets,
                 device: str = "auto") -> GridConfig:
    """``cfg`` with the tiny encoder, one seed, tiny local data and sizes, on ``device``; its other values kept."""
    def tiny_data_spec(d):
        return replace(d, size=min(d.size or 2, 2), source="local", multi_source="local" if d.multi_source else None)

    keep = [replace(i, **{f: getattr(tiny_data_spec(i), f) for f in ("size", "source", "multi_source")},
                    mixed_with=[tiny_data_spec(d) for d in i.mixed_with],
                    training=replace(i.training, **TINY_TRAINING))
            for i in cfg.intermediates if i.label in inters]
    small = []
    for t in cfg.targets:
        if t.task in targets:
            split, langs = _local_eval(t.task, t.eval_split, t.eval_langs or [], root)
            small.append(replace(t, eval_split=split, eval_langs=langs, max_train_examples=8, max_dev_examples=4,
                                 max_eval_examples=4, source="local" if t.source else None,
                                 training=replace(t.training, **TINY_TRAINING)))
    return replace(cfg, base_model=str(model_dir), seeds=cfg.seeds[:1], intermediate=keep, targets=small,
                   output_dir=str(out), experiment=f"paper-{cfg.name}", device=device).validate()


@pytest.mark.parametrize("size", sorted(CONFIGS))
def test_paper_config_plans_in_full(size):
    cfg = GridConfig.from_file(repo_root() / "configs" / CONFIGS[size])
    assert cfg.base_model == f"xlm-roberta-{size}" and len(cfg.seeds) >= 3
    assert {i.label for i in cfg.intermediates} >= {"anli", "mnli", "qqp", "squad", "squad_v2", "hellaswag",
                                                    "cosmosqa", "commonsenseqa", "sst2", "multi-task", "xnli-mt"}
    assert {t.task for t in cfg.targets} == {"panx", "udpos", "xnli", "pawsx", "xquad", "mlqa", "tydiqa",
                                             "bucc2018", "tatoeba"}
    assert all(d.size is None for i in cfg.intermediates for d in i.data)  # full training sets
    check_grid_leakage(cfg)
    plan = plan_grid(cfg)
    cells = pd.DataFrame([c.__dict__ for c in plan.cells])
    per_seed = 9 * (1 + 9 + 2 + 1)  # targets x (none + nine English + xnli-mt en/multi + mixture)
    assert len(cells) == len(cfg.seeds) * per_seed


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                 reason="torch sees no CUDA GPU here"))]


@pytest.mark.slow
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("size", sorted(CONFIGS))
def test_paper_config_runs_offline_on_a_tiny_random_xlmr(size, device, tracking, tiny_xlmr, tiny_data, monkeypatch):
    from mlflow import MlflowClient

    from xstilts.grid.runner import run_grid

    monkeypatch.setenv("XSTILTS_DATA_DIR", str(tiny_data))
    cfg = GridConfig.from_file(repo_root() / "configs" / CONFIGS[size])
    small = tiny_variant(cfg, tiny_xlmr, tiny_data, tracking / "out", *RUN[size], device=device)
    result = run_grid(small, progress=False)
    client = MlflowClient()
    experiment = client.get_experiment_by_name(small.experiment)
    runs = client.search_runs([experiment.experiment_id])
    trained = [r for r in runs if r.data.tags.get("phase") in ("intermediate", "target")]
    evaluated = [r for r in runs if r.data.tags.get("phase") == "evaluation"]
    assert len(trained) == result.trained and evaluated
    assert {r.data.params["device"].split(":")[0] for r in trained} == {device}  # where each trained
    assert {r.data.params["eval.device"].split(":")[0] for r in evaluated} == {device}
    table = pd.read_parquet(result.table_parquet)
    assert set(table["task"]) == set(RUN[size][1])
    assert set(table["intermediate"]) == {"none", *RUN[size][0]}
    for inter in small.intermediates:  # the mixture of all nine tasks (en), XNLI-MT (en and multi)
        assert set(table.loc[table.intermediate == inter.label, "condition"]) == set(small.conditions_of(inter)) - {"none"}
    assert table["value"].notna().all()
    retrieval = table["task"].map(lambda t: not get_task(t).family.needs_head)
    assert table.loc[retrieval, "selection_score"].isna().all()  # no target training, no English dev score
    assert table.loc[~retrieval & (table.condition != "none"), "selection_score"].notna().all()
    assert result.trained == sum(1 for j in plan_grid(small).jobs.values() if hasattr(j, "config"))
