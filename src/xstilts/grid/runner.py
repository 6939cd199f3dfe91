"""Run a grid: plan -> execute -> collect -> analyse.

The plan (:mod:`xstilts.grid.plan`) holds every training and evaluation job with
its dependencies; the executor runs them (:mod:`xstilts.grid.executor`); the run
store finds what is done already (trained models through the registry,
evaluations through their complete key) and claims the rest, so a rerun after a
crash, a config extension, or a second process on the same grid does only what
is missing. Each finished evaluation's scores are in its MLflow run as soon as
it ends; the table is collected from those records, checked against the
analysis schema, and analysed.
"""
from __future__ import annotations

import json
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from xstilts.analysis.schema import RESULT_COLUMNS
from xstilts.grid.config import GridConfig, TargetGrid

log = logging.getLogger(__name__)


@dataclass
class GridResult:
    run_id: str
    table_csv: Path
    table_parquet: Path
    report: Path | None
    seconds: float
    trained: int = 0
    reused: int = 0
    evaluated: int = 0
    eval_reused: int = 0
    rows: int = 0
    counts: dict = field(default_factory=dict)
    tuned: dict = field(default_factory=dict)  # tuning job id -> TuneOutcome (grids with tuning)
    timings: dict = field(default_factory=dict)  # seconds per category (xstilts.runtime.timing)
    timing_table: str = ""                        # the same as a markdown table
    ui_url: str = ""  # the grid's runs table in the MLflow UI


def run_grid(cfg: GridConfig, *, progress: bool = True, store=None, executor=None) -> GridResult:
    """Run every job of ``cfg``'s plan, then write and log the table and the report.

    ``executor(ctx, on_done)`` makes the executor (default: in this process; see
    :mod:`xstilts.grid.ray_executor` for a cluster)."""
    from xstilts.grid.browse import ui_url
    from xstilts.grid.plan import check_grid_leakage, plan_grid
    from xstilts.runtime.cpu import set_threads
    from xstilts.runtime.timing import Timings
    from xstilts.tracking.store import RunStore

    t0 = time.perf_counter()
    timings = Timings()
    cfg.validate()
    check_grid_leakage(cfg)
    set_threads(cfg.threads)
    if executor is None:  # jobs run here: a device this machine lacks fails now, before any job
        from xstilts.runtime.device import resolve_device

        resolve_device(cfg.device, "device (grid config or --device)")
    store = (store or RunStore.open()).for_experiment(cfg.experiment).time_with(timings)
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    plan = plan_grid(cfg)
    parent = _start_grid_run(store, cfg)
    held = store.hold_run(parent)
    abandoned = f"tags.kind = 'grid' and tags.grid_hash = '{cfg.grid_hash()}'"
    store.fail_abandoned_runs(abandoned)  # earlier invocations that were killed
    result = GridResult(parent, out / "results.csv", out / "results.parquet", None, 0.0)
    result.ui_url = ui_url(store.tracking_uri, store.experiment_id)
    try:
        outcomes = _execute(store, cfg, plan, parent, out, progress, timings, executor)
        _count(result, plan, outcomes)
        table = collect_table(plan, outcomes, cfg, store=store)
        _write_table(store, parent, table, result)
        result.seconds = time.perf_counter() - t0
        result.report = _report(cfg, plan, table, out, result)
        _log_summary(store, parent, result)
        _log_timings(store, parent, timings, out, result)
        store.fail_abandoned_runs(abandoned)  # and those killed while this one ran
    except BaseException:
        store.end_run(parent, "FAILED")
        raise
    finally:
        if held is not None:
            store.claims.release(held)
    store.end_run(parent, "FINISHED")
    return result


def _start_grid_run(store, cfg: GridConfig) -> str:
    """The grid's parent run (the `mlflow run` one when launched so), with config and params."""
    import yaml

    tags = {"kind": "grid", "grid_hash": cfg.grid_hash(), "grid_name": cfg.name}
    parent = store.start_run(f"grid-{cfg.name}", tags, adopt_launch=True)
    run = _job_run(store, parent)
    run.log_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), "grid_config.yaml")
    run.log_params({"seeds": json.dumps(cfg.seeds), "conditions": ",".join(cfg.conditions),
                    "targets": ",".join(t.task for t in cfg.targets), "base_model": cfg.base_model,
                    "device": cfg.device,
                    **_intermediate_params(cfg)})
    return parent


def _intermediate_params(cfg: GridConfig) -> dict:
    """The intermediate axis as params (a single setting keeps the params grids always had)."""
    inters = cfg.intermediates
    if len(inters) == 1:
        return {"intermediate.task": "+".join(d.task for d in inters[0].data), "intermediate.size": inters[0].size}
    return {"intermediates": ",".join(i.label for i in inters)}


def _job_run(store, run_id: str):
    from xstilts.tracking.store import JobRun

    return JobRun(store, run_id)


def _execute(store, cfg: GridConfig, plan, parent: str, out: Path, progress: bool, timings=None,
             executor=None) -> dict:
    from xstilts.analysis.resource_groups import read_class_mapping
    from xstilts.grid.executor import InProcessExecutor, describe
    from xstilts.grid.heartbeat import Heartbeat
    from xstilts.grid.jobs import JobContext

    progress_log = logging.getLogger("xstilts.progress")  # one line per finished job (see cli.py)
    mapping = read_class_mapping(cfg.resource_groups) if cfg.resource_groups else None

    def on_done(event) -> None:
        progress_log.info(describe(event))
        _log_language_groups(store, event, mapping)

    # models trained here are read back by later jobs from where they were saved, not downloaded
    with tempfile.TemporaryDirectory(prefix="xstilts-grid-models-") as models:
        ctx = JobContext.create(store, parent_run_id=parent, eval_dir=out / "evaluations", progress=progress,
                                timings=timings, models_dir=Path(models), heartbeat=Heartbeat(), device=cfg.device)
        try:
            return (executor or InProcessExecutor)(ctx, on_done=on_done).run(plan)
        finally:
            ctx.heartbeat.close()


def _log_language_groups(store, event, mapping) -> None:
    """Per-resource-group means on a new evaluation's run (a reused one has them already)."""
    from xstilts.grid.browse import group_metrics
    from xstilts.grid.jobs import EvalOutcome

    outcome = event.outcome
    if not isinstance(outcome, EvalOutcome) or outcome.reused or not outcome.run_id:
        return
    metrics, tags = group_metrics(event.job.spec.task, outcome.record["languages"], mapping)
    run = _job_run(store, outcome.run_id)
    run.log_metrics(metrics)
    run.set_tags(tags)


def _count(result: GridResult, plan, outcomes: dict) -> None:
    from xstilts.grid.jobs import EvalJob, TrainJob, TuneJob

    result.tuned = {job_id: outcomes[job_id] for job_id, job in plan.jobs.items() if isinstance(job, TuneJob)}
    for job_id, job in plan.jobs.items():
        reused = bool(outcomes[job_id].reused)
        if isinstance(job, TrainJob):
            result.reused += reused
            result.trained += not reused
        elif isinstance(job, EvalJob):
            result.eval_reused += reused
            result.evaluated += not reused


def collect_table(plan, outcomes: dict, cfg: GridConfig, store=None):
    """The tidy results table: one row per cell x language x metric, checked against the schema.

    ``selection_score`` is the English dev score that selected the cell's target model
    (read from its training run in ``store``; NaN for retrieval cells and without a store)."""
    import pandas as pd

    from xstilts.analysis.resource_groups import read_class_mapping, resource_group
    from xstilts.analysis.schema import validate_results

    mapping = read_class_mapping(cfg.resource_groups) if cfg.resource_groups else None
    rows = []
    for cell in plan.cells:
        outcome = outcomes[cell.eval_job]
        selected = _selection_score(store, outcomes.get(cell.train_job)) if cell.train_job else None
        tuning = _tuning_of(plan, outcomes, cell.eval_job)
        for lang, scores in outcome.record["languages"].items():
            group = resource_group(lang, mapping=mapping)
            for metric, value in scores.items():
                rows.append({"task": cell.task, "language": lang, "resource_group": group,
                             "condition": cell.condition, "intermediate": cell.intermediate, "seed": cell.seed,
                             "intermediate_spec": cell.intermediate_spec, "selection_policy": cell.selection,
                             "metric": metric, "value": float(value), "model_version": outcome.model_ref,
                             "run_id": outcome.run_id,
                             "selection_score": float("nan") if selected is None else float(selected),
                             "tuning": tuning})
    table = pd.DataFrame(rows, columns=list(RESULT_COLUMNS))
    validate_results(table, source=f"grid {cfg.name} results")
    return table


def _tuning_of(plan, outcomes: dict, eval_job: str) -> str:
    """``study {values}`` of each Optuna study whose best values trained a model the cell's
    scores come from (its target, and its intermediate model when that was tuned too),
    joined by ``; ``, intermediate first; ``none`` when no tuned values trained them."""
    studies, job_id = [], eval_job
    while job_id is not None:
        job = plan.jobs[job_id]
        tune_job = getattr(job, "tune_job", None)
        if tune_job is not None and tune_job in outcomes:
            tags = outcomes[tune_job].tags()
            studies.insert(0, f"{tags['tuning.study']} {tags['tuning.params']}")
        job_id = next((n for n in job.needs if n != tune_job), None)
    return "; ".join(studies) or "none"


def _selection_score(store, trained) -> float | None:
    """The English dev score that selected a trained model (None: not selected on dev, or no store)."""
    if store is None or trained is None or not getattr(trained, "run_id", None):
        return None
    return store.run_metric(trained.run_id, "selected.dev_score")


def _write_table(store, parent: str, table, result: GridResult) -> None:
    table.to_csv(result.table_csv, index=False)
    table.to_parquet(result.table_parquet, index=False)
    run = _job_run(store, parent)
    run.log_artifact(result.table_csv, "results")
    run.log_artifact(result.table_parquet, "results")
    result.rows = len(table)


def _log_summary(store, parent: str, result: GridResult) -> None:
    run = _job_run(store, parent)
    if result.report is not None:
        run.log_artifacts(result.report.parent, "report")
    run.log_metrics({"grid.seconds": result.seconds, "grid.trained": result.trained, "grid.reused": result.reused,
                     "grid.evaluated": result.evaluated, "grid.eval_reused": result.eval_reused})


def _log_timings(store, parent: str, timings, out: Path, result: GridResult) -> None:
    """Where this invocation's time went: ``time.*`` metrics and ``timing/`` artifacts on the
    grid's run, ``timing.md`` and ``timing.json`` in the output folder, and in ``result``."""
    wall = timings.wall()  # everything up to here, the summary logging included
    result.timings, result.timing_table = timings.breakdown(wall), timings.table(wall)
    (out / "timing.md").write_text(f"# Where the grid's time went\n\n{result.timing_table}")
    (out / "timing.json").write_text(timings.json(wall))
    run = _job_run(store, parent)
    run.log_metrics(timings.metrics(wall))
    run.log_artifact(out / "timing.md", "timing")
    run.log_artifact(out / "timing.json", "timing")


def _target_note(t: TargetGrid) -> str:
    from xstilts.grid.plan import is_retrieval

    size = f"evaluation on up to {t.max_eval_examples or 'all'} examples per language"
    if is_retrieval(t):
        from xstilts.tasks import get_task

        note = get_task(t.task).family.report_note
        return f"Target {t.task}: retrieval with the encoder itself (no target training); {size}." + (
            f" {note}" if note else "")
    return (f"Target {t.task}: {t.max_train_examples or 'all'} English training examples, "
            f"{t.training.epochs:g} epochs, selection {t.selection}; {size}.")


def _intermediate_note(cfg: GridConfig, inter) -> str:
    """One intermediate setting's data, as the single-intermediate note always read."""
    parts = [f"{d.task} {d.split}{f' (multi: {d.multi_split})' if d.multi_split else ''}, {d.size or 'all'} items "
             f"({d.source_kind}); multi languages: {', '.join(d.languages) or 'all of the task'}; English among "
             f"them: {d.include_english}" for d in inter.data]
    head = "Intermediate" if len(cfg.intermediates) == 1 else f"Intermediate `{inter.label}`"
    mix = f" (mixture, {inter.mixture} sampling)" if len(inter.data) > 1 else ""
    conds = "" if inter.conditions is None else f"; conditions {', '.join(cfg.conditions_of(inter))}"
    return f"{head}{mix}: {' + '.join(parts)}{conds}."


def _tuning_note(job, outcome, scope: str) -> str:
    """Which study chose a phase's training values, what it chose, and the scope (per task or per condition)."""
    values = ", ".join(f"{k} {v:.3g}" if isinstance(v, float) else f"{k} {v}" for k, v in outcome.best_params.items())
    return (f"Tuning {job.subject} (scope {scope}; trials from {job.start}): Optuna study `{outcome.study_name}` "
            f"({outcome.complete} complete, "
            f"{outcome.pruned} pruned trials; best English dev score {outcome.best_value:.1f}) chose {values}; "
            f"its training runs are tagged tuning.study and tuning.params.")


def _report(cfg: GridConfig, plan, table, out: Path, result: GridResult) -> Path | None:
    from xstilts.analysis.report import write_report
    from xstilts.encoders.describe import describe_encoder

    conditions = set(table["condition"])
    if len(cfg.intermediates) > 1:
        if not conditions - {"none"} or table["seed"].nunique() < 2:
            log.warning("report skipped: it compares intermediate settings and needs at least 2 seeds")
            return None
    elif not {"en", "multi"} <= conditions or table["seed"].nunique() < 2:
        log.warning("report skipped: it compares multi with en and needs at least 2 seeds")
        return None
    notes = [
        f"Grid `{cfg.name}`: seeds {cfg.seeds}, conditions {cfg.conditions}, encoder {cfg.base_model}"
        + (f" cut to {cfg.num_hidden_layers} layers" if cfg.num_hidden_layers else "") + ".",
        *[_intermediate_note(cfg, inter) for inter in cfg.intermediates],
        *[_target_note(t) for t in cfg.targets],
        *[_tuning_note(plan.jobs[job_id], o, cfg.tuning.scope) for job_id, o in result.tuned.items()],
        f"Wall time of this grid invocation: {result.seconds / 60:.1f} min "
        f"({result.trained} models trained, {result.reused} reused, {result.evaluated} evaluations run, "
        f"{result.eval_reused} reused).",
    ]
    return write_report(table, out / "report", title=f"xstilts grid: {cfg.name}", notes=notes,
                        encoder=describe_encoder(cfg.base_model))
