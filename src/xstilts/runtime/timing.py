"""Where a run's wall time goes: an accumulator of seconds by category.

A :class:`Timings` is handed to the work functions that do the timed work (the
grid's job context carries one; ``train_phase``, ``train`` and
``evaluate_model`` take it as an argument). Work is charged to the *innermost*
open category: ``with timings.phase("data"):`` inside ``with
timings.phase("tracking"):`` pauses the outer clock, so categories never
overlap and their sum never exceeds the wall time. Whatever no category covers
is ``other`` (wall time minus the rest).

Forward passes are timed with module hooks (:meth:`Timings.forward_hooks`), so
the evaluation code that calls the model needs no timing argument of its own;
the MLflow client can be wrapped (:meth:`Timings.wrap`) so that every call it
makes counts as tracking, wherever it is made from.

Only the thread that created the accumulator is timed: a background thread
(MLflow's asynchronous logging) would otherwise interleave with the stack.
"""
from __future__ import annotations

import contextlib
import functools
import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

#: Category -> what it means, in the order reports list them.
CATEGORIES: dict[str, str] = {
    "train_steps": "training steps (forward, backward, optimizer)",
    "eval_forward": "evaluation forward passes (dev and zero-shot)",
    "data": "data loading and featurizing (and scoring predictions)",
    "model_load": "model loading and saving",
    "tracking": "MLflow logging, registry and claims",
    "other": "other",
}


class Timings:
    """Seconds (and entries) per category, exclusive: see the module docstring."""

    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self._clock = clock
        self._thread = threading.get_ident()
        self._started = clock()
        self._stack: list[list[Any]] = []    # [category, time the category last resumed]
        self.seconds: dict[str, float] = dict.fromkeys(CATEGORIES, 0.0)
        self.counts: dict[str, int] = dict.fromkeys(CATEGORIES, 0)

    def _push(self, category: str) -> int:
        if category not in CATEGORIES:
            raise ValueError(f"unknown timing category {category!r}; one of {', '.join(CATEGORIES)}")
        now = self._clock()
        if self._stack:  # pause the enclosing category
            outer = self._stack[-1]
            self.seconds[outer[0]] += now - outer[1]
        self._stack.append([category, now])
        return len(self._stack) - 1

    def _pop_to(self, depth: int) -> None:
        """Close every category opened at or above ``depth`` (an exception may skip a hook's pop)."""
        now = self._clock()
        while len(self._stack) > depth:
            category, resumed = self._stack.pop()
            self.seconds[category] += now - resumed
            self.counts[category] += 1
        if self._stack:
            self._stack[-1][1] = now

    @contextlib.contextmanager
    def phase(self, category: str) -> Iterator[None]:
        """Charge the body's time (minus that of categories opened inside it) to ``category``."""
        if threading.get_ident() != self._thread:
            yield
            return
        depth = self._push(category)
        try:
            yield
        finally:
            self._pop_to(depth)

    def timed(self, category: str, fn: Callable) -> Callable:
        """``fn`` whose every call is charged to ``category``."""
        @functools.wraps(fn)
        def call(*args, **kwargs):
            with self.phase(category):
                return fn(*args, **kwargs)
        return call

    def wrap(self, obj: Any, category: str) -> Any:
        """A proxy of ``obj`` whose method calls are charged to ``category`` (attributes pass through)."""
        return _TimedProxy(obj, self, category)

    @contextlib.contextmanager
    def forward_hooks(self, modules, category: str = "eval_forward") -> Iterator[None]:
        """While open, every forward pass of each module in ``modules`` is charged to ``category``.

        Nested modules (a model and its encoder) simply nest; a forward that raises
        leaves its entry open, which closing this context unwinds."""
        if threading.get_ident() != self._thread:
            yield
            return
        depth = len(self._stack)
        opened: list[int] = []
        handles = []
        for module in {id(m): m for m in modules if m is not None}.values():
            handles.append(module.register_forward_pre_hook(lambda *_: opened.append(self._push(category))))
            handles.append(module.register_forward_hook(lambda *_: self._pop_to(opened.pop())))
        try:
            yield
        finally:
            for h in handles:
                h.remove()
            self._pop_to(depth)

    # -- reading -----------------------------------------------------------------------
    def wall(self) -> float:
        return self._clock() - self._started

    def breakdown(self, wall: float | None = None) -> dict[str, float]:
        """Seconds per category, ``other`` completed to ``wall`` (default: since creation)."""
        wall = self.wall() if wall is None else wall
        out = dict(self.seconds)
        named = sum(v for k, v in out.items() if k != "other")
        out["other"] = max(0.0, wall - named)
        return out

    def metrics(self, wall: float | None = None, prefix: str = "time") -> dict[str, float]:
        """``{prefix}.{category}.seconds`` and ``.share`` (of the wall time), and the wall time."""
        wall = self.wall() if wall is None else wall
        out = {f"{prefix}.wall.seconds": wall}
        for k, v in self.breakdown(wall).items():
            out[f"{prefix}.{k}.seconds"] = v
            out[f"{prefix}.{k}.share"] = v / wall if wall > 0 else 0.0
        core = self.seconds["train_steps"] + self.seconds["eval_forward"]
        out[f"{prefix}.overhead.share"] = 1.0 - core / wall if wall > 0 else 0.0
        return out

    def to_dict(self, wall: float | None = None) -> dict[str, Any]:
        wall = self.wall() if wall is None else wall
        return {"wall_seconds": wall, "seconds": self.breakdown(wall), "entries": dict(self.counts),
                "categories": dict(CATEGORIES)}

    def table(self, wall: float | None = None) -> str:
        """A markdown table: category, seconds, share of the wall time."""
        wall = self.wall() if wall is None else wall
        lines = ["| where the time went | seconds | share |", "|---|---:|---:|"]
        for k, v in self.breakdown(wall).items():
            lines.append(f"| {CATEGORIES[k]} | {v:.1f} | {100 * v / wall if wall > 0 else 0:.1f} % |")
        core = self.seconds["train_steps"] + self.seconds["eval_forward"]
        lines.append(f"| **all but training steps and evaluation forward passes** | {wall - core:.1f} | "
                     f"{100 * (wall - core) / wall if wall > 0 else 0:.1f} % |")
        lines.append(f"| **wall time** | {wall:.1f} | 100 % |")
        return "\n".join(lines) + "\n"

    def json(self, wall: float | None = None) -> str:
        return json.dumps(self.to_dict(wall), indent=2) + "\n"


class _TimedProxy:
    """Forwards attribute access to the wrapped object; calls are timed (see :meth:`Timings.wrap`)."""

    def __init__(self, obj: Any, timings: Timings, category: str) -> None:
        self._obj, self._timings, self._category = obj, timings, category

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._obj, name)
        return self._timings.timed(self._category, value) if callable(value) else value
