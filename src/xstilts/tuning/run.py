"""One tuning request from config to best values: the study, its MLflow parent run, the plots.

:func:`tune_target` is what ``xstilts tune`` and a grid's tuning job call. It
refuses leaking data before anything trains (tuning on English dev is a ``tuning``
use of that split, which no evaluation in the same experiment may share), opens
the study (a finished one is reused: no trial runs), runs the missing trials and
records the outcome on the study's parent run: best values as params, counts,
and PNG plots.
"""
from __future__ import annotations

import logging

from xstilts.config import PhaseConfig
from xstilts.tuning.config import TuningConfig, study_key, study_name_for
from xstilts.tuning.study import (TrialContext, TuneOutcome, load_study, make_objective, optimize,
                                  trial_config, trial_counts, tuning_uses)

log = logging.getLogger(__name__)


def study_identity(tuning: TuningConfig, base: PhaseConfig) -> tuple[str, str]:
    """(study name, study key) of tuning ``base``'s task under ``tuning``."""
    task = base.tasks[0].task
    key = study_key(tuning, task, trial_config(base, {}).run_key())
    return study_name_for(tuning, task, base.condition, key), key


def check_request(tuning: TuningConfig, base: PhaseConfig, evaluation_uses=()) -> None:
    """Everything that can be refused before training: config, space, leakage, storage."""
    from xstilts.data.leakage import check_no_leakage
    from xstilts.tuning.study import open_storage

    tuning.validate()
    tuning.space_for(base.tasks[0].task)
    trial_config(base, {}).validate()
    check_no_leakage([*base.split_uses(), *tuning_uses(base), *evaluation_uses])
    open_storage(tuning)


def tune_target(store, tuning: TuningConfig, base: PhaseConfig, *, init_dir: str | None = None,
                parent_run_id: str | None = None, progress: bool = False, pruner=None,
                evaluation_uses=()) -> TuneOutcome:
    """Tune ``base`` (a target config; its ``init_from`` resolved) up to ``tuning.n_trials``
    finished trials; the best values. ``pruner`` overrides the configured one (tests)."""
    check_request(tuning, base, evaluation_uses)
    name, key = study_identity(tuning, base)
    study = load_study(tuning, name, pruner=pruner)
    study.set_user_attr("study_key", key)
    task = base.tasks[0].task
    run_id = store.study_run(name, {"tuning.study_key": key, "task": task, "condition": base.condition,
                                    "tuning.storage": _safe_url(tuning.storage_url())}, parent_id=parent_run_id)
    _log_request(store, run_id, tuning, base)
    ctx = TrialContext(store, run_id, name, base, tuning.space_for(task), init_dir=init_dir, progress=progress)
    ran = optimize(study, make_objective(ctx), store, n_trials=tuning.n_trials, timeout=tuning.timeout)
    outcome = summarize(study, name, tuning, run_id, ran)
    _record(store, study, outcome)
    log.info("study %s: %d complete, %d pruned, %d failed; best %s", name, outcome.complete, outcome.pruned,
             outcome.failed, outcome.best_params)
    return outcome


def summarize(study, name: str, tuning: TuningConfig, run_id: str | None, ran: int) -> TuneOutcome:
    from xstilts.errors import XstiltsError

    c = trial_counts(study)
    if c["complete"] == 0:
        raise XstiltsError(f"study {name}: no trial completed ({c['pruned']} pruned, {c['fail']} failed); "
                           f"nothing to train with (raise n_trials or relax the pruner)")
    best = study.best_trial
    return TuneOutcome(name, _safe_url(tuning.storage_url()), dict(best.params), float(best.value), c["complete"],
                       c["pruned"], c["fail"], reused=ran == 0, parent_run_id=run_id, trials_run=ran, counts=c)


def _log_request(store, run_id: str, tuning: TuningConfig, base: PhaseConfig) -> None:
    from xstilts.tuning.space import space_to_dict

    store.log_study_request(run_id, {"n_trials": tuning.n_trials, "pruner": tuning.pruner, "scope": tuning.scope,
                                     "sampler_seed": tuning.sampler_seed},
                            {"space": space_to_dict(tuning.space_for(base.tasks[0].task)),
                             "base_config": base.to_dict()})


def _record(store, study, outcome: TuneOutcome) -> None:
    """Best values and counts on the parent run, the plots as its artifacts."""
    import tempfile

    from xstilts.tuning.plots import write_plots

    best = study.best_trial
    with tempfile.TemporaryDirectory(prefix="xstilts-plots-") as tmp:
        plots = write_plots(study, tmp)
        store.finish_study_run(outcome.parent_run_id, best_params=outcome.best_params, best_value=outcome.best_value,
                               best_trial=best.number, counts=outcome.counts, plots=plots)


def _safe_url(url: str) -> str:
    """The storage URL without a password (it goes into tags and reports)."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001
        return url.split("@")[-1]
