"""The phases through their MLflow Projects entry points, as the README runs them (`mlflow run . -e PHASE`).

MLflow starts the run and logs the entry point's parameters before xstilts runs; xstilts then adopts
that run. Parameters left empty (``device=''``: the config's value) must not stop the phase from logging
what it used: every entry point failed this way once (MLflow never lets a param change).
"""
from __future__ import annotations

from pathlib import Path

import pytest

TINY = {"num_layers": 2, "epochs": 1, "batch_size": 8, "max_length": 64}


def _launch_run(proc, client):
    """The run `mlflow run` started (its id is in MLflow's last log line)."""
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    run_id = (proc.stdout + proc.stderr).split("=== Run (ID '")[-1].split("'")[0]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED"
    return run


@pytest.mark.slow
def test_intermediate_target_and_evaluate_entry_points_run_and_record_what_they_used(mlflow_run, tracking,
                                                                                     default_encoder_dir):
    from mlflow.tracking import MlflowClient

    client = MlflowClient()
    inter = _launch_run(mlflow_run("intermediate", task="xnli", split="dev", max_examples=16, selection="last",
                                   **TINY), client)
    assert inter.data.tags["mlflow.project.entryPoint"] == "intermediate"
    assert inter.data.params["device"] in ("", "''") and inter.data.params["resolved.device"] in ("cpu", "cuda")
    assert client.get_model_version("xstilts-intermediate-xnli", "1").run_id == inter.info.run_id

    target = _launch_run(mlflow_run("target", task="panx", init_from="models:/xstilts-intermediate-xnli/1",
                                    max_examples=16, max_dev_examples=8, **TINY), client)
    assert client.get_model_version("xstilts-target-panx", "1").run_id == target.info.run_id
    assert target.data.params["resolved.device"] in ("cpu", "cuda")

    project = Path(__file__).resolve().parents[1]  # MLflow runs the command there, not in `tracking`
    before = set(project.iterdir())
    proc = mlflow_run("evaluate", model="models:/xstilts-target-panx/1", task="panx", langs="en,sw", max_examples=8)
    evaluation = _launch_run(proc, client)  # the evaluation is logged into the run `mlflow run` started
    assert evaluation.data.tags["phase"] == "evaluation" and "panx.f1.en" in evaluation.data.metrics
    assert evaluation.data.tags["mlflow.parentRunId"] == target.info.run_id
    assert "predictions in the MLflow run" in proc.stdout and set(project.iterdir()) == before  # artifacts only
    artifacts = {f.path for f in client.list_artifacts(evaluation.info.run_id, "predictions/panx")}
    assert artifacts == {"predictions/panx/dev-en.tsv", "predictions/panx/dev-sw.tsv"}

    proc = mlflow_run("evaluate", model="models:/xstilts-target-panx/1", task="panx", langs="sw", max_examples=8,
                      out=tracking / "eval")
    assert proc.returncode == 0 and (tracking / "eval" / "eval-panx-dev.json").is_file()


@pytest.mark.slow
def test_check_and_analyze_entry_points_log_into_their_own_run(mlflow_run, tracking, default_encoder_dir):
    from mlflow.tracking import MlflowClient

    from test_analysis_report import _results  # its synthetic 3-seed results table

    client = MlflowClient()
    check = _launch_run(mlflow_run("check", langs="de,sw", max_pairs=50), client)
    assert check.data.tags["mlflow.project.entryPoint"] == "check" and check.data.tags["phase"] == "encoder_check"
    assert {"tatoeba.accuracy.de", "tatoeba.accuracy.sw"} <= set(check.data.metrics)

    _results().to_csv(tracking / "results.csv", index=False)
    analyze = _launch_run(mlflow_run("analyze", results=tracking / "results.csv", out=tracking / "report"), client)
    assert analyze.data.params["treatment"] == "multi" and (tracking / "report" / "report.md").is_file()
    assert "report/report.md" in [f.path for f in client.list_artifacts(analyze.info.run_id, "report")]


@pytest.mark.slow
def test_tune_entry_point_names_its_run_and_leads_to_the_study_when_rerun(mlflow_run, tracking, default_encoder_dir):
    from mlflow.tracking import MlflowClient

    from test_tuning import _tiny_grid_file  # a 2-layer PAN-X grid with a two-trial study

    client = MlflowClient()
    request = dict(task="panx", config=_tiny_grid_file(tracking, n_trials=2),
                   storage=f"sqlite:///{tracking / 'optuna.db'}")  # the command runs in the project folder
    first = _launch_run(mlflow_run("tune", **request), client)
    assert first.info.run_name == "tune-panx-none" and first.data.tags["kind"] == "tuning-launch"
    study_run = client.get_run(first.data.tags["tuning.study_run"])
    assert study_run.data.tags["kind"] == "tuning" and study_run.data.tags["mlflow.parentRunId"] == first.info.run_id
    assert first.data.metrics["best.dev_score"] == study_run.data.metrics["best.dev_score"]

    again = _launch_run(mlflow_run("tune", **request), client)  # the same request reuses the finished study
    assert again.info.run_name == "tune-panx-none" and again.data.tags["tuning.study_run"] == study_run.info.run_id
    assert again.data.tags["tuning.study"] == first.data.tags["tuning.study"]
