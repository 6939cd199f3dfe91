"""Per-call latency of exported models: one row of 13, 40 and 128 tokens through ONNX Runtime.

Loads each ``--model`` (``models:/xstilts-serve-TASK/VERSION`` or an exported bundle directory)
as ``xstilts serve`` does (its graph, its session settings; ``--threads`` ONNX Runtime threads
per call, 1 by default, as each serving worker runs), and times ``InferenceSession.run`` on one
row of real PAN-X dev text cut to each length. Models alternate within every round, and each
figure is the median over ``--rounds`` rounds of the mean of ``--calls`` calls, so a model that
runs while the machine is busier is not the only one that pays for it. Prints the CPU beside
the figures: int8 kernels differ by CPU (VNNI, AMX, AVX2 only).

``--fit`` also times batches of 1, 2, 4 and 8 rows at 4 to 64 tokens and fits ``ms = F + c x
rows x tokens``: ``F / c`` is how many tokens of padding one call's fixed cost is worth, the
bound by which ``xstilts serve`` and ``OnnxModel.run`` group rows (``PAD_TOKENS``).

    MLFLOW_TRACKING_URI=... python benchmarks/onnx_latency.py --model models:/xstilts-serve-panx/1 \\
        --model models:/xstilts-serve-panx/2
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from serve_throughput import cpu_info


def token_rows(tokenizer, lengths: list[int]) -> dict[int, np.ndarray]:
    """One row of ``n`` tokens (specials included) per length, cut from English PAN-X dev words."""
    from xstilts.data.loading import load_examples

    words = [w for ex in load_examples("panx", "en", "dev")[:200] for w in ex.words]
    ids = tokenizer(words[:2 * max(lengths)], is_split_into_words=True, add_special_tokens=False)["input_ids"]
    out = {}
    for n in lengths:
        if len(ids) < n - 2:
            raise SystemExit(f"--lengths: {n} tokens is more than the {len(ids) + 2} this text gives")
        body = ids[:n - 2]
        out[n] = np.array([[tokenizer.cls_token_id, *body, tokenizer.sep_token_id]], dtype=np.int64)
    return out


def time_calls(model, ids: np.ndarray, calls: int) -> float:
    """Mean milliseconds of ``calls`` runs of one row."""
    feed = {"input_ids": ids, "attention_mask": np.ones_like(ids)}
    t = time.perf_counter()
    for _ in range(calls):
        model.run(feed)
    return (time.perf_counter() - t) / calls * 1000


FIT_ROWS, FIT_WIDTHS = (1, 2, 4, 8), (4, 8, 16, 32, 64)


def fit_call_cost(model, row: np.ndarray, rounds: int, calls: int) -> tuple[float, float]:
    """``(F, c)`` of ``ms = F + c * rows * tokens`` by least squares over medians of ``rounds`` rounds
    of ``calls`` calls per shape (rows repeat the first tokens of ``row``)."""
    shapes = [(r, w) for r in FIT_ROWS for w in FIT_WIDTHS]
    times: dict[tuple[int, int], list[float]] = {s: [] for s in shapes}
    for _ in range(rounds):
        for r, w in shapes:
            ids = np.repeat(row[:, :w], r, axis=0)
            time_calls(model, ids, 1)
            times[(r, w)].append(time_calls(model, ids, calls))
    x = np.array([[1.0, r * w] for r, w in shapes])
    y = np.array([statistics.median(times[s]) for s in shapes])
    (fixed, per_token), *_ = np.linalg.lstsq(x, y, rcond=None)
    return float(fixed), float(per_token)


def print_fit(args, served: list, row: np.ndarray) -> None:
    calls = max(3, args.calls // 3)
    print(f"\nfit of ms = F + c x rows x tokens ({len(FIT_ROWS) * len(FIT_WIDTHS)} shapes, medians of "
          f"{args.rounds} rounds x {calls} calls)")
    for ref, m in zip(args.model, served):
        fixed, per_token = fit_call_cost(m.model, row, args.rounds, calls)
        print(f"{ref:<40} F {fixed:.2f} ms, c {per_token * 1000:.1f} us, F/c {fixed / per_token:.1f} tokens")


def main() -> None:
    from xstilts.serving.commands import load_served

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", required=True, help="repeatable: the models to compare")
    ap.add_argument("--lengths", default="13,40,128", help="tokens per row, specials included")
    ap.add_argument("--threads", type=int, default=1, help="ONNX Runtime threads per call")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=30, help="timed calls per model, length and round")
    ap.add_argument("--fit", action="store_true", help="also fit a call's fixed cost and its cost per row-token")
    args = ap.parse_args()
    lengths = [int(x) for x in args.lengths.split(",")]
    print(f"CPU: {cpu_info()}", flush=True)
    served = []
    for ref in args.model:  # one at a time: two models of one name cannot share a server
        served += load_served([ref], intra_op_threads=args.threads)
    rows = token_rows(served[0].tokenizer, sorted({*lengths, *([max(FIT_WIDTHS)] if args.fit else [])}))
    for m in served:
        for n in lengths:
            time_calls(m.model, rows[n], 3)  # warm-up: first calls allocate
    times = {(i, n): [] for i in range(len(served)) for n in lengths}
    for _ in range(args.rounds):
        for i, m in enumerate(served):
            for n in lengths:
                times[(i, n)].append(time_calls(m.model, rows[n], args.calls))
    print(f"\nms per call, {args.threads} thread(s), median of {args.rounds} rounds x {args.calls} calls")
    print(f"{'model':<40}{'precision':>10}" + "".join(f"{f'{n} tok':>10}" for n in lengths))
    for i, (ref, m) in enumerate(zip(args.model, served)):
        print(f"{ref:<40}{m.manifest.get('precision', '?'):>10}"
              + "".join(f"{statistics.median(times[(i, n)]):>10.2f}" for n in lengths))
    if args.fit:
        print_fit(args, served, rows[max(FIT_WIDTHS)])


if __name__ == "__main__":
    main()
