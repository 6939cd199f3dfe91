"""Executors run a plan's jobs; they decide where and when, never whether.

Whether a job is already done, or claimed by another process, is the run
store's business (:meth:`~xstilts.tracking.store.RunStore.run_once`). The
in-process executor runs jobs one at a time in plan order, each as soon as the
jobs it needs are done; a job another live process holds is skipped and tried
again later, so two processes on one grid share the work.
"""
from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from xstilts.grid.jobs import JobContext
from xstilts.grid.plan import Plan

log = logging.getLogger(__name__)


@dataclass
class JobDone:
    """What :class:`InProcessExecutor` reports after each finished job."""

    job: Any
    outcome: Any
    seconds: float
    done: int
    total: int
    elapsed: float

    @property
    def reused(self) -> bool:
        return bool(getattr(self.outcome, "reused", False))


def describe(event: JobDone) -> str:
    """One line per finished job: what, how long, its headline, overall count and time left."""
    verb = "reused" if event.reused else f"done in {event.seconds:.0f} s"
    head = ""
    scores = getattr(event.outcome, "dev_scores", None) or {}
    if scores:
        head = " dev " + ", ".join(f"{k.split('.', 1)[-1]} {v:.1f}" for k, v in scores.items())
    record = getattr(event.outcome, "record", None)
    if record and record.get("languages"):
        first = [next(iter(s.values())) for s in record["languages"].values()]
        head = f" mean {sum(first) / len(first):.1f} over {len(first)} languages"
    left = ""
    if 0 < event.done < event.total:
        left = f", ~{event.elapsed / event.done * (event.total - event.done) / 60:.0f} min left"
    return f"[{event.done}/{event.total}] {event.job.label or event.job.id}: {verb}{head}{left}"


class InProcessExecutor:
    """Runs jobs in this process, in plan order as their dependencies finish."""

    def __init__(self, ctx: JobContext, *, on_done: Callable[[JobDone], None] | None = None) -> None:
        self.ctx = ctx
        self.on_done = on_done

    def run(self, plan: Plan) -> dict[str, Any]:
        """Every job's outcome by id (raises the first job error, after marking its run FAILED)."""
        outcomes: dict[str, Any] = {}
        pending = list(plan.jobs.values())
        start = time.perf_counter()
        while pending:
            progressed = False
            for job in list(pending):
                if any(d not in outcomes for d in job.needs):
                    continue
                t0 = time.perf_counter()
                outcome = self._run_one(job, outcomes, len(plan.jobs))
                if outcome is None:  # claimed by another live process: come back to it
                    continue
                outcomes[job.id] = outcome
                pending.remove(job)
                progressed = True
                if self.on_done is not None:
                    self.on_done(JobDone(job, outcome, time.perf_counter() - t0, len(outcomes), len(plan.jobs),
                                         time.perf_counter() - start))
            if pending and not progressed:
                time.sleep(self.ctx.poll_seconds)
        return outcomes

    def _run_one(self, job, outcomes: dict[str, Any], total: int):
        heartbeat = self.ctx.heartbeat
        if heartbeat is None:
            return job.run(self.ctx, outcomes)
        heartbeat.begin(f"[{len(outcomes) + 1}/{total} running] {job.label or job.id}")
        try:
            return job.run(self.ctx, outcomes)
        finally:
            heartbeat.end()
