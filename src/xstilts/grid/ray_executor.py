"""Run a plan's jobs as Ray tasks on a cluster (``xstilts grid --executor ray``).

The driver submits each job as soon as the jobs it needs are done, with its
resource needs (CPUs = the grid's threads, a GPU share for training when asked),
and collects outcomes as tasks finish. A worker does exactly what the in-process
executor does (:meth:`TrainJob.run` / :meth:`EvalJob.run` against the run
store), so reuse, claims and the results table are the same; only where it runs
differs:

- shared state is in the tracking server, never on a worker's disk: each task
  trains into a private temporary folder, and its checkpoints go to the artifact
  store (:mod:`xstilts.grid.checkpoint_sync`), so a retry on another worker
  resumes; models come from the registry and the default encoder from the
  worker's own cache (converted there on first use), never from a driver path;
- a task whose worker process dies is retried by Ray (``max_retries``, bounded);
  the retry finds the dead attempt's claim still fresh and comes back (outcome
  None) until the claim goes stale, then takes it over (the lost attempt's MLflow
  run is marked FAILED) and resumes from the uploaded checkpoint.

Workers get the driver's tracking URI, claims database and claim timeout through
Ray's ``runtime_env``; xstilts itself must be installed on every node. Ray is
imported only here, so the in-process default needs no Ray.
"""
from __future__ import annotations

import logging
import os
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from xstilts.errors import XstiltsError
from xstilts.grid.executor import JobDone
from xstilts.grid.jobs import JobContext
from xstilts.grid.plan import Plan

log = logging.getLogger(__name__)
FORWARDED_ENV = ("HF_HUB_OFFLINE", "XSTILTS_DATA_DIR", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD",
                 "MLFLOW_S3_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")


@dataclass
class RaySettings:
    """How jobs run on Ray: where the cluster is, retries after worker loss, resources."""

    address: str | None = None      # None: RAY_ADDRESS, else a local Ray; "auto"; HOST:PORT; ray://HOST:PORT
    max_retries: int = 3            # Ray retries of a task whose worker died (then the grid fails)
    cpus_per_job: int = 1
    gpus_per_job: float = 0.0       # for training and tuning tasks
    poll_seconds: float = 2.0       # before asking again for a job another live worker holds


def store_settings() -> tuple[str, str, float]:
    """(tracking URI, claims URL, claim timeout) of this process's environment, each checked
    reachable (one error line each, before anything is submitted)."""
    from xstilts.grid.preflight import check_database, check_tracking_uri
    from xstilts.tracking.claims import DEFAULT_TIMEOUT_S, claims_url_for
    from xstilts.tracking.store import default_tracking_uri

    uri = os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()
    check_tracking_uri(uri)
    claims = claims_url_for(uri)
    check_database(claims, "job claims database")
    return uri, claims, float(os.environ.get("XSTILTS_CLAIM_TIMEOUT", DEFAULT_TIMEOUT_S))


def worker_env(uri: str, claims: str, timeout: float) -> dict[str, str]:
    """What a worker needs to reach the same store and claims (sent through ``runtime_env``)."""
    env = {"MLFLOW_TRACKING_URI": uri, "XSTILTS_CLAIMS_URL": claims, "XSTILTS_CLAIM_TIMEOUT": str(timeout),
           "TOKENIZERS_PARALLELISM": "false"}
    return env | {k: os.environ[k] for k in FORWARDED_ENV if k in os.environ}


def prepare(settings: RaySettings) -> dict[str, float]:
    """Check the store, claims and cluster, and connect; the cluster's resources."""
    return connect(settings, worker_env(*store_settings()))


def grid_executor(settings: RaySettings, threads: int):
    """The ``executor`` argument of :func:`xstilts.grid.runner.run_grid` (after :func:`prepare`)."""
    def make(ctx: JobContext, on_done=None) -> RayExecutor:
        return RayExecutor(ctx, settings, threads=threads, on_done=on_done)

    return make


def connect(settings: RaySettings, env: dict[str, str]) -> dict[str, float]:
    """Join (or start) the Ray cluster; its total resources. One error line when none answers."""
    from xstilts.grid.preflight import check_ray_address

    check_ray_address(settings.address)
    try:
        import ray
    except ImportError:
        raise XstiltsError("--executor ray needs Ray: pip install 'xstilts[scale]'") from None
    if ray.is_initialized():
        ray.shutdown()
    try:
        ray.init(address=settings.address, runtime_env={"env_vars": env}, log_to_driver=False,
                 logging_level=logging.WARNING)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise XstiltsError(f"Ray cluster {settings.address or '(local)'}: {str(exc).strip().splitlines()[0]}") \
            from None
    return ray.cluster_resources()


# -- on the worker ----------------------------------------------------------------------------

@dataclass(frozen=True)
class WorkerSpec:
    experiment_id: str
    parent_run_id: str | None
    threads: int
    poll_seconds: float


_STORES: dict[str, Any] = {}


def _worker_store(experiment_id: str):
    """The run store of this worker process (opened once: Ray reuses worker processes)."""
    from xstilts.tracking.store import RunStore

    if experiment_id not in _STORES:
        base = RunStore.open()
        _STORES[experiment_id] = RunStore(base.tracking_uri, experiment_id, claim_timeout=base.claim_timeout)
    return _STORES[experiment_id]


def run_job_on_worker(job, needed: dict[str, Any], spec: WorkerSpec) -> tuple[Any, dict]:
    """One job in a Ray worker: (outcome or None when another live worker holds it, timing)."""
    from xstilts.grid.checkpoint_sync import ArtifactCheckpoints
    from xstilts.runtime.cpu import set_threads

    started = time.time()
    set_threads(spec.threads)
    store = _worker_store(spec.experiment_id)
    with tempfile.TemporaryDirectory(prefix="xstilts-job-") as tmp:
        ctx = JobContext(store, parent_run_id=spec.parent_run_id, checkpoint_root=Path(tmp) / "checkpoints",
                         eval_dir=Path(tmp) / "evaluations", progress=False, poll_seconds=spec.poll_seconds,
                         checkpoint_sync=ArtifactCheckpoints(store))
        outcome = job.run(ctx, needed)
    return outcome, {"started": started, "finished": time.time(), "pid": os.getpid(), "host": socket.gethostname()}


# -- on the driver ----------------------------------------------------------------------------

@dataclass
class _Running:
    job: Any
    submitted: float


@dataclass
class RayExecutor:
    """Submits every job of a plan to Ray in dependency order; outcomes by job id."""

    ctx: JobContext
    settings: RaySettings = field(default_factory=RaySettings)
    threads: int = 1
    on_done: Any | None = None
    timings: list[dict] = field(default_factory=list)  # per finished job: submitted, started, finished

    def run(self, plan: Plan) -> dict[str, Any]:
        """Every job's outcome by id: submit what is ready, wait for any task, record or defer
        its outcome; a job error fails the grid after the other tasks are cancelled."""
        import ray

        remote = ray.remote(run_job_on_worker)
        spec = WorkerSpec(self.ctx.store.experiment_id, self.ctx.parent_run_id, self.threads,
                          self.settings.poll_seconds)
        outcomes: dict[str, Any] = {}
        pending, running, deferred = list(plan.jobs.values()), {}, []
        start = time.perf_counter()
        try:
            self._loop(plan, remote, spec, outcomes, pending, running, deferred, start)
        except BaseException:
            self._cancel(running)  # Ctrl-C or a job error: stop the rest (their runs end FAILED)
            raise
        return outcomes

    def _loop(self, plan, remote, spec, outcomes, pending, running, deferred, start) -> None:
        """Long because it is the driver's whole event loop (see :meth:`run`)."""
        import ray

        while pending or running or deferred:
            now = time.monotonic()
            ready = [j for j in pending if all(d in outcomes for d in j.needs)]
            ready += [j for j, at in deferred if at <= now]
            deferred = [(j, at) for j, at in deferred if at > now]
            for job in ready:
                if job in pending:
                    pending.remove(job)
                ref = remote.options(**self._resources(job)).remote(job, {d: outcomes[d] for d in job.needs}, spec)
                running[ref] = _Running(job, time.time())
            if not running:
                time.sleep(self.settings.poll_seconds / 4)
                continue
            done, _ = ray.wait(list(running), num_returns=1, timeout=self.settings.poll_seconds)
            for ref in done:
                task = running.pop(ref)
                try:
                    outcome, timing = ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - translated into the job's own error
                    raise _job_error(task.job, exc, self.settings.max_retries) from None
                if outcome is None:  # another live worker holds its claim: ask again later
                    deferred.append((task.job, time.monotonic() + self.settings.poll_seconds))
                    continue
                outcomes[task.job.id] = outcome
                self._record(task, timing, outcome, len(outcomes), len(plan.jobs), time.perf_counter() - start)

    def _resources(self, job) -> dict:
        from xstilts.grid.jobs import EvalJob

        gpus = 0.0 if isinstance(job, EvalJob) else self.settings.gpus_per_job
        return {"num_cpus": self.settings.cpus_per_job, "num_gpus": gpus, "max_retries": self.settings.max_retries,
                "retry_exceptions": False, "name": f"xstilts:{job.label or job.id}"[:100]}

    def _record(self, task: _Running, timing: dict, outcome, done: int, total: int, elapsed: float) -> None:
        finished = time.time()
        self.timings.append({"job": task.job.id, "kind": type(task.job).__name__, "submitted": task.submitted,
                             "started": timing["started"], "worker_finished": timing["finished"],
                             "collected": finished, "pid": timing["pid"], "host": timing["host"],
                             "reused": bool(getattr(outcome, "reused", False))})
        logging.getLogger("xstilts.progress").info(
            "%s ran on worker %s:%d (queued %.1f s after submission)", task.job.label or task.job.id, timing["host"],
            timing["pid"], timing["started"] - task.submitted)
        if self.on_done is not None:
            self.on_done(JobDone(task.job, outcome, timing["finished"] - timing["started"], done, total, elapsed))

    @staticmethod
    def _cancel(running: dict) -> None:
        import ray

        for ref in running:
            ray.cancel(ref)  # KeyboardInterrupt in the task: its MLflow run ends FAILED, its claim is released


def _job_error(job, exc: BaseException, retries: int) -> BaseException:
    """The job's own error (a user error stays one line), or why its worker is gone."""
    import ray

    if isinstance(exc, ray.exceptions.RayTaskError):
        cause = exc.cause
        return cause if isinstance(cause, BaseException) else exc
    if isinstance(exc, (ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                        ray.exceptions.RaySystemError)):
        return XstiltsError(f"job {job.label or job.id}: its Ray worker died {retries + 1} times "
                            f"(--max-retries {retries}); last: {type(exc).__name__}")
    return exc
