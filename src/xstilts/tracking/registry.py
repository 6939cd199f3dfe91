"""The MLflow model registry as xstilts uses it: register, find for reuse, fetch.

One registered model name per phase and task (``xstilts-intermediate-xnli``,
``xstilts-target-panx``); each trained model is a version tagged with what made
it (phase, task, condition, data spec hash, seed, base encoder, code version,
selection policy, and the ``run_key`` that identifies its config). A request whose
``run_key`` matches a registered version reuses it.
"""
from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from xstilts.errors import XstiltsError


def model_name(phase: str, task: str) -> str:
    return f"xstilts-{phase}-{task.replace('+', '-')}"


@dataclass(frozen=True)
class RegisteredModel:
    name: str
    version: str
    run_id: str
    tags: dict

    @property
    def uri(self) -> str:
        return f"models:/{self.name}/{self.version}"


def _client():
    from mlflow import MlflowClient

    return MlflowClient()


def find_registered(name: str, run_key: str) -> RegisteredModel | None:
    """The newest registered version of ``name`` trained from config ``run_key``."""
    from mlflow.exceptions import MlflowException

    try:
        versions = _client().search_model_versions(f"name = '{name}' and tags.run_key = '{run_key}'")
    except MlflowException:
        return None
    versions = [v for v in versions if v.status == "READY"]
    if not versions:
        return None
    v = max(versions, key=lambda v: int(v.version))
    return RegisteredModel(v.name, str(v.version), v.run_id, dict(v.tags))


def log_and_register(model_dir: str | os.PathLike[str], *, name: str, tags: dict[str, str]) -> RegisteredModel:
    """Log ``model_dir`` as a pyfunc in the active run and register it with ``tags``."""
    import mlflow

    from xstilts.tracking.pyfunc import ARTIFACT_KEY, XstiltsPyfunc

    run = mlflow.active_run()
    if run is None:
        raise XstiltsError("log_and_register needs an active MLflow run")
    info = mlflow.pyfunc.log_model(name="model", python_model=XstiltsPyfunc(),
                                   artifacts={ARTIFACT_KEY: str(model_dir)},
                                   pip_requirements=["xstilts", "torch", "transformers", "safetensors"])
    mv = mlflow.register_model(info.model_uri, name, tags={k: str(v) for k, v in tags.items()})
    return RegisteredModel(mv.name, str(mv.version), run.info.run_id, dict(tags))


def resolve_registered(uri: str) -> RegisteredModel:
    """``models:/NAME/VERSION`` -> its registry entry."""
    if not uri.startswith("models:/"):
        raise XstiltsError(f"{uri!r} is not a registered model URI (models:/NAME/VERSION)")
    try:
        name, version = uri[len("models:/"):].rsplit("/", 1)
    except ValueError:
        raise XstiltsError(f"{uri!r} is not of the form models:/NAME/VERSION") from None
    from mlflow.exceptions import MlflowException

    try:
        v = _client().get_model_version(name, version)
    except MlflowException as exc:
        raise XstiltsError(f"registered model {uri} not found: {exc.message}") from None
    return RegisteredModel(v.name, str(v.version), v.run_id, dict(v.tags))


def fetch_model_dir(ref: str, dst: str | os.PathLike[str] | None = None) -> Path:
    """A local xstilts model directory for ``ref`` (``models:/...`` or a directory)."""
    from xstilts.models.persist import MANIFEST

    path = Path(ref).expanduser()
    if path.is_dir():
        return path
    if not ref.startswith("models:/"):
        raise XstiltsError(f"model {ref!r} is neither a registered model (models:/NAME/VERSION) nor a directory")
    resolve_registered(ref)
    import mlflow

    dst = Path(dst or tempfile.mkdtemp(prefix="xstilts-model-"))
    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=ref, dst_path=str(dst)))
    found = [p.parent for p in local.rglob(MANIFEST)]
    if len(found) != 1:
        raise XstiltsError(f"registered model {ref} holds {len(found)} xstilts model directories, expected 1")
    return found[0]
