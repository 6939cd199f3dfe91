"""Optuna tuning at small scale: validation, pruning, MLflow structure, reuse, shared and
killed workers, and a grid that trains with the study's best values.

Trials are the real target phase (the encoder cut to 2 layers, real PAN-X English rows),
scored on a few English dev rows; every request error is raised before anything trains.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import mlflow
import optuna
import pytest
import yaml
from click.testing import CliRunner
from optuna.trial import TrialState

from xstilts.cli import main
from xstilts.config import PhaseConfig, TaskData, TrainingArgs
from xstilts.data.leakage import LeakageError
from xstilts.errors import XstiltsError
from xstilts.grid.config import GridConfig, IntermediateGrid, TargetGrid
from xstilts.tracking.store import RunStore
from xstilts.tuning.config import TuningConfig
from xstilts.tuning.space import parse_space
from xstilts.tuning.study import open_storage

SRC = Path(__file__).resolve().parents[1] / "src"
TINY = dict(batch_size=8, epochs=2, max_length=48, eval_batch_size=32, eval_every=1, threads=1)
LR = {"learning_rate": {"kind": "float", "low": 1e-5, "high": 3e-3, "log": True}}


def base_config(**training) -> PhaseConfig:
    return PhaseConfig(phase="target", condition="none", seed=0, num_hidden_layers=2, experiment="tune-test",
                       tasks=[TaskData(task="panx", languages=["en"], max_examples=32, max_dev_examples=16)],
                       training=TrainingArgs(**(TINY | training)))


# -- validation ------------------------------------------------------------------------------

@pytest.mark.parametrize("space, field", [
    ({"learnig_rate": {"low": 1e-5, "high": 1e-4}}, "tuning.space.learnig_rate: unknown parameter"),
    ({"learning_rate": {"low": 1e-4, "high": 1e-5}}, "tuning.space.learning_rate: inverted range"),
    ({"warmup_ratio": {"low": 0.1, "high": 0.1}}, "tuning.space.warmup_ratio: empty range"),
    ({"learning_rate": {"low": 0.0, "high": 1e-3, "log": True}}, "tuning.space.learning_rate: a log range needs"),
    ({"batch_size": {"kind": "categorical", "choices": []}}, "tuning.space.batch_size.choices"),
    ({"epochs": {"kind": "integer", "low": 1, "high": 3}}, "tuning.space.epochs.kind"),
    ({"epochs": {"low": 1, "hi": 3}}, "tuning.space.epochs: unknown field"),
    ({}, "tuning.space: expected a non-empty mapping"),
])
def test_each_bad_search_space_gives_one_error_naming_the_field(space, field):
    with pytest.raises(XstiltsError) as err:
        TuningConfig(enabled=True, space=space).validate()
    assert str(err.value).startswith(field) and "\n" not in str(err.value)


@pytest.mark.parametrize("change, field", [
    ({"pruner": "asha"}, "tuning.pruner"), ({"scope": "per_seed"}, "tuning.scope"),
    ({"n_trials": 0}, "tuning.n_trials"), ({"timeout": -1}, "tuning.timeout"),
    ({"grace_period": 0}, "tuning.grace_period"),
])
def test_bad_tuning_fields_are_refused(change, field):
    with pytest.raises(XstiltsError, match=field):
        TuningConfig(**change).validate()


def test_spaces_by_task_then_family_then_default():
    tagging = {"learning_rate": {"low": 5e-5, "high": 5e-4, "log": True}}
    panx_only = {"epochs": {"kind": "int", "low": 2, "high": 6}}
    tuning = TuningConfig(enabled=True, spaces={"tagging": tagging, "panx": panx_only}).validate()
    assert set(tuning.space_for("panx")) == {"epochs"}               # the task's own entry first
    assert tuning.space_for("udpos")["learning_rate"].low == 5e-5     # then its family's (tagging)
    assert set(tuning.space_for("xnli")) == set(parse_space(None))    # else the default space


def test_a_spaces_key_that_is_neither_task_nor_family_is_one_error():
    with pytest.raises(XstiltsError) as err:
        TuningConfig(enabled=True, spaces={"taging": {"epochs": {"kind": "int", "low": 1, "high": 2}}}).validate()
    assert str(err.value).startswith("tuning.spaces.taging: neither a task nor a task family")


def test_a_grid_takes_its_targets_family_spaces_and_refuses_others(tmp_path):
    space = {"epochs": {"kind": "int", "low": 1, "high": 2}}
    base = {"targets": [{"task": "panx"}], "tuning": {"enabled": True}}
    ok, bad = tmp_path / "ok.yaml", tmp_path / "bad.yaml"
    ok.write_text(yaml.safe_dump(base | {"tuning": {"enabled": True, "spaces": {"tagging": space}}}))
    assert set(GridConfig.from_file(ok).tuning.space_for("panx")) == {"epochs"}
    bad.write_text(yaml.safe_dump(base | {"tuning": {"enabled": True, "spaces": {"sentence_classification": space}}}))
    with pytest.raises(XstiltsError, match="tuning.spaces.sentence_classification: neither a tuned task"):
        GridConfig.from_file(bad)


def test_the_report_note_names_the_study_its_values_and_the_scope():
    from types import SimpleNamespace

    from xstilts.grid.runner import _tuning_note

    outcome = SimpleNamespace(study_name="s1", complete=8, pruned=4, best_value=61.25,
                              best_params={"learning_rate": 0.000123, "batch_size": 16})
    job = SimpleNamespace(subject="panx", start="the bare encoder")
    note = _tuning_note(job, outcome, "per_task")
    assert "scope per_task" in note and "`s1`" in note and "learning_rate 0.000123" in note and "batch_size 16" in note
    assert note.startswith("Tuning panx (scope per_task; trials from the bare encoder)")


def test_default_space_and_grid_section_validate(tmp_path):
    assert set(parse_space(None)) == {"learning_rate", "batch_size", "epochs", "warmup_ratio", "weight_decay"}
    cfg = GridConfig.from_file(Path(__file__).resolve().parents[1] / "configs" / "tuned.yaml")
    assert cfg.tunes and cfg.tuning.pruner == "median"
    assert GridConfig.from_file(Path(__file__).resolve().parents[1] / "configs" / "default.yaml").tuning is None
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"targets": [{"task": "panx"}], "tuning": {"enabled": True, "prunr": "median"}}))
    with pytest.raises(XstiltsError, match="unknown field.*prunr"):
        GridConfig.from_file(bad)


def test_unreachable_storage_is_one_clear_line_before_training(tracking):
    url = f"sqlite:///{tracking / 'no' / 'such' / 'dir' / 'optuna.db'}"
    with pytest.raises(XstiltsError, match="tuning storage .* cannot be opened"):
        open_storage(TuningConfig(storage=url))
    result = CliRunner().invoke(main, ["tune", "--task", "panx", "--config", str(_tiny_grid_file(tracking)),
                                       "--n-trials", "2", "--storage", url])
    assert result.exit_code == 2
    lines = [x for x in result.output.splitlines() if x.startswith("xstilts: error:")]
    assert len(lines) == 1 and "cannot be opened" in lines[0]
    assert not list(tracking.glob("ckpt/*"))


def test_tuning_and_evaluating_on_the_same_dev_data_is_refused(tracking):
    cfg = _tiny_grid(tracking / "out", eval_langs=["en", "sw"], n_trials=2)
    from xstilts.grid.runner import run_grid

    with pytest.raises(LeakageError, match=r"panx/dev \[en,sw\] as evaluation is also used as panx/dev \[en\] as tuning"):
        run_grid(cfg, progress=False)


# -- a study ---------------------------------------------------------------------------------

def test_study_prunes_logs_parent_and_children_and_a_rerun_reuses_it(tracking):
    from xstilts.tuning.run import tune_target

    tuning = TuningConfig(enabled=True, n_trials=4, pruner="median", n_startup_trials=1,
                          space={**LR, "batch_size": [4, 8]})
    store = RunStore.open("tune-test")
    out = tune_target(store, tuning, base_config())
    study = optuna.load_study(study_name=out.study_name, storage=f"sqlite:///{tracking / 'optuna.db'}")
    states = [t.state for t in study.trials]
    assert len(states) == 4 and TrialState.PRUNED in states and TrialState.COMPLETE in states
    assert out.complete + out.pruned == 4 and out.best_params == study.best_params

    client = mlflow.MlflowClient()
    parent = client.get_run(out.parent_run_id)
    assert parent.info.status == "FINISHED" and parent.data.tags["kind"] == "tuning"
    assert {k: float(v) for k, v in parent.data.params.items() if k.startswith("best.")} == {
        f"best.{k}": float(v) for k, v in study.best_params.items()}
    children = mlflow.search_runs(experiment_names=["tune-test"], output_format="list",
                                  filter_string=f"tags.mlflow.parentRunId = '{out.parent_run_id}'")
    by_trial = {int(r.data.tags["tuning.trial"]): r for r in children}
    assert sorted(by_trial) == [0, 1, 2, 3]
    for t in study.trials:
        run = by_trial[t.number]
        assert run.data.tags["tuning.state"] == {"COMPLETE": "complete", "PRUNED": "pruned"}[t.state.name]
        assert run.info.status == "FINISHED" and float(run.data.params["trial.learning_rate"]) == t.params[
            "learning_rate"]
        history = client.get_metric_history(run.info.run_id, "tuning.dev_score")
        assert sorted(m.step for m in history) == sorted(t.intermediate_values)
    plots = {a.path for a in client.list_artifacts(out.parent_run_id, "plots")}
    assert {"plots/optimization_history.png", "plots/intermediate_values.png"} <= plots
    if out.complete >= 2:
        assert "plots/param_importances.png" in plots
    assert not client.search_model_versions("")  # trials register nothing

    again = tune_target(store, tuning, base_config())
    assert again.reused and again.trials_run == 0 and again.study_name == out.study_name
    assert len(optuna.load_study(study_name=out.study_name, storage=f"sqlite:///{tracking / 'optuna.db'}").trials) == 4


# -- a grid ----------------------------------------------------------------------------------

def _tiny_grid(out, *, eval_langs=("sw",), n_trials=2, **tuning) -> GridConfig:
    training = TrainingArgs(**(TINY | {"eval_every": 2}))
    return GridConfig(
        name="tiny-tuned", num_hidden_layers=2, seeds=[0], conditions=["none"],
        intermediate=IntermediateGrid(size=24, languages=["en", "sw"], training=training),
        targets=[TargetGrid(task="panx", max_train_examples=32, max_dev_examples=16, eval_langs=list(eval_langs),
                            max_eval_examples=16, training=training)],
        output_dir=str(out), experiment="grid-tune", threads=1,
        tuning=TuningConfig(enabled=True, n_trials=n_trials, pruner="none",
                            space={**LR, "warmup_ratio": {"low": 0.0, "high": 0.2}}, **tuning)).validate()


def test_grid_with_tuning_trains_its_cells_with_the_best_values(tracking):
    from xstilts.grid.runner import run_grid

    result = run_grid(_tiny_grid(tracking / "out"), progress=False)
    [outcome] = result.tuned.values()
    assert outcome.complete == 2 and result.trained == 1
    [target] = mlflow.search_runs(experiment_names=["grid-tune"], output_format="list",
                                  filter_string="tags.phase = 'target'")
    assert target.data.tags["tuning.study"] == outcome.study_name
    assert yaml.safe_load(target.data.tags["tuning.params"]) == outcome.best_params
    for name, value in outcome.best_params.items():
        assert float(target.data.params[f"training.{name}"]) == value
    study_run = mlflow.MlflowClient().get_run(outcome.parent_run_id)
    assert study_run.data.tags["mlflow.parentRunId"] == result.run_id
    import pandas as pd  # every result row says which study and values trained its model

    rows = pd.read_csv(result.table_csv)
    assert set(rows["tuning"]) == {f"{outcome.study_name} {json.dumps(outcome.best_params, sort_keys=True)}"}


# -- the intermediate phase, if configured ----------------------------------------------------

def _sst2_grid(out, **tuning) -> GridConfig:
    """An intermediate with held-out English dev data (SST-2 train -> SST-2 dev), tuned too."""
    cfg = _tiny_grid(out, intermediate=True, **tuning)
    cfg.conditions = ["none", "en"]
    cfg.intermediate = IntermediateGrid(task="sst2", split="train", size=16, selection="english_dev",
                                        training=cfg.intermediate.training)
    return cfg.validate()


def test_tuning_the_intermediate_phase_plans_one_study_per_setting_or_per_condition(tmp_path):
    from xstilts.grid.plan import plan_grid

    cfg = _sst2_grid(tmp_path)
    cfg.seeds = [0, 1]
    plan = plan_grid(cfg)
    inter_jobs = [j for j in plan.jobs.values() if j.label.startswith("intermediate")]
    assert [j.tune_job for j in inter_jobs] == ["tune:intermediate:sst2:en"] * 2  # per task: one study, both seeds
    assert plan.jobs["tune:intermediate:sst2:en"].config.phase == "intermediate"
    cfg.conditions, cfg.tuning.scope = ["none", "en", "multi"], "per_condition"
    cfg.intermediate = IntermediateGrid(task="tydiqa", split="train", size=12, source_kind="native",
                                        languages=["sw"], selection="english_dev", training=cfg.intermediate.training)
    tunes = {j.tune_job for j in plan_grid(cfg.validate()).jobs.values() if j.label.startswith("intermediate")}
    assert tunes == {"tune:intermediate:tydiqa:en", "tune:intermediate:tydiqa:multi"}  # same budget each


def test_tuning_an_intermediate_on_the_items_it_trains_on_is_refused(tmp_path):
    from xstilts.grid.plan import check_grid_leakage

    cfg = _tiny_grid(tmp_path, intermediate=True)
    cfg.conditions = ["none", "en"]  # the default grid's intermediate: XNLI dev items, no held-out dev
    with pytest.raises(LeakageError, match=r"xnli/dev \[en\] as tuning is also used for xnli/dev \[en\] as intermediate train"):
        check_grid_leakage(cfg)


def test_grid_tunes_the_intermediate_phase_and_every_row_names_both_studies(tracking):
    import pandas as pd

    from xstilts.grid.runner import run_grid

    result = run_grid(_sst2_grid(tracking / "out"), progress=False)
    studies = {job_id.split(":")[1]: o for job_id, o in result.tuned.items()}
    assert set(studies) == {"intermediate", "panx"} and all(o.complete == 2 for o in studies.values())
    [inter] = mlflow.search_runs(experiment_names=["grid-tune"], output_format="list",
                                 filter_string="tags.phase = 'intermediate'")
    tuned = studies["intermediate"]
    assert inter.data.tags["tuning.study"] == tuned.study_name
    for name, value in tuned.best_params.items():
        assert float(inter.data.params[f"training.{name}"]) == value
    rows = pd.read_csv(result.table_csv)
    named = {c: set(g["tuning"]) for c, g in rows.groupby("condition")}
    target = f"{studies['panx'].study_name} {json.dumps(studies['panx'].best_params, sort_keys=True)}"
    assert named["none"] == {target}
    assert named["en"] == {f"{tuned.study_name} {json.dumps(tuned.best_params, sort_keys=True)}; {target}"}


# -- processes -------------------------------------------------------------------------------

def _tiny_grid_file(tmp: Path, **tuning) -> Path:
    cfg = _tiny_grid(tmp / "out", **tuning)
    data = cfg.to_dict()
    path = tmp / "tiny.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _tune_process(tmp: Path, config: Path, n_trials: int) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(SRC), "MLFLOW_TRACKING_URI": f"sqlite:///{tmp / 'mlflow.db'}"}
    return subprocess.Popen([sys.executable, "-m", "xstilts.cli", "tune", "--task", "panx", "--config", str(config),
                             "--n-trials", str(n_trials), "--threads", "1", "--no-progress"],
                            cwd=tmp, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _prepare_stores(tmp: Path, tuning: TuningConfig) -> None:
    """Create the MLflow, claims and Optuna tables once, before processes share them."""
    store = RunStore.open("grid-tune")
    store.claims.release(store.claims.try_claim("warm-up"))
    open_storage(tuning)


def _study(tmp: Path):
    [summary] = optuna.get_all_study_summaries(f"sqlite:///{tmp / 'optuna.db'}")
    return optuna.load_study(study_name=summary.study_name, storage=f"sqlite:///{tmp / 'optuna.db'}")


def test_two_tune_processes_share_one_study(tracking):
    config = _tiny_grid_file(tracking, n_trials=3)
    _prepare_stores(tracking, TuningConfig())
    procs = [_tune_process(tracking, config, 3) for _ in range(2)]
    outputs = [p.communicate(timeout=600)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    study = _study(tracking)
    numbers = [t.number for t in study.trials]
    assert len(numbers) == len(set(numbers))
    assert sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in study.trials) >= 3
    runs = mlflow.search_runs(experiment_names=["grid-tune"], output_format="list",
                              filter_string="tags.kind = 'tuning-trial'")
    assert sorted(int(r.data.tags["tuning.trial"]) for r in runs) == sorted(numbers)
    parents = mlflow.search_runs(experiment_names=["grid-tune"], output_format="list",
                                 filter_string="tags.kind = 'tuning'")
    assert len(parents) == 1 and all(r.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for r in runs)


@pytest.mark.slow
def test_killed_worker_trial_fails_and_the_rerun_ends_with_n_finished_trials(tracking):
    config = _tiny_grid_file(tracking, n_trials=2, heartbeat_interval=1, grace_period=3)
    _prepare_stores(tracking, TuningConfig())
    proc = _tune_process(tracking, config, 2)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            running = [t for t in _study(tracking).trials if t.state == TrialState.RUNNING and t.intermediate_values]
        except (ValueError, KeyError):
            running = []
        if running:
            break
        assert proc.poll() is None, proc.communicate()[0]
        time.sleep(0.5)
    killed = running[0]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    time.sleep(4)  # past the grace period
    result = CliRunner().invoke(main, ["tune", "--task", "panx", "--config", str(config), "--n-trials", "2",
                                       "--threads", "1", "--no-progress"])
    assert result.exit_code == 0, result.output
    study = _study(tracking)
    finished = [t for t in study.trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(finished) == 2
    assert study.trials[killed.number].state == TrialState.FAIL
    retried = [t for t in study.trials if t.system_attrs.get("failed_trial") == killed.number]
    assert retried and retried[0].params == killed.params
    run = mlflow.MlflowClient().get_run(killed.user_attrs["mlflow_run_id"])
    assert run.info.status == "FAILED" and run.data.tags["tuning.state"] == "failed"
