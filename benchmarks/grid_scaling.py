"""Grid wall time: the in-process executor (2 threads) against Ray (2 workers x 1 thread), in one run.

Each executor runs the same grid from scratch on its own store, as a user would run it:
in-process on the embedded SQLite store (``./mlflow.db`` layout, in a temp dir), Ray on
the PostgreSQL + ``mlflow server`` stack (``xstilts server start``) with a local Ray
started by this script (``ray.init``, all cores of this machine). Reported:

- wall time of each and the ratio (in-process / Ray);
- Ray's per-job overhead: submit -> start (the task began running in a worker) for
  every job, and the same restricted to jobs that found a free CPU (so it is Ray's
  scheduling and argument transfer, not waiting for a busy worker);
- per-job work time by kind, and a projection of the wall time of ``--project``
  (default: configs/larger.yaml) on N workers: a list schedule of that config's plan
  (dependency order, each job on the first free worker) with each job's time estimated
  from the measured rate of its kind (training: seconds per item x epoch; evaluation:
  seconds per evaluated example x language), plus the measured median overhead. A rate
  includes each job's fixed cost (process start, model loading), so a projection from a
  small cut overstates the larger config's time; measure on the default grid.

On a 2-core machine 2 workers x 1 thread use the same 2 cores as 1 process x 2
threads: the ratio shows what running jobs side by side gains over intra-op threads
(and what Ray and the HTTP store cost), not how far the grid scales with more machines;
the projection assumes each added worker brings its own cores.

Real measurement (the default grid twice; the README's in-process run of its 5 seeds took
14.7 min on a 2-core AMX Xeon, so expect over half an hour; run it alone on the machine):
    python benchmarks/grid_scaling.py --out grid_scaling.json
The documented cut (the default grid's first seed: the same full-size jobs, a fifth of them),
whose per-job rates feed the projection just as well:
    python benchmarks/grid_scaling.py --cut one-seed --out grid_scaling.json
Smoke run (a 2-layer, 1-seed cut of the same plan shape; its numbers say nothing about scaling):
    python benchmarks/grid_scaling.py --cut tiny --out /tmp/grid_scaling_tiny.json
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

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))


def tiny_cut(cfg):
    """The smoke cut: 2 layers, one seed, a few dozen rows per job (the same plan shape)."""
    from xstilts.config import TrainingArgs

    small = dict(batch_size=8, epochs=1, max_length=48, eval_batch_size=32)
    cfg.num_hidden_layers, cfg.seeds, cfg.conditions = 2, cfg.seeds[:1], ["none", "en"]
    cfg.intermediate.size, cfg.intermediate.training = 24, TrainingArgs(**small)
    for t in cfg.targets:
        t.max_train_examples, t.max_dev_examples, t.max_eval_examples = 64, 16, 16
        t.eval_langs = t.eval_langs[:3]
        t.training = TrainingArgs(**small)
    return cfg


def run_inprocess(cfg, root: Path) -> float:
    from xstilts.grid.runner import run_grid

    os.environ.update(MLFLOW_TRACKING_URI=f"sqlite:///{root / 'mlflow.db'}", XSTILTS_CHECKPOINT_DIR=str(root / "ck"))
    os.environ.pop("XSTILTS_CLAIMS_URL", None)
    t0 = time.perf_counter()
    run_grid(replace(cfg, threads=2, output_dir=str(root / "out")), progress=False)
    return time.perf_counter() - t0


def run_ray(cfg, root: Path, address: str | None) -> tuple[float, list[dict]]:
    from xstilts.grid.ray_executor import RaySettings, grid_executor, prepare
    from xstilts.grid.runner import run_grid
    from xstilts.stack.local import start

    stack = start(root / "server", port=_free_port(), pg_port=_free_port())
    os.environ.update(stack.environment())
    settings = RaySettings(address=address, cpus_per_job=1)
    prepare(settings)
    made = []
    make = grid_executor(settings, threads=1)
    t0 = time.perf_counter()
    run_grid(replace(cfg, threads=1, output_dir=str(root / "out")), progress=False,
             executor=lambda ctx, on_done=None: made.append(make(ctx, on_done)) or made[-1])
    return time.perf_counter() - t0, made[0].timings


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def overheads(timings: list[dict], cpus: int) -> dict:
    """Submit -> start for all jobs, and for those that found a free CPU when submitted."""
    all_ = [t["started"] - t["submitted"] for t in timings]
    free = [t["started"] - t["submitted"] for t in timings
            if sum(o["started"] <= t["submitted"] < o["worker_finished"] for o in timings if o is not t) < cpus]
    med = lambda xs: statistics.median(xs) if xs else None  # noqa: E731
    return {"jobs": len(all_), "median_s": med(all_), "max_s": max(all_, default=None),
            "free_cpu_jobs": len(free), "free_cpu_median_s": med(free), "free_cpu_max_s": max(free, default=None)}


def job_units(job, grid) -> tuple[str, float]:
    """(kind, work units) of a plan job of ``grid``: items x epochs for training (the
    intermediate size, a target's training cap), examples x languages for evaluation."""
    from xstilts.grid.jobs import EvalJob

    if isinstance(job, EvalJob):
        return f"eval:{job.spec.task}", float((job.spec.max_examples or 1000) * len(job.spec.langs))
    cfg = job.config
    items = grid.intermediate.size if cfg.phase == "intermediate" else (cfg.tasks[0].max_examples or 1000)
    return f"train:{cfg.phase}", float(items * cfg.training.epochs)


def rates(plan, grid, timings: list[dict]) -> dict[str, float]:
    """Measured seconds per work unit, by kind (fresh jobs only)."""
    sums: dict[str, list[float]] = {}
    for t in timings:
        if t["reused"]:
            continue
        kind, units = job_units(plan.jobs[t["job"]], grid)
        sums.setdefault(kind, [0.0, 0.0])
        sums[kind][0] += t["worker_finished"] - t["started"]
        sums[kind][1] += units
    return {k: s / u for k, (s, u) in sums.items()}


def project(plan, grid, rate: dict[str, float], workers: int, overhead: float) -> float:
    """List schedule of ``plan`` on ``workers`` workers, in plan order, jobs timed by ``rate``."""
    import heapq

    free = [0.0] * workers
    done: dict[str, float] = {}
    for job_id, job in plan.jobs.items():
        kind, units = job_units(job, grid)
        r = rate.get(kind) or rate.get("eval:panx" if kind.startswith("eval") else "train:target") or 0.0
        ready = max((done[d] for d in job.needs), default=0.0)
        start = max(heapq.heappop(free), ready)
        done[job_id] = start + overhead + r * units
        heapq.heappush(free, done[job_id])
    return max(done.values(), default=0.0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(REPO / "configs" / "default.yaml"))
    ap.add_argument("--cut", choices=["none", "one-seed", "tiny"], default="none",
                    help="none: the whole config; one-seed: its first seed only (full-size jobs); tiny: smoke run")
    ap.add_argument("--project", default=str(REPO / "configs" / "larger.yaml"))
    ap.add_argument("--workers", default="1,2,4,8,16,32", help="Worker counts to project to.")
    ap.add_argument("--address", default=None, help="An existing Ray cluster (default: a local Ray here).")
    ap.add_argument("--out", default="grid_scaling.json")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ["XSTILTS_CLAIM_TIMEOUT"] = "60"
    from xstilts.grid.config import GridConfig
    from xstilts.grid.plan import plan_grid

    cfg = GridConfig.from_file(args.config)
    if args.cut == "tiny":
        cfg = tiny_cut(cfg)
    elif args.cut == "one-seed":  # every job full size, a fifth of them: rates and overheads as measured
        cfg.seeds = cfg.seeds[:1]
    work = Path(tempfile.mkdtemp(prefix="xstilts-scaling-", dir="/var/tmp"))
    work.chmod(0o755)  # PostgreSQL runs as the postgres user when we are root
    result = measure(cfg, work, args)
    larger_cfg = GridConfig.from_file(args.project)
    larger = plan_grid(larger_cfg)
    rate = rates(plan_grid(cfg), cfg, result["timings"])
    overhead = result["ray_overhead"]["free_cpu_median_s"] or result["ray_overhead"]["median_s"] or 0.0
    result["projection"] = {"config": args.project, "jobs": len(larger.jobs), "rate_s_per_unit": rate,
                            "wall_s_by_workers": {n: project(larger, larger_cfg, rate, int(n), overhead)
                                                  for n in args.workers.split(",")}}
    result.pop("timings")
    Path(args.out).write_text(json.dumps(result, indent=2, default=str))
    print(json.dumps(result, indent=2, default=str))


def measure(cfg, work: Path, args) -> dict:
    from xstilts.stack.local import stop

    (work / "a").mkdir()
    (work / "b").mkdir()
    saved = dict(os.environ)
    try:
        inproc = run_inprocess(cfg, work / "a")
        ray_s, timings = run_ray(cfg, work / "b", args.address)
    finally:
        stop(work / "b" / "server")
        os.environ.clear()
        os.environ.update(saved)
    return {"config": args.config, "cut": args.cut, "cpus": os.cpu_count(), "inprocess_2_threads_s": inproc,
            "ray_2_workers_x_1_thread_s": ray_s, "ratio_inprocess_over_ray": inproc / ray_s,
            "ray_overhead": overheads(timings, cpus=2), "timings": timings}


if __name__ == "__main__":
    main()
