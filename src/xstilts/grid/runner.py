"""Run a grid: every (seed, condition) intermediate model once, every target on top of it,
zero-shot evaluation on every language, one tidy results table, and the report.

Finished work is found, not redone: trained models through the registry (same
config and seed -> same ``run_key``), evaluations through result files keyed by
model, task, split, languages and sizes. Rerunning after a crash, or after adding
seeds or targets to the config, does only what is missing.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from xstilts.grid.config import GridConfig, TargetGrid

log = logging.getLogger(__name__)

RESULT_COLUMNS = ["task", "language", "resource_group", "condition", "seed", "intermediate_spec",
                  "selection_policy", "metric", "value", "model_version", "run_id"]


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


def _eval_key(model_ref: str, target: TargetGrid, split: str, langs: tuple[str, ...], layers) -> str:
    blob = json.dumps({"model": model_ref, "task": target.task, "split": split, "langs": langs,
                       "max": target.max_eval_examples, "layers": layers}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _evaluate_cached(out: Path, model_ref: str, target: TargetGrid, plan, cfg: GridConfig,
                     progress: bool) -> tuple[dict, bool]:
    """Per-language scores of ``model_ref`` on the target (from the cache file when done before).

    The evaluation's MLflow run is a child of the run that trained the model
    (bare encoders get a top-level run).
    """
    from xstilts.evaluation.runner import evaluate_model

    key = _eval_key(model_ref, target, plan.split, plan.langs, cfg.num_hidden_layers)
    path = out / "evaluations" / f"{target.task}-{key}.json"
    if path.is_file():
        return json.loads(path.read_text()), True
    report = evaluate_model(model_ref, target.task, langs=list(plan.langs), split=plan.split,
                            max_examples=target.max_eval_examples, out_dir=out / "evaluations" / key,
                            progress=progress)
    record = {"model": model_ref, "task": target.task, "split": report.split, "metric": report.metric,
              "run_id": report.run_id, "languages": {r.lang: r.scores for r in report.languages}}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2))
    tmp.replace(path)  # written only once complete: a crash leaves no half result
    return record, False


def run_grid(cfg: GridConfig, *, progress: bool = True) -> GridResult:
    import mlflow
    import pandas as pd
    from tqdm.auto import tqdm

    from xstilts.analysis.resource_groups import read_class_mapping, resource_group
    from xstilts.grid.plan import (check_grid_leakage, eval_plan, intermediate_config, intermediate_spec,
                                   is_retrieval, target_config)
    from xstilts.runtime.cpu import set_threads
    from xstilts.tracking.setup import configure_tracking
    from xstilts.training.phase import run_phase

    t0 = time.perf_counter()
    cfg.validate()
    check_grid_leakage(cfg)
    set_threads(cfg.threads)
    configure_tracking(cfg.experiment)
    mapping = read_class_mapping(cfg.resource_groups) if cfg.resource_groups else None
    out = Path(cfg.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    plans = {t.task: eval_plan(t) for t in cfg.targets}
    cells = [(seed, condition) for seed in cfg.seeds for condition in cfg.conditions]
    rows: list[dict] = []
    result = GridResult("", out / "results.csv", out / "results.parquet", None, 0.0)
    # The grid's run is not held active while cells run: phase and evaluation runs
    # name it as parent by tag, so nothing depends on MLflow's active-run stack.
    import os

    client = mlflow.MlflowClient()
    grid_tags = {"kind": "grid", "grid_hash": cfg.grid_hash(), "grid_name": cfg.name}
    if os.environ.get("MLFLOW_RUN_ID"):
        # Under `mlflow run` the entry point's run is the grid's run; the variable is
        # dropped so that the cells' runs become its children instead of resuming it.
        parent_id = os.environ.pop("MLFLOW_RUN_ID")
        cfg.experiment = client.get_experiment(client.get_run(parent_id).info.experiment_id).name
        for k, v in grid_tags.items():
            client.set_tag(parent_id, k, v)
    else:
        exp_id = mlflow.get_experiment_by_name(cfg.experiment).experiment_id
        parent_id = client.create_run(exp_id, run_name=f"grid-{cfg.name}", tags=grid_tags).info.run_id
    result.run_id = parent_id
    status = "FAILED"
    try:
        import yaml

        client.log_text(parent_id, yaml.safe_dump(cfg.to_dict(), sort_keys=False), "grid_config.yaml")
        for k, v in {"seeds": json.dumps(cfg.seeds), "conditions": ",".join(cfg.conditions),
                     "targets": ",".join(t.task for t in cfg.targets), "base_model": cfg.base_model,
                     "intermediate.task": cfg.intermediate.task,
                     "intermediate.size": cfg.intermediate.size}.items():
            client.log_param(parent_id, k, v)
        bar = tqdm(total=len(cells) * (1 + len(cfg.targets)), desc="grid", unit="cell", disable=not progress)
        for seed, condition in cells:
            inter_uri = None
            spec_hash = "none"
            if condition != "none":
                bar.set_postfix_str(f"intermediate {condition} seed {seed}")
                r = run_phase(intermediate_config(cfg, condition, seed), progress=progress, parent_run_id=parent_id)
                inter_uri = r.model_uri
                spec_hash = intermediate_spec(cfg, condition, seed).stable_hash()
                result.reused += r.reused
                result.trained += not r.reused
            bar.update(1)
            for target in cfg.targets:
                bar.set_postfix_str(f"{target.task} {condition} seed {seed}")
                if is_retrieval(target):
                    model_ref, selection = inter_uri or cfg.base_model, "none (encoder)"
                else:
                    tr = run_phase(target_config(cfg, target, condition, seed, inter_uri), progress=progress,
                                   parent_run_id=parent_id)
                    model_ref, selection = tr.model_uri, target.selection
                    result.reused += tr.reused
                    result.trained += not tr.reused
                record, cached = _evaluate_cached(out, model_ref, target, plans[target.task], cfg, progress)
                result.eval_reused += cached
                result.evaluated += not cached
                for lang, scores in record["languages"].items():
                    group = resource_group(lang, mapping=mapping)
                    for metric, value in scores.items():
                        rows.append({"task": target.task, "language": lang, "resource_group": group,
                                     "condition": condition, "seed": seed, "intermediate_spec": spec_hash,
                                     "selection_policy": selection, "metric": metric, "value": float(value),
                                     "model_version": model_ref, "run_id": record.get("run_id") or ""})
                bar.update(1)
        bar.close()
        table = pd.DataFrame(rows, columns=RESULT_COLUMNS)
        table.to_csv(result.table_csv, index=False)
        table.to_parquet(result.table_parquet, index=False)
        client.log_artifact(parent_id, str(result.table_csv), "results")
        client.log_artifact(parent_id, str(result.table_parquet), "results")
        result.rows = len(table)
        result.seconds = time.perf_counter() - t0
        result.report = _report(cfg, table, out, result)
        if result.report is not None:
            client.log_artifacts(parent_id, str(result.report.parent), "report")
        for k, v in {"grid.seconds": result.seconds, "grid.trained": result.trained, "grid.reused": result.reused,
                     "grid.evaluated": result.evaluated, "grid.eval_reused": result.eval_reused}.items():
            client.log_metric(parent_id, k, v)
        status = "FINISHED"
    finally:
        client.set_terminated(parent_id, status=status)
    return result


def _target_note(t: TargetGrid) -> str:
    from xstilts.grid.plan import is_retrieval

    size = f"evaluation on up to {t.max_eval_examples or 'all'} examples per language"
    if is_retrieval(t):
        return f"Target {t.task}: retrieval with the encoder itself (no target training); {size}."
    return (f"Target {t.task}: {t.max_train_examples or 'all'} English training examples, "
            f"{t.training.epochs:g} epochs, selection {t.selection}; {size}.")


def _report(cfg: GridConfig, table, out: Path, result: GridResult) -> Path | None:
    from xstilts.analysis.report import write_report

    conditions = set(table["condition"])
    if not {"en", "multi"} <= conditions or table["seed"].nunique() < 2:
        log.warning("report skipped: it compares multi with en and needs at least 2 seeds")
        return None
    notes = [
        f"Grid `{cfg.name}`: seeds {cfg.seeds}, conditions {cfg.conditions}, encoder {cfg.base_model}"
        + (f" cut to {cfg.num_hidden_layers} layers" if cfg.num_hidden_layers else "") + ".",
        f"Intermediate: {cfg.intermediate.task} {cfg.intermediate.split}, {cfg.intermediate.size} items "
        f"({cfg.intermediate.source_kind}); multi languages: "
        f"{', '.join(cfg.intermediate.languages) or 'all of the task'}; English among them: "
        f"{cfg.intermediate.include_english}.",
        *[_target_note(t) for t in cfg.targets],
        f"Wall time of this grid invocation: {result.seconds / 60:.1f} min "
        f"({result.trained} models trained, {result.reused} reused, {result.evaluated} evaluations run, "
        f"{result.eval_reused} reused).",
    ]
    return write_report(table, out / "report", title=f"xstilts grid: {cfg.name}", notes=notes)
