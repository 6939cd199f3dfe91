"""``xstilts tune``: one Optuna study for one target task (and condition) of a grid config."""
from __future__ import annotations

import contextlib
import os

import click

from xstilts.errors import XstiltsError
from xstilts.runtime.cpu import THREADS_HELP
from xstilts.runtime.device import DEVICE_HELP


@click.command("tune")
@click.option("--task", required=True, help="Target task to tune (its English training data and English dev "
              "score; e.g. panx). Taken from the config's targets, or with the target defaults if absent.")
@click.option("--condition", default="none", show_default=True,
              help="Which model the trials start from: none (the bare encoder) or an intermediate condition "
                   "(en, multi, en+mlm), whose first-seed intermediate model is trained or reused first.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False), default=None,
              help="Grid YAML giving the encoder, the target's data sizes and training values, and the "
                   "tuning: section (space, pruner, storage, ...) (default: configs/tuned.yaml).")
@click.option("--n-trials", type=int, default=None, help="Finished (complete or pruned) trials the study ends "
              "with; a rerun continues up to this many (default: the config's tuning.n_trials, else 20).")
@click.option("--timeout", type=float, default=None,
              help="Seconds this invocation may start new trials for (a running trial is finished).")
@click.option("--storage", default=None, help="Optuna storage URL, any SQLAlchemy database "
              "(default: the config's, else sqlite:///optuna.db in the working directory).")
@click.option("--study-name", default=None, help="Study name (default: derived from a hash of the request, so "
              "the same request continues or reuses the same study).")
@click.option("--threads", type=int, default=None, help=THREADS_HELP)
@click.option("--device", default=None, help=DEVICE_HELP + " Default: the config's device (auto).")
@click.option("--no-progress", is_flag=True, help="No progress bars.")
@click.option("--executor", type=click.Choice(["inprocess", "ray"]), default="inprocess", show_default=True,
              help="ray: --workers tuning workers as Ray tasks sharing the study (pip install 'xstilts[scale]').")
@click.option("--address", default=None, help="Ray cluster: auto, HOST:PORT or ray://HOST:PORT "
              "(default: RAY_ADDRESS, else a Ray started on this machine).")
@click.option("--workers", type=int, default=2, show_default=True, help="Ray: tuning workers (tasks).")
@click.option("--max-retries", type=int, default=3, show_default=True,
              help="Ray: retries of a tuning task whose worker died.")
@click.option("--gpus-per-job", type=float, default=0.0, show_default=True, help="Ray: GPUs per tuning worker.")
def tune_command(task, condition, config_file, n_trials, timeout, storage, study_name, threads, device,
                 no_progress, executor, address, workers, max_retries, gpus_per_job):
    """Tune TASK's training hyperparameters with Optuna, tracked in MLflow.

    The objective is the English dev score (strict zero-shot: no target-language
    data); trials report every dev evaluation and the pruner stops poor ones early.
    Several processes started with the same storage share the study; a killed
    trial is failed after its heartbeat's grace period and retried. MLflow: one
    run per study (best values, plots) with one child run per trial. A grid with
    the same config and tuning enabled reuses the finished study.
    """
    from xstilts.runtime.cpu import set_threads
    from xstilts.tracking.store import RunStore

    storage = storage or os.environ.get("XSTILTS_OPTUNA_STORAGE")  # set by `xstilts server start`
    cfg, target = _request(task, condition, config_file, n_trials, timeout, storage, study_name, threads, device)
    if executor == "ray":
        return _tune_on_ray(cfg, target, condition, address, workers, max_retries, gpus_per_job)
    set_threads(cfg.threads)
    store = RunStore.open().for_experiment(cfg.experiment)
    outcome = run_tune(store, cfg, target, condition, progress=not no_progress)
    verb = "reused (finished before)" if outcome.reused else f"{outcome.trials_run} trials run"
    click.echo(f"study {outcome.study_name} ({outcome.storage}): {verb}; {outcome.complete} complete, "
               f"{outcome.pruned} pruned, {outcome.failed} failed")
    click.echo(f"best English dev score {outcome.best_value:.2f} with " +
               ", ".join(f"{k}={v}" for k, v in outcome.best_params.items()))
    click.echo(f"MLflow run {outcome.parent_run_id}")


def _tune_on_ray(cfg, target, condition, address, workers, max_retries, gpus_per_job) -> None:
    from xstilts.grid.ray_executor import RaySettings
    from xstilts.tuning.ray_tune import tune_on_ray

    settings = RaySettings(address=address, max_retries=max_retries, cpus_per_job=max(1, cfg.threads),
                           gpus_per_job=gpus_per_job)
    results = tune_on_ray(cfg, target, condition, settings, workers)
    for i, r in enumerate(results):
        click.echo(f"worker {i} (pid {r['pid']}): {r['outcome'].trials_run} trials run")
    outcome = max(results, key=lambda r: r["finished"])["outcome"]  # the last to finish saw every trial
    click.echo(f"study {outcome.study_name} ({outcome.storage}): {outcome.complete} complete, "
               f"{outcome.pruned} pruned, {outcome.failed} failed")
    click.echo(f"best English dev score {outcome.best_value:.2f} with " +
               ", ".join(f"{k}={v}" for k, v in outcome.best_params.items()))
    click.echo(f"MLflow run {outcome.parent_run_id}")


def _request(task, condition, config_file, n_trials, timeout, storage, study_name, threads, device=None):
    """The grid config (one target, tuning enabled, flags applied) and its target."""
    from dataclasses import replace

    from xstilts.config import CONDITIONS
    from xstilts.grid.config import GridConfig, TargetGrid
    from xstilts.paths import repo_root
    from xstilts.tuning.config import TuningConfig

    path = config_file or str(repo_root() / "configs" / "tuned.yaml")
    cfg = GridConfig.from_file(path)
    if condition not in CONDITIONS:
        raise XstiltsError(f"--condition {condition!r}; valid: {', '.join(CONDITIONS)}")
    target = next((t for t in cfg.targets if t.task == task), None) or TargetGrid(task=task)
    flags = {"n_trials": n_trials, "timeout": timeout, "storage": storage, "study_name": study_name}
    tuning = replace(cfg.tuning or TuningConfig(), enabled=True,
                     scope="per_condition" if condition != "none" else (cfg.tuning or TuningConfig()).scope,
                     **{k: v for k, v in flags.items() if v is not None})
    cfg.tuning, cfg.targets = tuning, [target]
    if condition not in ("none", *cfg.conditions):
        cfg.conditions = [*cfg.conditions, condition]
    if threads is not None:
        cfg.threads = threads
    if device is not None:
        cfg.device = device
    cfg.validate(source=path)
    return cfg, target


def run_tune(store, cfg, target, condition: str, *, progress: bool = True):
    """Train or reuse the intermediate model the trials start from, then tune (a TuneOutcome)."""
    from xstilts.data.leakage import SplitUse
    from xstilts.grid.jobs import JobContext, run_train
    from xstilts.grid.plan import eval_plan, intermediate_config, is_retrieval, target_config
    from xstilts.tuning.run import tune_target

    if is_retrieval(target):
        raise XstiltsError(f"--task {target.task}: scored with the encoder itself, no training values to tune")
    plan = eval_plan(target)
    evaluation = [SplitUse(plan.task, plan.split, plan.langs, "evaluation")]
    launch = store.take_launch_run()  # under `mlflow run`: the study's run nests in it (when it is new)
    if launch:
        store.label_run(launch, f"tune-{target.task}-{condition}",
                        {"kind": "tuning-launch", "task": target.task, "condition": condition})
    init_from = init_dir = None
    with contextlib.ExitStack() as scope:  # a downloaded intermediate model lives as long as the study
        if condition != "none":
            inter = run_train(JobContext.create(store, progress=progress),
                              intermediate_config(cfg, condition, cfg.seeds[0]), wait=True)
            init_from, init_dir = inter.model_uri, str(scope.enter_context(store.fetched(inter.model_uri)))
        base = target_config(cfg, target, condition, cfg.seeds[0], init_from)
        outcome = tune_target(store, cfg.tuning, base, init_dir=init_dir, progress=progress,
                              evaluation_uses=evaluation, parent_run_id=launch)
    if launch:  # a study reused or continued keeps its first parent: these tags lead the way to it
        store.label_run(launch, None, {"tuning.study": outcome.study_name, "tuning.study_run": outcome.parent_run_id},
                        metrics={"best.dev_score": outcome.best_value})
    return outcome
