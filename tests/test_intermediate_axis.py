"""The intermediate axis: config forms, the crossed plan, leakage, the table and the comparison report."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

from xstilts.analysis.intermediates import best_intermediates, compare_intermediates
from xstilts.analysis.report import write_report
from xstilts.analysis.resource_groups import resource_group
from xstilts.analysis.schema import RESULT_COLUMNS, select_metric, validate_results
from xstilts.config import TrainingArgs
from xstilts.data.leakage import LeakageError
from xstilts.encoders.describe import describe_encoder
from xstilts.errors import XstiltsError
from xstilts.grid.config import GridConfig, IntermediateGrid, TargetGrid
from xstilts.grid.plan import check_grid_leakage, intermediate_config, plan_grid
from xstilts.paths import repo_root

TINY = dict(batch_size=8, epochs=1, max_length=48, eval_batch_size=32)

# Plans of the shipped single-intermediate grids before the intermediate axis existed
# (main at 21e2200): sha256 of the sorted job ids (which hold every training config's
# run_key) and of the cells. A deliberate change of what trains (TRAINING_VERSION, a
# TrainingArgs default) changes them; then regenerate them with that commit's code.
BEFORE_AXIS = {
    "default.yaml": ("4e42ddce4de4", 31, "4f2a562941ea2fe5", "8201575be91cc326"),
    "larger.yaml": ("907081d9bc85", 81, "e864596c66f3295a", "6e4059eb4e3f669c"),
    "tuned.yaml": ("93b445850ab4", 32, "93c72a09c104f11c", "d73dc2f2c97dbf21"),
}


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj).encode()).hexdigest()[:16]


def _plan_digest(cfg: GridConfig) -> tuple:
    plan = plan_grid(cfg)
    cells = sorted((c.eval_job, c.task, c.condition, c.seed, c.intermediate_spec, c.selection) for c in plan.cells)
    return cfg.grid_hash(), len(plan.jobs), _digest(sorted(plan.jobs)), _digest(cells)


@pytest.mark.parametrize("name", sorted(BEFORE_AXIS))
def test_single_intermediate_grids_keep_their_run_keys(name):
    cfg = GridConfig.from_file(repo_root() / "configs" / name)
    if name == "default.yaml":  # digested with its 3 seeds of 21e2200; it has 5 since (issue 16)
        cfg.seeds = cfg.seeds[:3]
    assert _plan_digest(cfg) == BEFORE_AXIS[name]
    # the mapping is a one-element list: the same plan, hash and run_keys
    as_list = GridConfig(**{**cfg.to_dict(), "intermediate": [cfg.to_dict()["intermediate"]]}).validate()
    assert _plan_digest(as_list) == BEFORE_AXIS[name]


def axis_grid(out, seeds=(0, 1), targets=None) -> GridConfig:
    """Two intermediate tasks: XNLI dev and PAWS-X dev, both parallel and vendored."""
    return GridConfig(
        name="axis", num_hidden_layers=2, seeds=list(seeds), conditions=["none", "en", "multi"],
        intermediate=[IntermediateGrid(size=16, languages=["en", "sw", "hi"], training=TrainingArgs(**TINY)),
                      IntermediateGrid(task="pawsx", size=16, languages=["en", "de", "ja"],
                                       training=TrainingArgs(**TINY))],
        targets=targets or [TargetGrid(task="panx", max_train_examples=16, max_dev_examples=8,
                                       eval_langs=["en", "de", "sw", "yo"], max_eval_examples=8,
                                       training=TrainingArgs(**TINY))],
        output_dir=str(out), experiment="axis-test").validate()


def test_plan_crosses_intermediate_condition_seed_target(tmp_path):
    targets = [TargetGrid(task="panx", eval_langs=["en", "sw"]), TargetGrid(task="tatoeba", eval_langs=["sw"])]
    plan = plan_grid(axis_grid(tmp_path, seeds=(0, 1, 2), targets=targets))
    inter = [j for j in plan.jobs.values() if getattr(j, "config", None) and j.config.phase == "intermediate"]
    target = [j for j in plan.jobs.values() if getattr(j, "config", None) and j.config.phase == "target"]
    assert len(inter) == 2 * 2 * 3  # intermediate x (en, multi) x seed, each once
    assert {j.config.tasks[0].task for j in inter} == {"xnli", "pawsx"}
    # every target cell of an intermediate model starts from it; none once per seed
    assert len(target) == 3 * (1 + 2 * 2)
    starts = [j.needs[0] for j in target if j.needs]
    assert sorted(set(starts)) == sorted(j.id for j in inter) and len(starts) == 12
    cells = pd.DataFrame([c.__dict__ for c in plan.cells])
    assert len(cells) == 2 * 3 * (1 + 2 * 2)
    assert set(cells.loc[cells.condition == "none", "intermediate"]) == {"none"}
    assert set(cells["intermediate"]) == {"none", "xnli", "pawsx"}


def test_mixture_is_one_model_of_several_tasks(tmp_path):
    mix = IntermediateGrid(name="nli+qa", size=8, languages=["en", "sw"],
                           mixed_with=[{"task": "tydiqa", "split": "train", "size": 8, "source_kind": "native",
                                        "languages": ["en"]}])
    cfg = GridConfig(conditions=["none", "en", "multi"], intermediate=mix,
                     targets=[TargetGrid(task="panx", eval_langs=["sw"])], output_dir=str(tmp_path)).validate()
    multi = intermediate_config(cfg, "multi", 0)
    assert [t.task for t in multi.tasks] == ["xnli", "tydiqa"]
    assert [s["lang"] for s in multi.tasks[0].spec["languages"]] == ["en", "sw"]
    assert [s["lang"] for s in multi.tasks[1].spec["languages"]] == ["en"]  # English-only task stays English
    assert {c.intermediate for c in plan_grid(cfg).cells} == {"none", "nli+qa"}


@pytest.mark.parametrize("change, needle", [
    (lambda c: c.intermediate.append(IntermediateGrid()), "used twice"),
    (lambda c: c.intermediate.append(IntermediateGrid(task="sst2", name="sst")), "condition multi needs multilingual"),
    (lambda c: c.intermediate.append(IntermediateGrid(task="sst2", name="s", conditions=["en", "xx"])), "'xx'"),
    (lambda c: c.intermediate.append(IntermediateGrid(task="pawsx", name="p", languages=["sw"])), "language"),
])
def test_bad_intermediate_settings_name_the_problem(tmp_path, change, needle):
    cfg = axis_grid(tmp_path)
    change(cfg)
    with pytest.raises(XstiltsError, match=needle):
        cfg.validate()


def test_english_only_intermediate_takes_only_its_conditions(tmp_path):
    cfg = axis_grid(tmp_path)
    cfg.intermediate.append(IntermediateGrid(task="sst2", split="train", size=4, conditions=["none", "en"]))
    cells = plan_grid(cfg.validate()).cells
    assert {c.condition for c in cells if c.intermediate == "sst2"} == {"en"}


@pytest.mark.parametrize("inter, target", [
    (IntermediateGrid(task="pawsx", name="p", size=8, languages=["de", "ja"]), TargetGrid(task="pawsx", eval_split="dev",
                                                                                          eval_langs=["fr"])),
    (IntermediateGrid(task="mlqa", name="m", size=8, source_kind="native", languages=["de", "hi"]),
     TargetGrid(task="mlqa", eval_split="dev", eval_langs=["en", "zh"])),
    (IntermediateGrid(task="tydiqa", name="t", split="dev", size=8, source_kind="native", languages=["sw"]),
     TargetGrid(task="tydiqa", eval_split="dev", eval_langs=["sw"])),
])
def test_leakage_refuses_evaluating_on_an_intermediate_tasks_training_items(tmp_path, inter, target):
    cfg = axis_grid(tmp_path)
    cfg.intermediate.append(inter)
    cfg.targets.append(target)
    with pytest.raises(LeakageError, match=f"{target.task}/dev"):
        check_grid_leakage(cfg.validate())


def test_tydiqa_train_and_mlqa_dev_are_multilingual_intermediate_sources(tmp_path):
    cfg = axis_grid(tmp_path)
    cfg.intermediate.append(IntermediateGrid(task="tydiqa", split="train", size=12, source_kind="native",
                                             languages=["en", "ko", "sw"]))
    cfg.targets.append(TargetGrid(task="tydiqa", eval_split="dev", eval_langs=["sw"]))
    check_grid_leakage(cfg.validate())  # train items, dev evaluation: no leak
    from xstilts.data.intermediate_spec import build_examples, spec_from_dict

    spec = spec_from_dict(intermediate_config(cfg, "multi", 0, cfg.intermediates[2]).tasks[0].spec)
    langs = [ex.lang for ex in build_examples(spec)]
    assert sorted(set(langs)) == ["en", "ko", "sw"] and len(langs) == 12
    # MLQA dev: shared items, unequal sizes per language, so sampled per language like native data
    mlqa = IntermediateGrid(task="mlqa", name="m", size=9, source_kind="native", languages=["en", "de", "hi"])
    cfg.intermediate.append(mlqa)
    spec = spec_from_dict(intermediate_config(cfg.validate(), "multi", 0, mlqa).tasks[0].spec)
    assert sorted(ex.lang for ex in build_examples(spec)) == ["de"] * 3 + ["en"] * 3 + ["hi"] * 3


# -- the table and the report ---------------------------------------------------------------

LANGS = ["en", "de", "hi", "sw", "yo", "te"]


def _axis_results(seed: int = 0) -> pd.DataFrame:
    """Synthetic: intermediate `good` helps low-resource languages by 4 points, `flat` by nothing."""
    rng = np.random.default_rng(seed)
    rows = []
    for lang in LANGS:
        level, low = rng.uniform(40, 70), resource_group(lang) == "low"
        cells = [("none", "none", 0.0, 0.0)] + [(i, c, gain if low else 0.0, dev)
                                                for i, gain, dev in [("good", 4.0, 70.0), ("flat", 0.0, 60.0)]
                                                for c in ("en", "multi")]
        for inter, cond, effect, dev in cells:
            for s in range(3):
                rows.append(dict(task="panx", language=lang, resource_group=resource_group(lang), condition=cond,
                                 intermediate=inter, seed=s, intermediate_spec=f"{inter}:{cond}",
                                 selection_policy="english_dev", metric="f1",
                                 value=level + effect + rng.normal(0, 0.5), model_version=f"m/{inter}{cond}{s}",
                                 run_id=f"r-{inter}-{cond}-{s}", selection_score=dev + s))
    return pd.DataFrame(rows, columns=list(RESULT_COLUMNS))


def test_schema_keys_rows_by_intermediate_and_fills_old_tables():
    table = _axis_results()
    assert len(validate_results(table)) == len(table)
    old = table[table.intermediate.isin(["none", "good"])].drop(columns=["intermediate", "selection_score"])
    filled = validate_results(old)
    assert list(filled.columns) == list(RESULT_COLUMNS)
    assert set(filled.loc[filled.condition != "none", "intermediate"]) == {"unnamed"}
    with pytest.raises(XstiltsError, match="column 'intermediate'"):
        validate_results(table.assign(intermediate="good"))
    with pytest.raises(XstiltsError, match="repeats an earlier row's key"):
        validate_results(pd.concat([table, table.iloc[:1]]))


def test_comparison_numbers_and_best_intermediate():
    table = select_metric(validate_results(_axis_results()))
    comp = compare_intermediates(table, n_resamples=200)
    good = comp[(comp.intermediate == "good") & (comp.condition == "multi")].iloc[0]
    target = table[(table.language != "en")]
    direct = (target[(target.intermediate == "good") & (target.condition == "multi")].groupby("language")["value"].mean()
              - target[target.condition == "none"].groupby("language")["value"].mean())
    assert good["gain_all"] == pytest.approx(direct.mean())
    assert good["gain_low"] == pytest.approx(direct[["sw", "yo", "te"]].mean())
    assert 3.0 < good["gain_low"] < 5.0 and good["gain_low_ci_low"] > 0
    assert good["dev_score"] == pytest.approx(71.0)
    best = best_intermediates(comp).set_index("condition")
    assert best.loc["multi", "best"] == "good" and best.loc["en", "best"] == "good"


def test_report_compares_intermediates_and_names_the_encoder(tmp_path):
    md = write_report(_axis_results(), tmp_path / "rep", title="Axis", n_resamples=200, n_bootstrap=100,
                      encoder=describe_encoder("default")).read_text()
    first = md.split("\n\n")[1]
    assert "With intermediate `good`:" in first and "With intermediate `flat`:" in first
    assert "under `multi` it is `good`" in first
    assert "multilingual-e5-small" in first and "contrastive" in first
    assert "## Intermediate tasks compared" in md and "gain over none: low" in md
    assert "good: panx (f1)" in md and "flat: panx (f1)" in md
    assert (tmp_path / "rep" / "figures" / "good_panx_seeds.png").is_file()


@pytest.mark.parametrize("ref, needle, comparable", [
    ("default", "multilingual-e5-small", False),
    ("intfloat/multilingual-e5-small", "multilingual-e5-small", False),
    ("xlm-roberta-large", "XLM-R large", True),
])
def test_encoder_sentence_says_when_retrieval_is_not_comparable(ref, needle, comparable):
    info = describe_encoder(ref)
    text = info.sentence(has_retrieval=True)
    assert needle in text and ("not comparable with Phang" in text) != comparable
    assert "not comparable" not in info.sentence(has_retrieval=False)


@pytest.mark.slow
def test_two_intermediate_grid_runs_offline_and_its_report_compares_them(tracking, default_encoder_dir):
    from xstilts.grid.runner import run_grid

    result = run_grid(axis_grid(tracking / "out"), progress=False)
    table = pd.read_parquet(result.table_parquet)
    assert set(table["intermediate"]) == {"none", "xnli", "pawsx"}
    # 2 intermediates x (en, multi) x 2 seeds intermediate models, and a PAN-X model on each and on none
    assert result.trained == 8 + 2 * 5
    assert table["selection_score"].notna().all()  # every PAN-X model was selected on English dev
    md = result.report.read_text()
    first = md.split("\n\n")[1]
    assert "With intermediate `xnli`:" in first and "With intermediate `pawsx`:" in first
    assert "for panx under `multi` it is `" in first and "multilingual-e5-small" in first
    assert "## Intermediate tasks compared" in md and "### panx (f1)" in md


def test_size_null_is_the_full_english_split_and_multi_matches_it():
    from xstilts.data.intermediate_spec import build_examples, english_spec, matched_multilingual
    from xstilts.data.loading import load_examples

    english = english_spec("tydiqa", None, split="train", kind="native")
    n = len(load_examples("tydiqa", "en", "train"))
    assert len(build_examples(english)) == n
    multi = matched_multilingual(english, {"en": 1.0, "ko": 1.0, "sw": 1.0}, kind="native")
    langs = [ex.lang for ex in build_examples(multi)]
    assert len(langs) == n and set(langs) == {"en", "ko", "sw"}
