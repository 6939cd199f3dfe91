"""Dynamic batching: concurrent requests to one model are answered by few ONNX Runtime calls.

A free worker takes the oldest waiting request; waiting requests whose ``cost`` (a request's
padded length) keeps the batch within ``PAD_TOKENS`` of its longest join it, and so do those
arriving within ``max_wait_s``, until it holds ``max_batch_rows`` rows (``max_wait_s`` 0: only
the requests already waiting join, so a lone request never waits and batches form while the
workers are busy). A batch so formed runs as one call (ONNX Runtime calls group rows by the same
bound), and no request in it pays more padding than a call of its own would cost. The others
stay queued for the next free worker: a short sentence is not held for a long text's call, nor
bound to one busy worker while another goes free. Up to ``workers`` batches run at once, each in
a worker thread of the model's (the event loop keeps accepting requests). When a call fails, its
requests are retried one by one, so one bad request fails alone.
"""
from __future__ import annotations

import asyncio
import math
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from xstilts.export.runtime import PAD_TOKENS


@dataclass
class _Waiting:
    rows: list[dict]
    future: asyncio.Future
    cost: float


class DynamicBatcher:
    def __init__(self, predict: Callable[[list[dict]], list[Any]], *, max_batch_rows: int = 32,
                 max_wait_s: float = 0.005, workers: int = 1,
                 cost: Callable[[list[dict]], float] | None = None) -> None:
        self.predict = predict
        self.cost = cost
        self.max_batch_rows = max_batch_rows
        self.max_wait_s = max_wait_s
        self.workers = max(1, workers)
        self.executor: ThreadPoolExecutor | None = None  # started with the first event loop (``submit``)
        self.batches = 0
        self.rows = 0
        self._pending: deque[_Waiting] = deque()
        self._arrived: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker: asyncio.Task | None = None

    def stats(self) -> dict[str, Any]:
        return {"max_batch_rows": self.max_batch_rows, "max_wait_ms": self.max_wait_s * 1000,
                "workers": self.workers, "batches": self.batches, "rows": self.rows}

    async def submit(self, rows: list[dict]) -> list[Any]:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (a test client, a restarted server)
            if self.executor is None:
                self.executor = ThreadPoolExecutor(self.workers, thread_name_prefix="xstilts-batch")
            self._loop, self._arrived, self._pending = loop, asyncio.Event(), deque()
            self._worker = loop.create_task(self._work())
        future = loop.create_future()
        self._pending.append(_Waiting(rows, future, self._cost_of(rows)))
        self._arrived.set()
        return await future

    async def aclose(self) -> None:
        """At the server's shutdown: stop gathering, let the running calls finish and end the worker
        threads, so nothing holds the model any more (a later ``submit`` starts them again)."""
        if self._worker is not None:
            self._worker.cancel()
            await asyncio.gather(self._worker, return_exceptions=True)
        executor, self.executor = self.executor, None
        if executor is not None:
            await asyncio.get_running_loop().run_in_executor(None, executor.shutdown, True)
        self._loop = self._worker = self._arrived = None

    def _cost_of(self, rows: list[dict]) -> float:
        """The request's cost; infinite (a batch of its own) when the cost cannot read it."""
        try:
            return float(self.cost(rows)) if self.cost else 0.0
        except Exception:  # noqa: BLE001 - a request the cost cannot read fails in predict, with its own error
            return math.inf

    async def _gather(self) -> list[_Waiting]:
        """The oldest waiting request and those of a cost near it, waiting or arriving within ``max_wait_s``."""
        loop = asyncio.get_running_loop()
        while not self._pending:
            self._arrived.clear()
            await self._arrived.wait()
        head = self._pending.popleft()
        batch, n = [head], len(head.rows)
        deadline = loop.time() + self.max_wait_s
        while True:
            n = self._take_similar(batch, n)
            timeout = deadline - loop.time()
            if n >= self.max_batch_rows or timeout <= 0:
                return batch
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), timeout)
            except asyncio.TimeoutError:
                pass  # one more look at what came, then the deadline has passed

    def _take_similar(self, batch: list[_Waiting], n: int) -> int:
        """Move waiting requests into ``batch`` (in arrival order) while its costs stay within
        ``PAD_TOKENS`` of each other, up to the rows; an infinite cost joins nothing."""
        lo, hi = min(item.cost for item in batch), max(item.cost for item in batch)
        left: deque[_Waiting] = deque()
        for item in self._pending:
            if n < self.max_batch_rows and max(hi, item.cost) - min(lo, item.cost) <= PAD_TOKENS:
                batch.append(item)
                n += len(item.rows)
                lo, hi = min(lo, item.cost), max(hi, item.cost)
            else:
                left.append(item)
        self._pending = left
        return n

    async def _work(self) -> None:
        free = asyncio.Semaphore(self.workers)
        loop = asyncio.get_running_loop()
        while True:
            await free.acquire()
            batch = await self._gather()
            done = loop.run_in_executor(self.executor, self._run, batch, loop)
            done.add_done_callback(lambda _: free.release())

    def _run(self, batch: list[_Waiting], loop: asyncio.AbstractEventLoop) -> None:
        """In a worker thread: one call for ``batch``; if it fails, one call per request."""
        try:
            out = self.predict([r for item in batch for r in item.rows])
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting requests (a tokenizer panic too)
            if len(batch) > 1:
                for item in batch:
                    self._run([item], loop)
                return
            if not isinstance(exc, Exception):
                exc = RuntimeError(f"{type(exc).__name__}: {exc}")
            loop.call_soon_threadsafe(_settle, batch[0].future, None, exc)
            return
        loop.call_soon_threadsafe(self._answer, batch, out)

    def _answer(self, batch: list[_Waiting], out: list[Any]) -> None:
        """In the event loop: each request of ``batch`` gets its own rows of ``out``."""
        self.batches += 1
        at = 0
        for item in batch:
            _settle(item.future, out[at:at + len(item.rows)])
            at += len(item.rows)
            self.rows += len(item.rows)


def _settle(future: asyncio.Future, result: Any = None, exc: BaseException | None = None) -> None:
    if future.done():  # its client went away
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
