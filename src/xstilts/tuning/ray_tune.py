"""``xstilts tune --executor ray``: tuning workers as Ray tasks sharing one Optuna study.

Each Ray task is one tuning worker: it runs :func:`xstilts.tuning.commands.run_tune`
(the same call as ``xstilts tune``), which asks the study in the shared RDB storage
for trials until it holds ``n_trials`` finished ones. Trials are thereby spread over
the tasks as they free up (a fast worker runs more), trial numbers come from the
storage, and a task whose worker dies leaves a trial whose heartbeat stops: Optuna
fails it after the grace period and another worker retries its values, while Ray
retries the task itself (bounded by ``max_retries``).

The storage must be one every node reaches: a SQLite file only works when all
workers are on this machine (it is made absolute here so that they open the same
file); use PostgreSQL (``xstilts server start`` prints its URL) on a cluster.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import replace

from xstilts.errors import XstiltsError

log = logging.getLogger(__name__)


def tune_worker(cfg, target, condition: str, threads: int) -> dict:
    """One tuning worker in a Ray task: its outcome and how many trials it ran."""
    from xstilts.runtime.cpu import set_threads
    from xstilts.tracking.store import RunStore
    from xstilts.tuning.commands import run_tune

    started = time.time()
    set_threads(threads)
    store = RunStore.open().for_experiment(cfg.experiment)
    outcome = run_tune(store, cfg, target, condition, progress=False)
    return {"outcome": outcome, "pid": os.getpid(), "started": started, "finished": time.time()}


def tune_on_ray(cfg, target, condition: str, settings, workers: int) -> list[dict]:
    """Run ``workers`` tuning workers as Ray tasks on one study; each one's result."""
    from xstilts.grid.preflight import check_database
    from xstilts.grid.ray_executor import prepare

    if workers < 1:
        raise XstiltsError(f"--workers {workers}: at least 1")
    storage = cfg.tuning.storage_url()  # resolved here: a worker's working directory is not ours
    check_database(storage, "Optuna storage")
    if storage.startswith("sqlite"):
        log.warning("Optuna storage %s is a SQLite file: shared only by workers on this machine", storage)
    cfg.tuning = replace(cfg.tuning, storage=storage)
    prepare(settings)
    import ray

    remote = ray.remote(tune_worker).options(num_cpus=settings.cpus_per_job, num_gpus=settings.gpus_per_job,
                                             max_retries=settings.max_retries, retry_exceptions=False)
    refs = [remote.remote(cfg, target, condition, settings.cpus_per_job) for _ in range(workers)]
    try:
        return ray.get(refs)
    except ray.exceptions.RayTaskError as exc:
        raise (exc.cause if isinstance(exc.cause, BaseException) else exc) from None
