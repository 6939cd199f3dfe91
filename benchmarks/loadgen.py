"""A light HTTP/1.1 load client: asyncio, keep-alive, one connection per concurrent caller.

The benchmarks run the client on the same few cores as the server it measures, so the client's
own CPU time is taken from the server. Eight ``httpx`` threads cost a 2-core machine a visible
share of it; this client (one event loop, prebuilt request bytes, no response parsing beyond
status and length) costs less, the way a load generator like ``wrk`` does. Every setup of a
benchmark is measured with the same client, so the ratios between setups stay like for like.
"""
from __future__ import annotations

import asyncio
import json
import statistics
import time

import numpy as np


def request_bytes(port: int, path: str, payload: dict) -> bytes:
    body = json.dumps(payload).encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """``(status, body, server keeps the connection)`` of one response (Content-Length or chunked)."""
    lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip().lower() for k, v in (ln.split(":", 1) for ln in lines[1:] if ":" in ln)}
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding") == "chunked":
        body = b""
        while size := int((await reader.readuntil(b"\r\n")).split(b";")[0], 16):
            body += (await reader.readexactly(size + 2))[:-2]
        await reader.readuntil(b"\r\n")
    else:
        raise SystemExit(f"a response without a length: {lines[:3]}")
    return status, body, headers.get("connection") != "close"


class _Caller:
    """One keep-alive connection; reconnects when the server closes it."""

    def __init__(self, port: int) -> None:
        self.port, self.streams = port, None

    async def call(self, request: bytes) -> tuple[int, bytes]:
        if self.streams is None:
            self.streams = await asyncio.open_connection("127.0.0.1", self.port)
        reader, writer = self.streams
        writer.write(request)
        status, body, keep = await read_response(reader)
        if not keep:
            await self.close()
        return status, body

    async def close(self) -> None:
        if self.streams is not None:
            self.streams[1].close()
            self.streams = None


async def _round(port: int, requests: list[bytes], n: int, concurrency: int, warmup: int) -> tuple[list[float], float]:
    callers = [_Caller(port) for _ in range(concurrency)]
    for i in range(warmup):
        await _checked(callers[0], requests[i % len(requests)], i)
    latencies: list[float] = []
    counter = iter(range(n))

    async def caller_loop(c: _Caller) -> None:
        for i in counter:
            t = time.perf_counter()
            await _checked(c, requests[i % len(requests)], i)
            latencies.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    await asyncio.gather(*(caller_loop(c) for c in callers))
    wall = time.perf_counter() - t0
    for c in callers:
        await c.close()
    return sorted(latencies), wall


async def _checked(caller: _Caller, request: bytes, i: int) -> None:
    status, body = await caller.call(request)
    if status != 200:
        raise SystemExit(f"request {i} answered {status}: {body[:500]!r}")


def measure(port: int, payloads: list[dict], *, requests: int, concurrency: int, warmup: int,
            path: str = "/invocations") -> dict:
    """Requests/s, p50 and p99 (ms) over ``requests`` POSTs at ``concurrency`` after ``warmup`` untimed ones."""
    prepared = [request_bytes(port, path, p) for p in payloads]
    lat, wall = asyncio.run(_round(port, prepared, requests, concurrency, warmup))
    return summary(lat, wall)


def percentile(values: list[float], p: float) -> float:
    """The nearest-rank ``p``-th percentile (0 < p <= 100): the ``ceil(p / 100 * n)``-th smallest value,
    numpy's ``inverted_cdf`` method (of 400 latencies, p99 is the 396th: 4 are above it)."""
    if not values or not 0 < p <= 100:
        raise ValueError(f"percentile: need values and 0 < p <= 100, got {len(values)} values, p={p}")
    return float(np.percentile(values, p, method="inverted_cdf"))


def summary(latencies: list[float], wall: float) -> dict:
    """Requests/s, median and p99 latency (ms) of one timed round of ``len(latencies)`` requests."""
    ms = [x * 1000 for x in latencies]
    return {"rps": len(ms) / wall, "p50": statistics.median(ms), "p99": percentile(ms, 99), "requests": len(ms)}
