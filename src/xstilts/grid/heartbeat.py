"""A line every ``interval`` seconds while a grid job runs, so a long job is never silent.

The executor logs one line per finished job; a training job takes minutes, so
between those lines a :class:`Heartbeat` thread logs what is running, for how
long, and the last training step and loss its run logged (the training loop
logs ``train.loss`` every 10 steps through its :class:`~xstilts.tracking.store.JobRun`;
:func:`tap` passes those on without touching the loop)::

    12:03:41 [4/31 running] intermediate xnli en s0: 1.5 min, step 60, train.loss 0.912
"""
from __future__ import annotations

import logging
import threading
import time
from typing import Any

log = logging.getLogger("xstilts.progress")

DEFAULT_INTERVAL_S = 30.0


class Heartbeat:
    """Logs the running job every ``interval`` seconds from a daemon thread."""

    def __init__(self, interval: float = DEFAULT_INTERVAL_S, logger: logging.Logger = log) -> None:
        self.interval = interval
        self.logger = logger
        self._lock = threading.Lock()
        self._job: tuple[str, float] | None = None  # (label, start)
        self._last = 0.0  # when the running job last had a line (its start at first)
        self._step: tuple[int, dict[str, float]] | None = None
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def begin(self, label: str) -> None:
        with self._lock:
            self._job, self._step = (label, time.perf_counter()), None
            self._last = self._job[1]
        if self._thread is None:
            self._thread = threading.Thread(target=self._beat, name="xstilts-heartbeat", daemon=True)
            self._thread.start()

    def end(self) -> None:
        with self._lock:
            self._job = self._step = None

    def note(self, step: int, metrics: dict[str, float]) -> None:
        """The latest training step and its metrics (called from the training thread)."""
        with self._lock:
            self._step = (step, dict(metrics))

    def close(self) -> None:
        self.end()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def line(self) -> str | None:
        """What the next beat says (None: nothing running)."""
        with self._lock:
            if self._job is None:
                return None
            (label, start), step = self._job, self._step
        text = f"{label}: {(time.perf_counter() - start) / 60:.1f} min"
        if step is not None:
            loss = step[1].get("train.loss")
            text += f", step {step[0]}" + (f", train.loss {loss:.3f}" if loss is not None else "")
        return text

    def _due(self) -> str | None:
        """The line to log now: once per ``interval`` of a job's run, the first after one interval."""
        with self._lock:
            now = time.perf_counter()
            if self._job is None or now - self._last < self.interval:
                return None
            self._last = now
        return self.line()

    def _beat(self) -> None:
        while not self._wake.wait(min(1.0, self.interval / 5)):
            text = self._due()
            if text is not None:
                self.logger.info(text)


class _Tap:
    """A job run that also tells the heartbeat about each training step it logs."""

    def __init__(self, run: Any, heartbeat: Heartbeat) -> None:
        self._run, self._heartbeat = run, heartbeat

    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None:
        self._run.log_metrics(metrics, step=step)
        if "train.loss" in metrics:
            self._heartbeat.note(step, metrics)

    def __getattr__(self, name: str):
        return getattr(self._run, name)


def tap(run: Any, heartbeat: Heartbeat | None) -> Any:
    """``run``, reporting its training steps to ``heartbeat`` when there is one."""
    return run if heartbeat is None else _Tap(run, heartbeat)
