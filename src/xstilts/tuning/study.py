"""Running a study: Optuna RDB storage, the objective, and the loop that ends at N trials.

The objective is the **English dev score** of the target task (strict zero-shot:
trials see English training and English dev data only), measured by the same work
function a training job uses (:func:`xstilts.training.phase.train_phase`). Its
``on_evaluation`` hook reports each dev score to the trial and stops training when
the pruner says so; the trial then raises :class:`optuna.TrialPruned`.

The study lives in an RDB storage (default ``sqlite:///./optuna.db``), so several
processes share it and a rerun continues it. Running trials send heartbeats; a
trial whose process was killed goes stale, is marked FAILED (its MLflow run too)
and retried with the same parameters. The loop counts finished (complete or
pruned) trials and stops at ``n_trials``. MLflow is reached only through the run
store: one parent run per study, one child run per trial.
"""
from __future__ import annotations

import json
import logging
import tempfile
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from xstilts.config import PhaseConfig
from xstilts.errors import XstiltsError
from xstilts.tuning.config import TuningConfig
from xstilts.tuning.space import ParamSpec, apply_params

log = logging.getLogger(__name__)
OBJECTIVE_METRIC = "tuning.dev_score"


@dataclass
class TuneOutcome:
    """What a tuning job leaves: the study and its best values (``reused``: no trial ran here)."""

    study_name: str
    storage: str
    best_params: dict[str, Any]
    best_value: float | None
    complete: int
    pruned: int
    failed: int
    reused: bool
    parent_run_id: str | None = None
    trials_run: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def tags(self) -> dict[str, str]:
        """Tags of a training run that used these values."""
        return {"tuning.study": self.study_name, "tuning.params": json.dumps(self.best_params, sort_keys=True)}


# -- storage and study -----------------------------------------------------------------------

def open_storage(tuning: TuningConfig):
    """The study's RDB storage with heartbeats and retry of killed trials; one clear error
    line when the URL cannot be reached (before anything trains)."""
    import optuna

    url = tuning.storage_url()
    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite:") else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=tuning.max_retry)
        for attempt in range(3):
            try:
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=kwargs, heartbeat_interval=tuning.heartbeat_interval,
                    grace_period=tuning.grace_period, heartbeat_stale_trial_callback=retry)
            except Exception as exc:  # noqa: BLE001 - any driver's error means the same to the user
                if attempt < 2 and "already exists" in str(exc):  # two processes creating one SQLite file
                    time.sleep(0.5)
                    continue
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise XstiltsError(f"tuning storage {url} cannot be opened: {first}") from None
    raise AssertionError("unreachable")


def build_pruner(tuning: TuningConfig):
    import optuna

    if tuning.pruner == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=tuning.n_startup_trials, n_warmup_steps=0)
    if tuning.pruner == "successive_halving":
        return optuna.pruners.SuccessiveHalvingPruner()
    if tuning.pruner == "hyperband":
        return optuna.pruners.HyperbandPruner()
    return optuna.pruners.NopPruner()


def load_study(tuning: TuningConfig, name: str, *, pruner=None):
    """Create or load study ``name`` (maximising the English dev score)."""
    import optuna

    storage = open_storage(tuning)
    sampler = optuna.samplers.TPESampler(seed=tuning.sampler_seed, n_startup_trials=min(10, tuning.n_trials))
    return optuna.create_study(storage=storage, study_name=name, direction="maximize", load_if_exists=True,
                               sampler=sampler, pruner=pruner or build_pruner(tuning))


# -- trials ----------------------------------------------------------------------------------

def trial_config(base: PhaseConfig, params: dict[str, Any]) -> PhaseConfig:
    """The config one trial trains: the tuned values, English dev selection, nothing registered."""
    tasks = [replace(t, dev_languages=["en"]) for t in base.tasks]
    return replace(base, training=apply_params(base.training, params), tasks=tasks, register=False,
                   selection="english_dev")


def tuning_uses(base: PhaseConfig):
    """The data the study tunes on (the leakage validator's ``tuning`` role): English dev."""
    from xstilts.data.leakage import SplitUse

    return [SplitUse(t.task, t.dev_split, ("en",), "tuning") for t in base.tasks]


@dataclass
class TrialContext:
    store: Any                              # xstilts.tracking.store.RunStore
    parent_run_id: str
    study_name: str
    base: PhaseConfig
    space: dict[str, ParamSpec]
    init_dir: str | None = None
    progress: bool = False


def make_objective(ctx: TrialContext) -> Callable:
    """The Optuna objective: train one trial config in its own child run, report every dev
    score (pruning), return the selected English dev score."""
    import optuna

    def objective(trial) -> float:
        params = {name: spec.suggest(trial, name) for name, spec in ctx.space.items()}
        run = ctx.store.start_trial_run(ctx.parent_run_id, ctx.study_name, trial.number, params)
        trial.set_user_attr("mlflow_run_id", run.run_id)
        state = {"pruned": False}

        def on_evaluation(step: int, score: float) -> bool:
            run.log_metrics({OBJECTIVE_METRIC: score}, step=step)
            trial.report(score, step)
            state["pruned"] = trial.should_prune()
            return state["pruned"]

        try:
            with tempfile.TemporaryDirectory(prefix="xstilts-trial-") as tmp:
                result = _train_trial(ctx, trial_config(ctx.base, params), run, Path(tmp), on_evaluation)
        except BaseException:
            ctx.store.end_trial_run(run.run_id, "failed")
            raise
        if state["pruned"]:
            ctx.store.end_trial_run(run.run_id, "pruned")
            raise optuna.TrialPruned(f"trial {trial.number} pruned at step {result.loop.steps}")
        value = float(result.loop.best_score)
        run.log_metrics({"tuning.objective": value})
        ctx.store.end_trial_run(run.run_id, "complete")
        return value

    return objective


def _train_trial(ctx: TrialContext, cfg: PhaseConfig, run, tmp: Path, on_evaluation):
    from xstilts.training.phase import train_phase

    return train_phase(cfg, run, model_dir=tmp / "model", checkpoint_dir=None, init_dir=ctx.init_dir,
                       progress=ctx.progress, on_evaluation=on_evaluation)


# -- the loop --------------------------------------------------------------------------------

def trial_counts(study) -> dict[str, int]:
    from optuna.trial import TrialState

    counts = {s.name.lower(): 0 for s in TrialState}
    for t in study.get_trials(deepcopy=False):
        counts[t.state.name.lower()] += 1
    return counts


def reap_dead_trials(study, store) -> list[str]:
    """Fail trials whose heartbeat went stale (they are retried) and end their MLflow runs FAILED."""
    import optuna
    from optuna.trial import TrialState

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        optuna.storages.fail_stale_trials(study)
    run_ids = [t.user_attrs["mlflow_run_id"] for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
               if "mlflow_run_id" in t.user_attrs]
    return store.fail_trial_runs(run_ids)


def optimize(study, objective: Callable, store, *, n_trials: int, timeout: float | None = None,
             poll_seconds: float = 2.0) -> int:
    """Run trials until the study has ``n_trials`` finished (complete or pruned) ones, or
    ``timeout`` seconds passed; trials other live workers are running count as on their
    way (wait for them rather than overshoot). The number of trials this call ran."""
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    start, ran = time.monotonic(), 0
    stop_at = MaxTrialsCallback(n_trials, states=(TrialState.COMPLETE, TrialState.PRUNED))
    while True:
        reap_dead_trials(study, store)
        c = trial_counts(study)
        done = c["complete"] + c["pruned"]
        if done >= n_trials or (timeout is not None and time.monotonic() - start >= timeout):
            return ran
        if done + c["running"] >= n_trials:
            time.sleep(poll_seconds)
            continue
        study.optimize(objective, n_trials=1, callbacks=[stop_at])
        ran += 1
