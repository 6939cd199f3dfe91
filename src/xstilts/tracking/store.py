"""The run store: the one module that talks to MLflow.

Everything xstilts records goes through a :class:`RunStore`: the grid's parent
run and its children (also when ``mlflow run`` launched the process and created
the run the entry point must log into), job runs that end FAILED when their work
raises, the model registry (register, find for reuse, fetch, "best model of a
task"), finished evaluations found by their complete key, and claims
(:mod:`xstilts.tracking.claims`) so that two processes never run one job.

Phases and evaluation never import MLflow: they get a :class:`JobRun` (the
tracker of their own run) or return what should be logged.

Defaults: without ``MLFLOW_TRACKING_URI`` runs go to a SQLite store
``mlflow.db`` in the working directory and artifacts to ``./mlartifacts``, so
``mlflow ui`` started there shows them.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from xstilts.errors import XstiltsError
from xstilts.tracking.claims import DEFAULT_TIMEOUT_S, ClaimStore, claims_url_for

log = logging.getLogger(__name__)

DEFAULT_EXPERIMENT = "xstilts"
PARENT_TAG = "mlflow.parentRunId"
MODEL_ARTIFACT = "model"
#: a param value's longest logged form (MLflow's own limit is 6,000 characters)
PARAM_CHARS = 6000
T = TypeVar("T")


def default_tracking_uri() -> str:
    return f"sqlite:///{Path.cwd() / 'mlflow.db'}"


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


def _champion_hint(name: str, alias: str, *, registered: bool) -> str:
    """What sets a missing ``champion`` alias (``champion-int8`` on a serving model); ``registered``: the
    model exists, only the alias is missing (a target task with no model yet needs training first)."""
    task = name.split("-", 2)[-1]
    if name.startswith("xstilts-target-") and alias == CHAMPION_ALIAS and registered:
        return f" (`xstilts champion --task {task}` sets it)"
    if name.startswith("xstilts-serve-"):
        quantize = " --quantize int8" if alias.endswith("-int8") else ""
        return (f" (`xstilts export --model models:/xstilts-target-{task}@{CHAMPION_ALIAS}{quantize}` sets it, "
                f"after `xstilts champion --task {task}`)")
    return ""


def _split_model_uri(uri: str) -> tuple[str, str]:
    """``models:/NAME/VERSION`` or ``models:/NAME@ALIAS`` -> (name, version-or-@alias)."""
    if not uri.startswith("models:/"):
        raise XstiltsError(f"{uri!r} is not a registered model URI (models:/NAME/VERSION or models:/NAME@ALIAS)")
    body = uri[len("models:/"):]
    if "@" in body:
        name, alias = body.split("@", 1)
        return name, "@" + alias
    try:
        name, version = body.rsplit("/", 1)
    except ValueError:
        raise XstiltsError(f"{uri!r} is not of the form models:/NAME/VERSION") from None
    return name, version


class RunStore:
    """One tracking store (and its claims); open it with :meth:`open`."""

    def __init__(self, tracking_uri: str, experiment_id: str, *, launch_run_id: str | None = None,
                 claim_timeout: float = DEFAULT_TIMEOUT_S) -> None:
        import mlflow

        self.tracking_uri = tracking_uri
        self.experiment_id = experiment_id
        self.launch_run_id = launch_run_id
        self.claim_timeout = claim_timeout
        self.client = mlflow.MlflowClient(tracking_uri)
        self._claims: ClaimStore | None = None
        self._local_models: dict[str, Path] = {}  # models:/NAME/VERSION -> the directory registered here

    # -- opening -------------------------------------------------------------------
    @classmethod
    def open(cls, experiment: str | None = None, *, claim_timeout: float | None = None) -> RunStore:
        """The store of ``MLFLOW_TRACKING_URI`` (default: ``./mlflow.db``).

        Under ``mlflow run`` the process inherits ``MLFLOW_RUN_ID``: that run is
        taken out of the environment here (so nothing resumes it by accident) and
        handed to the first caller of :meth:`take_launch_run`; its experiment is
        the store's.
        """
        import mlflow

        uri = os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()
        mlflow.set_tracking_uri(uri)  # artifact downloads and pyfunc loading read the global URI
        launch = os.environ.pop("MLFLOW_RUN_ID", None)
        timeout = claim_timeout if claim_timeout is not None else float(
            os.environ.get("XSTILTS_CLAIM_TIMEOUT", DEFAULT_TIMEOUT_S))
        client = mlflow.MlflowClient(uri)
        if launch:
            exp_id = client.get_run(launch).info.experiment_id
        else:
            exp_id = _get_or_create_experiment(client, uri, experiment or os.environ.get(
                "MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT)
        return cls(uri, exp_id, launch_run_id=launch, claim_timeout=timeout)

    def for_experiment(self, name: str) -> RunStore:
        """The same store logging into experiment ``name`` (unless a launch run fixes it).

        ``mlflow run .`` without ``--experiment-name`` puts its run in the grid's
        experiment already (:class:`ProjectExperimentProvider`)."""
        if self.launch_run_id:
            return self
        other = RunStore(self.tracking_uri, _get_or_create_experiment(self.client, self.tracking_uri, name),
                         claim_timeout=self.claim_timeout)
        _mark_training_experiment(self.client, other.experiment_id)
        other._claims = self._claims
        other._local_models = self._local_models
        return other

    @property
    def claims(self) -> ClaimStore:
        if self._claims is None:
            self._claims = ClaimStore(claims_url_for(self.tracking_uri), timeout=self.claim_timeout)
        return self._claims

    def keep_local(self, uri: str, model_dir: str | os.PathLike[str]) -> None:
        """:meth:`fetch_model_dir` of ``uri`` returns ``model_dir`` (what was registered as ``uri``)
        instead of downloading it again, as long as it exists; the caller keeps it unchanged."""
        self._local_models[uri] = Path(model_dir)

    def time_with(self, timings) -> RunStore:
        """Charge every MLflow call, artifact download and claim of this store to ``timings``'
        tracking category (a :class:`~xstilts.runtime.timing.Timings`); returns the store."""
        self.client = timings.wrap(self.client, "tracking")
        self._claims = timings.wrap(self.claims, "tracking")
        for name in ("fetch_model_dir", "fetch_export_bundle", "load_dict"):  # downloads bypass the client
            setattr(self, name, timings.timed("tracking", getattr(self, name)))
        return self

    def take_launch_run(self) -> str | None:
        """The run ``mlflow run`` created for this process, once (None afterwards)."""
        run_id, self.launch_run_id = self.launch_run_id, None
        return run_id

    # -- runs ----------------------------------------------------------------------
    def start_run(self, run_name: str, tags: dict[str, str], *, parent_id: str | None = None,
                  adopt_launch: bool = False) -> str:
        """A new RUNNING run (or the launch run, tagged and renamed, when ``adopt_launch``)."""
        tags = {k: str(v) for k, v in tags.items()}
        if parent_id:
            tags[PARENT_TAG] = parent_id
        launch = self.take_launch_run() if adopt_launch else None
        if launch:
            self.label_run(launch, run_name, tags)
            run_id = launch
        else:
            experiment = self.experiment_of(parent_id) if parent_id else self.experiment_id
            run_id = self.client.create_run(experiment, run_name=run_name, tags=tags).info.run_id
        self._log_environment(run_id)
        return run_id

    def label_run(self, run_id: str, run_name: str | None, tags: dict[str, Any],
                  metrics: dict[str, float] | None = None) -> None:
        """Name (unless None), tag and add metrics to a run that already exists, such as the one
        `mlflow run` started, which MLflow leaves unnamed."""
        if run_name:
            self.client.set_tag(run_id, "mlflow.runName", run_name)
        self._log(run_id, tags=tags, metrics=metrics)

    def _log_environment(self, run_id: str) -> None:
        """Packages, torch build, CPU model and flags (``environment.json``) on every run started."""
        from xstilts.runtime.environment import ENVIRONMENT_ARTIFACT, describe_environment

        self.client.log_dict(run_id, describe_environment(), ENVIRONMENT_ARTIFACT)

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status=status)

    @contextlib.contextmanager
    def job_run(self, run_name: str, tags: dict[str, str], *, parent_id: str | None = None,
                adopt_launch: bool = False) -> Iterator[JobRun]:
        """A run that ends FINISHED, or FAILED when the body raises (then re-raised)."""
        run = JobRun(self, self.start_run(run_name, tags, parent_id=parent_id, adopt_launch=adopt_launch))
        try:
            yield run
        except BaseException:
            self.end_run(run.run_id, "FAILED")
            raise
        self.end_run(run.run_id, "FINISHED")

    def experiment_of(self, run_id: str) -> str:
        return self.client.get_run(run_id).info.experiment_id

    def run_exists(self, run_id: str) -> bool:
        from mlflow.exceptions import MlflowException

        try:
            self.client.get_run(run_id)
            return True
        except MlflowException:
            return False

    def fail_running(self, tag: str, value: str) -> list[str]:
        """Mark every RUNNING run tagged ``tag = value`` FAILED; their ids, newest first.

        Only call this while holding the claim on the job: a live attempt would
        hold the claim itself, so what is still RUNNING here died without ending.
        """
        runs = self.client.search_runs(self._all_experiments(),
                                       filter_string=f"tags.`{tag}` = '{value}' and attributes.status = 'RUNNING'",
                                       order_by=["attributes.start_time DESC"])
        for r in runs:
            self.end_run(r.info.run_id, "FAILED")
        return [r.info.run_id for r in runs]

    def hold_run(self, run_id: str):
        """Claim ``run_id`` itself for as long as this process works in it (a grid's
        parent run), so that :meth:`fail_abandoned_runs` can tell a live run from a dead one."""
        return self.claims.try_claim(f"run-{run_id}")

    def fail_abandoned_runs(self, filter_string: str) -> list[str]:
        """Mark FAILED the RUNNING runs matching ``filter_string`` that no live process holds."""
        runs = self.client.search_runs(self._all_experiments(),
                                       filter_string=f"{filter_string} and attributes.status = 'RUNNING'")
        failed = []
        for r in runs:
            claim = self.claims.try_claim(f"run-{r.info.run_id}")
            if claim is None:
                continue  # its process is alive
            try:
                self.end_run(r.info.run_id, "FAILED")
                failed.append(r.info.run_id)
            finally:
                self.claims.release(claim)
        return failed

    def is_running(self, run_id: str) -> bool:
        return self.run_exists(run_id) and self.client.get_run(run_id).info.status == "RUNNING"

    def mark_failed(self, run_id: str) -> None:
        if self.is_running(run_id):
            self.end_run(run_id, "FAILED")

    def _all_experiments(self) -> list[str]:
        return [e.experiment_id for e in self.client.search_experiments()]

    def _log(self, run_id: str, *, params: dict | None = None, metrics: dict | None = None,
             tags: dict | None = None, step: int = 0) -> None:
        """One batched call (MLflow's limits: 100 params, 1,000 metrics per batch)."""
        from mlflow.entities import Metric, Param, RunTag

        now = int(time.time() * 1000)
        p = [Param(k, str(v)[:PARAM_CHARS]) for k, v in (params or {}).items()]
        m = [Metric(k, float(v), now, step) for k, v in (metrics or {}).items()]
        t = [RunTag(k, str(v)) for k, v in (tags or {}).items()]
        for i in range(0, max(len(p), len(m), len(t), 1), 100):
            self.client.log_batch(run_id, metrics=m[i:i + 100], params=p[i:i + 100], tags=t[i:i + 100])

    # -- run-once with claims ----------------------------------------------------------
    def run_once(self, key: str, find: Callable[[], T | None], work: Callable[[Any], T]) -> T | None:
        """``find()`` if the job is done, else ``work(claim)`` under the claim on ``key``;
        None while another live process holds the claim (ask again later).

        ``find`` runs again after the claim is taken: the previous holder may have
        recorded its result and released the claim in between.
        """
        done = find()
        if done is not None:
            return done
        claim = self.claims.try_claim(key)
        if claim is None:
            return None
        try:
            done = find()
            if done is not None:
                return done
            if claim.stale_run_id:
                self.mark_failed(claim.stale_run_id)
            return work(claim)
        finally:
            self.claims.release(claim)

    # -- registry ------------------------------------------------------------------
    def find_model(self, name: str, run_key: str) -> RegisteredModel | None:
        """The newest READY version of ``name`` trained from config ``run_key``."""
        from mlflow.exceptions import MlflowException

        try:
            versions = self.client.search_model_versions(f"name = '{name}' and tags.run_key = '{run_key}'")
        except MlflowException:
            return None
        versions = [v for v in versions if v.status == "READY"]
        if not versions:
            return None
        v = max(versions, key=lambda v: int(v.version))
        return RegisteredModel(v.name, str(v.version), v.run_id, dict(v.tags))

    def resolve_registered(self, uri: str) -> RegisteredModel:
        """``models:/NAME/VERSION`` or ``models:/NAME@ALIAS`` -> its registry entry."""
        from mlflow.exceptions import MlflowException

        name, version = _split_model_uri(uri)
        try:
            if version.startswith("@"):
                v = self.client.get_model_version_by_alias(name, version[1:])
            else:
                v = self.client.get_model_version(name, version)
        except MlflowException as exc:
            hint = ""
            if version.startswith(f"@{CHAMPION_ALIAS}"):
                hint = _champion_hint(name, version[1:], registered="alias" in exc.message)
            raise XstiltsError(f"registered model {uri} not found: {exc.message}{hint}") from None
        return RegisteredModel(v.name, str(v.version), v.run_id, dict(v.tags))

    @contextlib.contextmanager
    def fetched(self, ref: str, *, bundle: bool = False) -> Iterator[Path]:
        """The local directory of ``ref`` for the length of a ``with`` block: an xstilts model directory
        (:meth:`fetch_model_dir`) or, with ``bundle``, an exported bundle (:meth:`fetch_export_bundle`).
        A registered model is downloaded into a temporary directory that the block's end removes (a
        model is hundreds of MB: a server or evaluation that left its copy behind filled ``/tmp``); a
        local directory, or a model this process registered and kept, is used in place."""
        kept = None if bundle else self._kept(ref)  # only training keeps model directories
        if kept is not None:
            yield kept
            return
        fetch = self.fetch_export_bundle if bundle else self.fetch_model_dir
        if not ref.startswith("models:/"):
            yield fetch(ref)
            return
        with tempfile.TemporaryDirectory(prefix="xstilts-model-") as tmp:
            yield fetch(ref, tmp)

    def _kept(self, ref: str) -> Path | None:
        """The directory :meth:`keep_local` recorded for ``ref``, while it still holds the model."""
        from xstilts.models.persist import MANIFEST

        local = self._local_models.get(ref)
        return local if local is not None and (local / MANIFEST).is_file() else None

    def fetch_model_dir(self, ref: str, dst: str | os.PathLike[str] | None = None) -> Path:
        """A local xstilts model directory for ``ref`` (``models:/...`` or a directory); a registered model
        is downloaded into ``dst`` (:meth:`fetched` downloads into a temporary one and removes it)."""
        from xstilts.models.persist import MANIFEST

        kept = self._kept(ref)
        if kept is not None and dst is None:
            return kept  # registered by this process from this very directory: no download
        path = Path(ref).expanduser()
        if path.is_dir():
            return path
        if not ref.startswith("models:/"):
            raise XstiltsError(f"model {ref!r} is neither a registered model (models:/NAME/VERSION) nor a directory")
        return self._download_one(ref, MANIFEST, dst, "xstilts model directories")

    def _download_one(self, ref: str, marker: str, dst, what: str) -> Path:
        """Download registered model ``ref`` into ``dst`` and return the one folder holding ``marker``."""
        import mlflow

        if dst is None:  # a download with no owner is never removed: use fetched() for a temporary one
            raise ValueError(f"downloading {ref} needs a destination directory; use RunStore.fetched({ref!r})")
        registered = self.resolve_registered(ref)
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=registered.uri, dst_path=str(dst),
                                                         tracking_uri=self.tracking_uri))
        found = [p.parent for p in local.rglob(marker)]
        if len(found) != 1:
            raise XstiltsError(f"registered model {ref} holds {len(found)} {what}, expected 1")
        return found[0]

    def register(self, run_id: str, model_dir: str | os.PathLike[str], *, name: str,
                 tags: dict[str, str]) -> RegisteredModel:
        """Log ``model_dir`` as a pyfunc (model code, not a pickle) in run ``run_id`` and register it."""
        from xstilts.tracking.pyfunc import save_pyfunc

        with tempfile.TemporaryDirectory(prefix="xstilts-pyfunc-") as tmp:
            save_pyfunc(Path(tmp) / MODEL_ARTIFACT, model_dir)
            self.client.log_artifacts(run_id, str(Path(tmp) / MODEL_ARTIFACT), MODEL_ARTIFACT)
        return self._create_version(run_id, name, tags)

    def _create_version(self, run_id: str, name: str, tags: dict[str, str]) -> RegisteredModel:
        from mlflow.exceptions import MlflowException

        try:
            self.client.create_registered_model(name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        source = f"{self.client.get_run(run_id).info.artifact_uri}/{MODEL_ARTIFACT}"
        tags = {k: str(v) for k, v in tags.items()}
        mv = self.client.create_model_version(name, source, run_id=run_id, tags=tags)
        for _ in range(600):  # file and SQL stores are READY at once; a server may take a moment
            if mv.status == "READY":
                break
            time.sleep(0.1)
            mv = self.client.get_model_version(name, mv.version)
        return RegisteredModel(mv.name, str(mv.version), run_id, tags)

    def best_model(self, name: str, *, metric: str = "selected.dev_score",
                   filter_tags: dict[str, str] | None = None,
                   exclude_tags: dict[str, str] | None = None) -> RegisteredModel | None:
        """The READY version of registered model ``name`` whose training run scored
        highest on ``metric`` (default: the English dev score that selected it);
        ties go to the newer version. None when no version has the metric."""
        from mlflow.exceptions import MlflowException

        try:
            versions = self.client.search_model_versions(f"name = '{name}'")
        except MlflowException:
            return None
        scored = []
        for v in versions:
            if v.status != "READY" or any(v.tags.get(k) != val for k, val in (filter_tags or {}).items()):
                continue
            if any(v.tags.get(k) == val for k, val in (exclude_tags or {}).items()):
                continue
            value = self.client.get_run(v.run_id).data.metrics.get(metric)
            if value is not None:
                scored.append((value, int(v.version), v))
        if not scored:
            return None
        _, _, v = max(scored, key=lambda s: (s[0], s[1]))
        return RegisteredModel(v.name, str(v.version), v.run_id, dict(v.tags))

    def run_metric(self, run_id: str, metric: str) -> float | None:
        """The last logged value of ``metric`` in run ``run_id`` (None when it has none),
        e.g. the ``selected.dev_score`` that chose a trained model."""
        return self.client.get_run(run_id).data.metrics.get(metric)

    def set_alias(self, model: RegisteredModel, alias: str) -> None:
        self.client.set_registered_model_alias(model.name, alias, model.version)

    def is_champion(self, uri: str) -> bool:
        """Whether ``uri`` (a registered version, by number or alias) is its model's ``champion``."""
        from mlflow.exceptions import MlflowException

        if not uri.startswith("models:/"):
            return False
        name, _ = _split_model_uri(uri)
        try:
            champion = self.client.get_model_version_by_alias(name, CHAMPION_ALIAS)
        except MlflowException:
            return False
        return str(champion.version) == self.resolve_registered(uri).version

    # -- evaluations ---------------------------------------------------------------
    def find_evaluation(self, eval_key: str) -> dict | None:
        """The record a FINISHED evaluation run with ``eval_key`` logged, or None."""
        runs = self.client.search_runs(self._all_experiments(),
                                       filter_string=f"tags.eval_key = '{eval_key}' and attributes.status = 'FINISHED'",
                                       order_by=["attributes.start_time ASC"], max_results=1)
        if not runs:
            return None
        record = self.load_dict(runs[0].info.run_id, EVAL_RECORD)
        record["run_id"] = runs[0].info.run_id
        return record

    def load_dict(self, run_id: str, artifact: str) -> dict:
        import mlflow

        with tempfile.TemporaryDirectory(prefix="xstilts-dl-") as tmp:
            path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact, dst_path=tmp,
                                                       tracking_uri=self.tracking_uri)
            return json.loads(Path(path).read_text())

    # -- tuning --------------------------------------------------------------------
    # Optuna studies (xstilts.tuning): one parent run per study, one child run per trial.
    def study_run(self, study_name: str, tags: dict[str, str], *, parent_id: str | None = None) -> str:
        """The parent run of study ``study_name``, RUNNING: found by its tag (reopened), else
        started. Creation is serialised by a claim so that two workers share one parent."""
        key = f"tuning-study-{study_name}"
        while (claim := self.claims.try_claim(key)) is None:
            time.sleep(0.5)
        try:
            runs = self.client.search_runs(
                self._all_experiments(), max_results=1, order_by=["attributes.start_time ASC"],
                filter_string=f"tags.kind = 'tuning' and tags.`tuning.study` = '{study_name}'")
            if runs:
                run_id = runs[0].info.run_id
                if runs[0].info.status != "RUNNING":
                    self.client.update_run(run_id, status="RUNNING")
                return run_id
            return self.start_run(f"tune-{study_name}", {**tags, "kind": "tuning", "tuning.study": study_name},
                                  parent_id=parent_id)
        finally:
            self.claims.release(claim)

    def log_study_request(self, run_id: str, params: dict[str, Any], documents: dict[str, dict]) -> None:
        """The request on the study's run: params once (a rerun asks the same), documents as JSON."""
        self._log_params_once(run_id, {f"tuning.{k}": v for k, v in params.items()})
        for name, doc in documents.items():
            self.client.log_dict(run_id, doc, f"tuning/{name}.json")

    def start_trial_run(self, parent_id: str, study_name: str, number: int, params: dict[str, Any]) -> JobRun:
        """A RUNNING child run of the study's run for trial ``number`` (ended by :meth:`end_trial_run`)."""
        tags = {"kind": "tuning-trial", "tuning.study": study_name, "tuning.trial": str(number),
                "tuning.state": "running", "tuning.params": json.dumps(params, sort_keys=True)}
        run = JobRun(self, self.start_run(f"trial-{number}", tags, parent_id=parent_id))
        run.log_params({f"trial.{k}": v for k, v in params.items()})
        return run

    def end_trial_run(self, run_id: str, state: str) -> None:
        """End a trial's run: complete and pruned FINISHED, failed FAILED, tagged ``tuning.state``."""
        self._log(run_id, tags={"tuning.state": state})
        self.end_run(run_id, "FAILED" if state == "failed" else "FINISHED")

    def fail_trial_runs(self, run_ids: list[str]) -> list[str]:
        """End the still RUNNING runs among ``run_ids`` (trials Optuna marked FAILED: their
        worker died) as FAILED; the ones ended."""
        ended = []
        for run_id in run_ids:
            if self.is_running(run_id):
                self.end_trial_run(run_id, "failed")
                ended.append(run_id)
        return ended

    def finish_study_run(self, run_id: str, *, best_params: dict[str, Any], best_value: float, best_trial: int,
                         counts: dict[str, int], plots: list[Path]) -> None:
        """Best values, trial counts and plots on the study's run, which ends FINISHED.

        Best values are params the first time (MLflow params never change) and tags always
        (a study continued to more trials may find a better one)."""
        logged = self.client.get_run(run_id).data.params
        self._log(run_id, params={f"best.{k}": v for k, v in best_params.items() if f"best.{k}" not in logged},
                  tags={**{f"best.{k}": v for k, v in best_params.items()}, "tuning.best_trial": best_trial,
                        "tuning.best_params": json.dumps(best_params, sort_keys=True)},
                  metrics={"best.dev_score": best_value, **{f"trials.{k}": v for k, v in counts.items()}})
        self.client.log_dict(run_id, {"params": best_params, "value": best_value, "trial": best_trial},
                             "tuning/best.json")
        for plot in plots:
            self.client.log_artifact(run_id, str(plot), "plots")
        self.end_run(run_id, "FINISHED")


    # -- checkpoints in the artifact store (xstilts.grid.checkpoint_sync) ---------------
    def checkpoint_attempt(self, run_key: str, exclude: str) -> tuple[str, int] | None:
        """(run id, step) of the newest unfinished attempt at ``run_key`` that uploaded a
        checkpoint (tag ``checkpoint_step``), other than run ``exclude``; None if none did."""
        runs = self.client.search_runs(self._all_experiments(), order_by=["attributes.start_time DESC"],
                                       filter_string=f"tags.run_key = '{run_key}' and attributes.status != 'FINISHED'")
        for r in runs:
            if r.info.run_id != exclude and "checkpoint_step" in r.data.tags:
                return r.info.run_id, int(r.data.tags["checkpoint_step"])
        return None

    def download_run_artifacts(self, run_id: str, artifact_path: str, dst: str | os.PathLike[str]) -> Path:
        import mlflow

        return Path(mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=artifact_path,
                                                        dst_path=str(dst), tracking_uri=self.tracking_uri))

    # -- export/serving --------------------------------------------------------------
    def register_export(self, bundle_dir, *, name: str, tags: dict[str, str], input_example: list[dict],
                        parent_run_id: str | None = None) -> RegisteredModel:
        """Log an exported bundle (ONNX graph, tokenizer, manifest) as a models-from-code pyfunc with
        signature and input example in a new run, and register it as ``name`` tagged ``tags``."""
        import pandas as pd

        from xstilts.export.runtime import read_serve_manifest
        from xstilts.tracking.onnx_pyfunc import save_onnx_pyfunc

        manifest = read_serve_manifest(bundle_dir)
        run_id = self.start_run(f"export-{manifest['task']}-{manifest['precision']}", {"phase": "export", **tags},
                                parent_id=parent_run_id, adopt_launch=True)
        try:
            self._log_params_once(run_id, {"task": manifest["task"], "precision": manifest["precision"],
                                           "opset": manifest["opset"], "source_model": manifest["source_model"]})
            self.client.log_dict(run_id, manifest["checks"], "export/checks.json")
            with tempfile.TemporaryDirectory(prefix="xstilts-onnx-pyfunc-") as tmp:
                save_onnx_pyfunc(Path(tmp) / MODEL_ARTIFACT, bundle_dir, signature=_signature(manifest["serving"]),
                                 input_example=pd.DataFrame(input_example))
                self.client.log_artifacts(run_id, str(Path(tmp) / MODEL_ARTIFACT), MODEL_ARTIFACT)
            model = self._create_version(run_id, name, tags)
        except BaseException:
            self.end_run(run_id, "FAILED")
            raise
        self._log(run_id, tags={"registered_model": model.uri})
        self.end_run(run_id, "FINISHED")
        return model

    def _log_params_once(self, run_id: str, params: dict[str, Any]) -> None:
        """``params`` on a run that ``mlflow run`` may have started with its entry point's own, which MLflow
        never lets change: a key logged already with another value (``task=''``, to be read from the
        model) gets the value used as ``resolved.KEY``."""
        logged = self.client.get_run(run_id).data.params
        self._log(run_id, params={(f"resolved.{k}" if k in logged else k): v for k, v in params.items()
                                  if logged.get(k) != str(v)[:PARAM_CHARS]})

    def discard_version(self, model: RegisteredModel) -> None:
        """Delete the registered version ``model``, its run and the run's files. MLflow's own deletes
        only mark a run deleted (``mlflow gc`` removes its files later); a benchmark that registers
        two exports per run (about 0.4 GB each) uses this so repeated runs do not fill the disk."""
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        artifact_uri = self.client.get_run(model.run_id).info.artifact_uri
        self.client.delete_model_version(model.name, model.version)
        get_artifact_repository(artifact_uri).delete_artifacts()
        self.client.delete_run(model.run_id)

    def fetch_export_bundle(self, ref: str, dst=None) -> Path:
        """A local exported bundle for ``ref`` (``models:/xstilts-serve-...`` or a bundle directory); a
        registered one is downloaded into ``dst`` (:meth:`fetched` with ``bundle=True``: a temporary one)."""
        from xstilts.export.runtime import SERVE_MANIFEST

        path = Path(ref).expanduser()
        if (path / SERVE_MANIFEST).is_file():
            return path
        return self._download_one(ref, SERVE_MANIFEST, dst, "exported bundles (is it an xstilts-serve model?)")

    def set_champion(self, name: str) -> RegisteredModel:
        """Alias ``champion`` on the best version of ``name`` under :data:`CHAMPION_POLICY`."""
        best = self.best_model(name, exclude_tags={"oracle_selection": "true"})
        if best is None:
            raise XstiltsError(f"no READY version of {name} has a selected.dev_score to rank it by")
        self.set_alias(best, CHAMPION_ALIAS)
        return best


EVAL_RECORD = "evaluation/record.json"


# -- how the MLflow UI shows a grid -------------------------------------------------------
#: MLflow 3 UIs that read the experiment kind (3.0 to 3.4) open a "custom_model_development"
#: experiment on its runs table instead of the GenAI overview; later UIs follow the
#: ``workflowType`` URL parameter instead (xstilts.grid.browse.ui_url).
EXPERIMENT_KIND_TAG, TRAINING_KIND = "mlflow.experimentKind", "custom_model_development"


def _mark_training_experiment(client, experiment_id: str) -> None:
    """Tag the experiment as model training, unless a kind was set already (by a user, say)."""
    if EXPERIMENT_KIND_TAG not in client.get_experiment(experiment_id).tags:
        client.set_experiment_tag(experiment_id, EXPERIMENT_KIND_TAG, TRAINING_KIND)


class ProjectExperimentProvider:
    """Where ``mlflow run`` of this project puts its run when not told: the grid's experiment.

    MLflow asks its ``mlflow.default_experiment_provider`` entry points (pyproject.toml
    registers this class) for an experiment when neither ``--experiment-name`` /
    ``--experiment-id`` nor ``MLFLOW_EXPERIMENT_NAME`` / ``_ID`` chose one; without this, the
    run (the grid's parent) lands in MLflow's Default experiment, and MLflow cannot move a
    run later. This provider answers only inside ``mlflow run`` of an xstilts project
    (read from the ``run`` command's own parameters): the main entry point gets its grid
    config's experiment (``xstilts-default`` for the embedded grid), the others ``xstilts``,
    where ``xstilts`` commands log by default. Anywhere else MLflow's default stands.
    """

    def in_context(self) -> bool:
        return launch_experiment_name() is not None

    def get_experiment_id(self) -> str:
        import mlflow

        name = launch_experiment_name()
        client = mlflow.MlflowClient()
        experiment_id = _get_or_create_experiment(client, mlflow.get_tracking_uri(), name)
        _mark_training_experiment(client, experiment_id)
        return experiment_id


def launch_experiment_name() -> str | None:
    """The experiment for the ``mlflow run`` command running now, if it runs xstilts; else None."""
    import click

    ctx = click.get_current_context(silent=True)
    if ctx is None or ctx.command.name != "run" or "param_list" not in ctx.params:
        return None
    project = Path(ctx.params.get("uri") or ".")
    mlproject = project / "MLproject"
    if not mlproject.is_file() or not mlproject.read_text().startswith("name: xstilts\n"):
        return None
    if (ctx.params.get("entry_point") or "main") != "main":
        return DEFAULT_EXPERIMENT
    from xstilts.grid.config import GridConfig

    params = dict(p.split("=", 1) for p in ctx.params.get("param_list") or () if "=" in p)
    return GridConfig.from_file(project / params.get("config", "configs/default.yaml")).experiment


def _get_or_create_experiment(client, uri: str, name: str) -> str:
    from mlflow.exceptions import MlflowException

    found = client.get_experiment_by_name(name)
    if found is not None:
        return found.experiment_id
    location = (Path.cwd() / "mlartifacts" / name).as_uri() if uri.startswith(("sqlite:", "file:")) else None
    try:
        return client.create_experiment(name, artifact_location=location)
    except MlflowException:  # another process created it in between
        return client.get_experiment_by_name(name).experiment_id


class JobRun:
    """The tracker a phase logs into: its own run, nothing else."""

    def __init__(self, store: RunStore, run_id: str) -> None:
        self.store = store
        self.run_id = run_id

    def log_params(self, params: dict[str, Any]) -> None:
        """Params once: a resumed run logs the same again, and a run that ``mlflow run`` started holds its
        entry point's params already (``device=''`` where the config's value is used)."""
        self.store._log_params_once(self.run_id, params)

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        self.store._log(self.run_id, metrics=metrics, step=step)

    def set_tags(self, tags: dict[str, Any]) -> None:
        self.store._log(self.run_id, tags=tags)

    def log_text(self, text: str, artifact_file: str) -> None:
        self.store.client.log_text(self.run_id, text, artifact_file)

    def log_dict(self, obj: dict, artifact_file: str) -> None:
        self.store.client.log_dict(self.run_id, obj, artifact_file)

    def log_artifact(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        self.store.client.log_artifact(self.run_id, str(path), artifact_path)

    def log_artifacts(self, path: str | os.PathLike[str], artifact_path: str | None = None) -> None:
        self.store.client.log_artifacts(self.run_id, str(path), artifact_path)

    def register(self, model_dir: str | os.PathLike[str], *, name: str, tags: dict[str, str]) -> RegisteredModel:
        model = self.store.register(self.run_id, model_dir, name=name, tags=tags)
        self.set_tags({"registered_model": model.uri})
        return model



# -- export/serving (module helpers) ------------------------------------------------------
#: ``xstilts champion``'s policy: the best English dev score among non-oracle versions, ties -> newer.
CHAMPION_ALIAS = "champion"
CHAMPION_POLICY = ("highest selected.dev_score (the English dev score that selected the model) among versions "
                   "not selected on target-language dev (oracle_selection != true); ties go to the newer version")


def _signature(serving: dict):
    """An MLflow signature from a family's serving schema (optional columns stay optional)."""
    from mlflow.types.schema import Array, ColSpec, DataType, Schema

    cols = [ColSpec(Array(DataType.string) if f["type"] == "list[string]" else DataType.string, f["name"],
                    required=bool(f["required"])) for f in serving["inputs"]]
    from mlflow.models.signature import ModelSignature

    return ModelSignature(inputs=Schema(cols))
