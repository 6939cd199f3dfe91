"""The tuning study of issue #12, measured: does Optuna beat the hand-set PAN-X values, and does pruning save time?

In one run, on the default encoder and the data sizes of ``configs/tuned.yaml``:

1. a study of ``--n-trials`` trials with the config's pruner (median) on English PAN-X dev;
2. the same study (same sampler seed, so the same random start-up trials) with pruning off;
3. the hand-set values of ``configs/default.yaml``'s PAN-X target and the pruned study's best
   values, each trained at ``--seeds`` (default 0 1 2) with English dev selection, so the
   reader sees whether the difference is larger than the seed spread.

Each study lives in its own SQLite storage and MLflow store under ``--out``; a rerun with the
same ``--out`` continues or reuses the studies (Optuna's storage) instead of starting over.
Prints the CPU, per-study wall time, the summed training time of its trials, the steps they
trained, how many were pruned, and the dev F1 table; writes ``summary.json`` under ``--out``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from serve_throughput import cpu_info  # noqa: E402  (one CPU description for every benchmark)


def study_stats(outcome, tuning) -> dict:
    """Trial counts, wall time of each trial and the steps it trained, from the Optuna storage."""
    from optuna.trial import TrialState

    from xstilts.tuning.study import load_study

    study = load_study(tuning, outcome.study_name)
    trials = [t for t in study.get_trials(deepcopy=False) if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    secs = [(t.datetime_complete - t.datetime_start).total_seconds() for t in trials]
    steps = [max(t.intermediate_values) if t.intermediate_values else 0 for t in trials]
    return {"study": outcome.study_name, "complete": outcome.complete, "pruned": outcome.pruned,
            "failed": outcome.failed, "best_value": outcome.best_value, "best_params": outcome.best_params,
            "trial_seconds_sum": sum(secs), "trial_steps_sum": sum(steps),
            "trials": [{"number": t.number, "state": t.state.name, "seconds": s, "last_step": st,
                        "value": t.value, "params": t.params} for t, s, st in zip(trials, secs, steps)]}


def run_study(cfg, target, pruner: str, n_trials: int, out: Path) -> dict:
    from xstilts.tracking.store import RunStore
    from xstilts.tuning.commands import run_tune

    tuning = replace(cfg.tuning, pruner=pruner, n_trials=n_trials, storage=f"sqlite:///{out / f'optuna-{pruner}.db'}",
                     study_name=f"acceptance-panx-{pruner}")
    cfg = replace(cfg, tuning=tuning)
    store = RunStore.open().for_experiment(f"xstilts-tuning-acceptance-{pruner}")
    start = time.perf_counter()
    outcome = run_tune(store, cfg, target, "none", progress=False)
    stats = study_stats(outcome, tuning)
    stats["wall_seconds"] = time.perf_counter() - start  # this invocation (near 0 when reused)
    return stats


def dev_f1(cfg, target, seed: int, params: dict) -> float:
    """English dev F1 of one PAN-X training with ``params`` over the target's values (no MLflow)."""
    from xstilts.grid.plan import target_config
    from xstilts.training.phase import NullTracker, train_phase
    from xstilts.tuning.study import trial_config

    base = target_config(cfg, target, "none", seed, None)
    with tempfile.TemporaryDirectory(prefix="xstilts-acceptance-") as tmp:
        result = train_phase(trial_config(base, params), NullTracker(), model_dir=Path(tmp) / "model",
                             progress=False)
    return float(result.loop.best_score)


def seed_table(cfg, target, seeds: list[int], best: dict, hand_set: dict) -> dict:
    rows = {}
    for name, params in (("hand_set", {}), ("tuned", best)):
        scores = [dev_f1(cfg, target, s, params) for s in seeds]
        rows[name] = {"params": params or hand_set, "scores": scores, "mean": statistics.mean(scores),
                      "std": statistics.stdev(scores) if len(scores) > 1 else 0.0}
        print(f"  {name:9s} {rows[name]['params']}: " + ", ".join(f"{s:.2f}" for s in scores) +
              f"  mean {rows[name]['mean']:.2f} sd {rows[name]['std']:.2f}", flush=True)
    return rows


def hand_set_values(path: str) -> dict:
    """The PAN-X training values of the default grid (what the study has to beat)."""
    from xstilts.grid.config import GridConfig

    target = next(t for t in GridConfig.from_file(path).targets if t.task == "panx")
    tr = target.training
    keys = ("learning_rate", "batch_size", "epochs", "warmup_ratio", "weight_decay")
    return {k: (tr.get(k) if isinstance(tr, dict) else getattr(tr, k, None)) for k in keys}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="configs/tuned.yaml", help="grid config with the PAN-X target and tuning:")
    p.add_argument("--hand-set", default="configs/default.yaml", help="config whose PAN-X values are the baseline")
    p.add_argument("--n-trials", type=int, default=12)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", default="tuning-acceptance", help="directory for the studies' storages and MLflow store")
    p.add_argument("--skip-unpruned", action="store_true", help="only the pruned study (no time comparison)")
    args = p.parse_args()

    from xstilts.runtime.cpu import set_threads
    from xstilts.tuning.commands import _request

    out = Path(args.out).resolve()
    out.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{out / 'mlflow.db'}")
    cfg, target = _request("panx", "none", args.config, args.n_trials, None, None, None, args.threads)
    threads = set_threads(cfg.threads)
    print(f"CPU: {cpu_info()}; torch threads {threads}", flush=True)
    print(f"hand-set values ({args.hand_set}): {hand_set_values(args.hand_set)}", flush=True)
    summary = {"cpu": cpu_info(), "threads": threads, "n_trials": args.n_trials}
    for pruner in [cfg.tuning.pruner] + ([] if args.skip_unpruned else ["none"]):
        s = summary[f"study_{pruner}"] = run_study(cfg, target, pruner, args.n_trials, out)
        print(f"study pruner={pruner}: {s['complete']} complete, {s['pruned']} pruned, {s['failed']} failed; "
              f"wall {s['wall_seconds'] / 60:.1f} min, trials' training {s['trial_seconds_sum'] / 60:.1f} min, "
              f"{s['trial_steps_sum']} steps; best {s['best_value']:.2f} with {s['best_params']}", flush=True)
        (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"English PAN-X dev F1 at seeds {args.seeds}:", flush=True)
    summary["seeds"] = seed_table(cfg, target, args.seeds, summary[f"study_{cfg.tuning.pruner}"]["best_params"],
                                  hand_set_values(args.hand_set))
    if "study_none" in summary:
        on, off = summary[f"study_{cfg.tuning.pruner}"], summary["study_none"]
        print(f"pruning: trials' training time {on['trial_seconds_sum'] / 60:.1f} vs {off['trial_seconds_sum'] / 60:.1f}"
              f" min (ratio {on['trial_seconds_sum'] / off['trial_seconds_sum']:.2f}); steps "
              f"{on['trial_steps_sum']} vs {off['trial_steps_sum']}", flush=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    print(f"summary: {out / 'summary.json'}")


if __name__ == "__main__":
    main()
