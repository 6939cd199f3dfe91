"""Serving throughput: requests/s and p50/p99 latency at concurrency 1 and 8, over loopback.

  (a) `mlflow models serve` of the PyTorch pyfunc   (--torch-model models:/xstilts-target-panx/1)
  (b) `mlflow models serve` of the ONNX pyfunc      (--onnx-model models:/xstilts-serve-panx/1)
  (c) `xstilts serve` fp32                          (--onnx-model, same)
  (d) `xstilts serve` int8                          (--int8-model models:/xstilts-serve-panx/2)

Omitted models skip their rows. Each server is started as a subprocess on 127.0.0.1 and
stopped after its rounds; requests are single PAN-X dev sentences (English and Swahili).
Prints the CPU model and flags first, then a table and the ratios to (a).
"""
from __future__ import annotations

import argparse
import os
import platform
import signal
import socket
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


def cpu_info() -> str:
    try:
        text = Path("/proc/cpuinfo").read_text()
        model = next(line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("model name"))
        flags = next(line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags"))
        keep = [f for f in flags if f.startswith(("avx", "amx", "fma", "sse4"))]
        return f"{model}; {os.cpu_count()} cores; flags {' '.join(keep)}"
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(cmd: list[str], port: int, timeout: float = 180) -> subprocess.Popen:
    import httpx

    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited ({proc.returncode}): {' '.join(cmd)}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/ping", timeout=2).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.5)
    stop(proc)
    raise SystemExit(f"server not ready after {timeout:.0f} s: {' '.join(cmd)}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def measure(port: int, rows: list[dict], *, requests: int, concurrency: int) -> dict:
    import httpx

    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=120) as http:
        def one(i: int) -> float:
            t = time.perf_counter()
            r = http.post("/invocations", json={"dataframe_records": [rows[i % len(rows)]]})
            r.raise_for_status()
            return time.perf_counter() - t

        for i in range(min(4, requests)):  # warm-up
            one(i)
        t0 = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            lat = sorted(pool.map(one, range(requests)))
        wall = time.perf_counter() - t0
    return {"rps": requests / wall, "p50": statistics.median(lat) * 1000,
            "p99": lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1000}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--torch-model")
    ap.add_argument("--onnx-model")
    ap.add_argument("--int8-model")
    ap.add_argument("--requests", type=int, default=200)
    ap.add_argument("--concurrency", default="1,8")
    args = ap.parse_args()
    from xstilts.data.loading import load_examples

    rows = [{"words": list(ex.words)} for lang in ("en", "sw") for ex in load_examples("panx", lang, "dev")[:50]]
    mlflow_bin = str(Path(sys.executable).with_name("mlflow"))
    xstilts_bin = [sys.executable, "-m", "xstilts.cli"]
    setups = [("a mlflow serve torch", args.torch_model, lambda m, p: [mlflow_bin, "models", "serve", "-m", m,
                                                                      "--env-manager", "local", "-p", str(p)]),
              ("b mlflow serve onnx", args.onnx_model, lambda m, p: [mlflow_bin, "models", "serve", "-m", m,
                                                                    "--env-manager", "local", "-p", str(p)]),
              ("c xstilts serve fp32", args.onnx_model, lambda m, p: [*xstilts_bin, "serve", "--model", m,
                                                                     "--port", str(p)]),
              ("d xstilts serve int8", args.int8_model, lambda m, p: [*xstilts_bin, "serve", "--model", m,
                                                                     "--port", str(p)])]
    print(f"CPU: {cpu_info()}")
    results = {}
    for label, model, cmd in setups:
        if not model or (label.split()[1] == "mlflow" and not model.startswith("models:/")):
            continue  # mlflow models serve needs a registered model, not a bundle directory
        port = free_port()
        proc = start(cmd(model, port), port)
        try:
            for c in (int(x) for x in args.concurrency.split(",")):
                results[(label, c)] = measure(port, rows, requests=args.requests, concurrency=c)
        finally:
            stop(proc)
    print(f"{'setup':<24}{'conc':>5}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'x (a)':>8}")
    for (label, c), r in results.items():
        base = results.get((setups[0][0], c))
        ratio = f"{r['rps'] / base['rps']:.2f}" if base else "-"
        print(f"{label:<24}{c:>5}{r['rps']:>10.1f}{r['p50']:>10.1f}{r['p99']:>10.1f}{ratio:>8}")


if __name__ == "__main__":
    main()
