"""The serving batcher's workers and waiting policy, and the server's parallelism defaults."""
from __future__ import annotations

import asyncio
import threading
import time

import pytest

from xstilts.serving.batching import DynamicBatcher


def test_two_workers_run_two_batches_at_once():
    """Each call waits until another call is running beside it: with 2 workers both finish, with 1
    the barrier would time out."""
    barrier = threading.Barrier(2, timeout=5)

    def predict(rows):
        barrier.wait()
        return [r["x"] * 10 for r in rows]

    batcher = DynamicBatcher(predict, max_batch_rows=1, max_wait_s=0, workers=2)

    async def main():
        return await asyncio.gather(batcher.submit([{"x": 1}]), batcher.submit([{"x": 2}]))

    assert asyncio.run(main()) == [[10], [20]]
    assert batcher.stats()["batches"] == 2 and batcher.stats()["workers"] == 2


def test_without_a_wait_a_lone_request_runs_at_once_and_busy_workers_batch_the_rest():
    started = threading.Event()
    release = threading.Event()
    calls: list[int] = []

    def predict(rows):
        calls.append(len(rows))
        if len(calls) == 1:
            started.set()
            release.wait(5)
        return [r["x"] for r in rows]

    batcher = DynamicBatcher(predict, max_batch_rows=32, max_wait_s=0, workers=1)

    async def main():
        t = time.perf_counter()
        first = asyncio.ensure_future(batcher.submit([{"x": 0}]))
        while not started.is_set():
            await asyncio.sleep(0.001)
        waited = time.perf_counter() - t
        rest = [asyncio.ensure_future(batcher.submit([{"x": i}])) for i in range(1, 6)]
        await asyncio.sleep(0.05)  # all five queue while the only worker is busy
        release.set()
        return waited, await first, await asyncio.gather(*rest)

    waited, first, rest = asyncio.run(main())
    assert waited < 0.5 and first == [0] and rest == [[1], [2], [3], [4], [5]]
    assert calls == [1, 5]  # the five waiting requests shared one call


def test_closing_ends_the_worker_threads_and_a_later_loop_starts_them_again():
    """At a server's shutdown the batcher's threads end (they held the model); a restarted server (a new
    event loop) gets new ones."""
    def predict(rows):
        return [threading.current_thread() for _ in rows]

    batcher = DynamicBatcher(predict, max_batch_rows=1, max_wait_s=0, workers=2)

    async def serve_once():
        answer = await batcher.submit([{"x": 1}])
        await batcher.aclose()
        return answer

    first = asyncio.run(serve_once())[0]
    assert first.name.startswith("xstilts-batch") and batcher.executor is None
    assert not first.is_alive()
    again = asyncio.run(serve_once())[0]
    assert again is not first and again.name.startswith("xstilts-batch") and not again.is_alive()


def test_a_failing_joint_batch_fails_only_its_bad_request():
    def predict(rows):
        if any(r["x"] < 0 for r in rows):
            raise ValueError("negative")
        return [r["x"] for r in rows]

    batcher = DynamicBatcher(predict, max_batch_rows=8, max_wait_s=0.05, workers=2)

    async def main():
        return await asyncio.gather(batcher.submit([{"x": 1}]), batcher.submit([{"x": -1}]),
                                    batcher.submit([{"x": 3}]), return_exceptions=True)

    good, bad, other = asyncio.run(main())
    assert good == [1] and other == [3] and isinstance(bad, ValueError)


def test_a_long_request_runs_alone_while_short_ones_are_batched_and_answered_beside_it():
    """With a cost, only requests whose costs lie within PAD_TOKENS share a batch: the long one's call
    blocks one worker, the short ones run on the other and come back while it is still blocked."""
    release = threading.Event()
    calls: list[list[int]] = []

    def predict(rows):
        calls.append([r["x"] for r in rows])
        if any(r["x"] >= 100 for r in rows):
            release.wait(5)
        return [r["x"] * 2 for r in rows]

    batcher = DynamicBatcher(predict, max_batch_rows=32, max_wait_s=0.05, workers=2,
                             cost=lambda rows: max(r["x"] for r in rows))

    async def main():
        long = asyncio.ensure_future(batcher.submit([{"x": 100}]))
        short = [asyncio.ensure_future(batcher.submit([{"x": x}])) for x in (12, 10, 30)]
        answered = await asyncio.wait_for(asyncio.gather(*short), 2)  # times out if they wait for the long one
        release.set()
        return answered, await long

    answered, long = asyncio.run(main())
    assert answered == [[24], [20], [60]] and long == [200]
    assert calls == [[100], [12, 10], [30]]  # 10 is within 12 tokens of 12 and joins it; 30 is not
    assert batcher.stats()["batches"] == 3


def test_the_oldest_request_leads_each_batch_and_takes_the_waiting_ones_of_its_cost():
    started, release = threading.Event(), threading.Event()
    calls: list[list[int]] = []

    def predict(rows):
        calls.append([r["x"] for r in rows])
        if len(calls) == 1:
            started.set()
            release.wait(5)
        return [r["x"] for r in rows]

    batcher = DynamicBatcher(predict, max_batch_rows=32, max_wait_s=0, workers=1, cost=lambda rows: rows[0]["x"])

    async def main():
        first = asyncio.ensure_future(batcher.submit([{"x": 50}]))
        while not started.is_set():
            await asyncio.sleep(0.001)
        rest = [asyncio.ensure_future(batcher.submit([{"x": x}])) for x in (10, 100, 21, 12, 23, 11, 90, 112)]
        await asyncio.sleep(0.05)  # all queue while the only worker is busy
        release.set()
        return await first, await asyncio.gather(*rest)

    first, rest = asyncio.run(main())
    assert first == [50] and rest == [[10], [100], [21], [12], [23], [11], [90], [112]]
    # a batch's costs stay within 12 of each other, in arrival order: 23 would stretch 10..21 to 13;
    # 90 joins 100 first, and then 112 would stretch 90..100 to 22
    assert calls == [[50], [10, 21, 12, 11], [100, 90], [23], [112]]


def test_a_request_the_cost_cannot_read_is_still_answered_in_a_batch_of_its_own():
    batcher = DynamicBatcher(lambda rows: [r.get("x") for r in rows], max_batch_rows=8, max_wait_s=0.05,
                             cost=lambda rows: rows[0]["x"])

    async def main():
        return await asyncio.gather(batcher.submit([{"x": 1}]), batcher.submit([{"y": 2}]))

    assert asyncio.run(main()) == [[1], [None]]
    assert batcher.stats()["batches"] == 2  # its cost counts as infinite: a batch of its own



@pytest.mark.parametrize("workers,threads,cores,expected", [
    (0, 0, 2, (2, 1)), (0, 0, 16, (4, 4)), (0, 0, 1, (1, 1)), (1, 0, 2, (1, 2)), (3, 2, 16, (3, 2)),
])
def test_parallelism_defaults_share_the_cores_among_the_workers(workers, threads, cores, expected):
    from xstilts.serving.commands import parallelism

    assert parallelism(workers, threads, cores) == expected


def test_onnx_runtime_threads_do_not_spin_unless_asked():
    from xstilts.export.runtime import SessionSettings

    assert SessionSettings().options().get_session_config_entry("session.intra_op.allow_spinning") == "0"
    assert SessionSettings(spinning=True).options().get_session_config_entry("session.intra_op.allow_spinning") == "1"
