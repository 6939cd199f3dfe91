"""Dynamic batching: concurrent requests to one model are answered by one ONNX Runtime call.

A free worker takes the first waiting request; requests arriving within ``max_wait_s`` join
its batch until it holds ``max_batch_rows`` rows (``max_wait_s`` 0: only the requests already
waiting join, so a lone request never waits and batches form while the workers are busy).
Up to ``workers`` batches run at once, each in a worker thread of the model's (the event
loop keeps accepting requests); each request gets its own rows' answers. When a joint batch
fails, its requests are retried one by one so one bad request fails alone.
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any


class DynamicBatcher:
    def __init__(self, predict: Callable[[list[dict]], list[Any]], *, max_batch_rows: int = 32,
                 max_wait_s: float = 0.005, workers: int = 1) -> None:
        self.predict = predict
        self.max_batch_rows = max_batch_rows
        self.max_wait_s = max_wait_s
        self.workers = max(1, workers)
        self.executor = ThreadPoolExecutor(self.workers, thread_name_prefix="xstilts-batch")
        self.batches = 0
        self.rows = 0
        self._queue: asyncio.Queue | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._worker: asyncio.Task | None = None

    def stats(self) -> dict[str, Any]:
        return {"max_batch_rows": self.max_batch_rows, "max_wait_ms": self.max_wait_s * 1000,
                "workers": self.workers, "batches": self.batches, "rows": self.rows}

    async def submit(self, rows: list[dict]) -> list[Any]:
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # a new event loop (a test client, a restarted server)
            self._loop, self._queue = loop, asyncio.Queue()
            self._worker = loop.create_task(self._work())
        future = loop.create_future()
        await self._queue.put((rows, future))
        return await future

    async def _gather(self) -> list[tuple[list[dict], asyncio.Future]]:
        loop = asyncio.get_running_loop()
        items = [await self._queue.get()]
        n = len(items[0][0])
        deadline = loop.time() + self.max_wait_s
        while n < self.max_batch_rows:
            timeout = deadline - loop.time()
            try:
                item = self._queue.get_nowait() if timeout <= 0 else await asyncio.wait_for(self._queue.get(), timeout)
            except (asyncio.TimeoutError, asyncio.QueueEmpty):
                break
            items.append(item)
            n += len(item[0])
        return items

    async def _work(self) -> None:
        free = asyncio.Semaphore(self.workers)
        while True:
            await free.acquire()
            items = await self._gather()
            asyncio.get_running_loop().create_task(self._run_then_release(items, free))

    async def _run_then_release(self, items, free: asyncio.Semaphore) -> None:
        try:
            await self._run(items)
        finally:
            free.release()

    async def _run(self, items) -> None:
        loop = asyncio.get_running_loop()
        flat = [r for rows, _ in items for r in rows]
        try:
            out = await loop.run_in_executor(self.executor, self.predict, flat)
        except (asyncio.CancelledError, KeyboardInterrupt, SystemExit):
            raise
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting requests (a tokenizer panic too)
            if not isinstance(exc, Exception):
                exc = RuntimeError(f"{type(exc).__name__}: {exc}")
            if len(items) > 1:
                for item in items:
                    await self._run([item])
                return
            _settle(items[0][1], exc=exc)
            return
        self.batches += 1
        self.rows += len(flat)
        at = 0
        for rows, future in items:
            _settle(future, result=out[at:at + len(rows)])
            at += len(rows)


def _settle(future: asyncio.Future, *, result: Any = None, exc: BaseException | None = None) -> None:
    if future.done():  # its client went away
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)
