"""Where runs are tracked: MLflow's own local default unless the user points elsewhere.

Without ``MLFLOW_TRACKING_URI`` runs go to a SQLite store ``mlflow.db`` in the
working directory (MLflow 3's default, so ``mlflow ui`` started there shows them)
and artifacts to ``./mlartifacts``; no server is needed. ``mlflow run`` passes its
own URI and run id down to the entry point, which then logs into that run.
"""
from __future__ import annotations

import os
from pathlib import Path

DEFAULT_EXPERIMENT = "xstilts"


def default_tracking_uri() -> str:
    return f"sqlite:///{Path.cwd() / 'mlflow.db'}"


def configure_tracking(experiment: str | None = None) -> str:
    """Set the tracking URI and experiment; returns the experiment id."""
    import mlflow

    if not os.environ.get("MLFLOW_TRACKING_URI"):
        mlflow.set_tracking_uri(default_tracking_uri())
    if os.environ.get("MLFLOW_RUN_ID") and os.environ.get("MLFLOW_EXPERIMENT_ID"):
        return os.environ["MLFLOW_EXPERIMENT_ID"]  # inside `mlflow run`: log into its run and experiment
    name = experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
    found = mlflow.get_experiment_by_name(name)
    if found is None:
        uri = mlflow.get_tracking_uri()
        location = (Path.cwd() / "mlartifacts" / name).as_uri() if uri.startswith(("sqlite:", "file:")) else None
        exp_id = mlflow.create_experiment(name, artifact_location=location)
    else:
        exp_id = found.experiment_id
    mlflow.set_experiment(experiment_id=exp_id)
    return exp_id
