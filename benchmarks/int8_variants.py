"""int8 variants of one registered tagging/classification model: metric drift against PyTorch.

Each variant is one of :func:`xstilts.export.graphs.quantize_int8`'s quantizations of the same
fp32 trace: ``rowwise`` (the export's: int8 weights per output channel, int8 activations per
token, calibrated as the export calibrates: outlier channels fp32, GPTQ rounding),
``rowwise_plain`` (the same uncalibrated: every channel int8, nearest rounding), ``blockwise``
(MatMulNBits, 8-bit weights and int8 compute in blocks of 128; ``blockwise_32``: blocks of 32)
or ONNX Runtime's ``dynamic`` int8 (per-channel signed weights, one activation scale per
tensor), the latter also with some MatMuls kept in fp32 (``nodes_to_exclude``),
``reduce_range`` (7-bit weights, ONNX Runtime's advice against u8s8 saturation on AVX2 CPUs
without VNNI) or only MatMuls quantized (the word-embedding Gather kept fp32). Drift is the
export check's own figure (:func:`xstilts.export.checks.metric_drift`: English dev and two
low-resource languages with local gold), each run as the server runs it (blockwise and dynamic:
every row alone; rowwise: batched). Prints the CPU with it: int8 kernels
differ by CPU (VNNI, AMX), so drift does too.

    MLFLOW_TRACKING_URI=... python benchmarks/int8_variants.py --model models:/xstilts-target-panx@champion
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path


def variants(names: list[str]) -> dict[str, dict]:
    """Variant -> keyword arguments of ``quantize_int8`` (``rowwise`` is what the export does)."""
    dense_out = [n for n in names if "/output/dense/" in n]  # attention output and FFN output
    ffn_out = [n for n in names if "/output/dense/" in n and "attention" not in n]
    last2 = [n for n in names if "layer.10/" in n or "layer.11/" in n]
    head = [n for n in names if "layer." not in n]
    dyn = dict(method="dynamic")
    return {"rowwise": dict(method="rowwise", calibrated=True), "rowwise_plain": dict(method="rowwise"),
            "blockwise": dict(method="blockwise"),
            "blockwise_32": dict(method="blockwise", block_size=32),
            "per_channel": dyn, "fp32_dense_out": {**dyn, "nodes_to_exclude": dense_out},
            "fp32_ffn_out": {**dyn, "nodes_to_exclude": ffn_out}, "fp32_head": {**dyn, "nodes_to_exclude": head},
            "fp32_last2": {**dyn, "nodes_to_exclude": last2}, "reduce_range": {**dyn, "reduce_range": True},
            "matmul_only": {**dyn, "op_types": ["MatMul"]}}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="models:/NAME/VERSION or @ALIAS of a target model")
    ap.add_argument("--task", default="panx")
    ap.add_argument("--max-examples", type=int, default=1000, help="dev sentences per language")
    ap.add_argument("--only", default="", help="comma-separated variant names (default: all)")
    ap.add_argument("--out", default="int8-variants", help="folder for the graphs and results.json")
    args = ap.parse_args()

    import onnx
    from xstilts.evaluation.runner import load_eval_model, resolve_head
    from xstilts.export import checks
    from xstilts.export.exporter import _torch_sides, calibration_batches, write_graph
    from xstilts.export.graphs import quantize_int8
    from xstilts.export.runtime import OnnxModel
    from xstilts.families import resolve_lengths
    from xstilts.runtime.environment import cpu_info
    from xstilts.tasks import get_task

    em = load_eval_model(args.model, needs_head=True)
    task = get_task(args.task)
    head = resolve_head(em.model, task)
    max_length, stride = resolve_lengths(task, em.max_length, em.doc_stride)
    module, torch_side = _torch_sides(em, task, head)
    out = Path(args.out)
    (out / "fp32").mkdir(parents=True, exist_ok=True)
    src = write_graph(em, task, head, module, out / "fp32", precision="fp32", max_length=max_length, doc_stride=stride)
    names = [n.name for n in onnx.load(str(src)).graph.node if n.op_type in ("MatMul", "Gemm")]
    print(f"CPU: {json.dumps(cpu_info())}; {len(names)} MatMuls in the graph", flush=True)
    table = variants(names)
    results = {}
    for name in (args.only.split(",") if args.only else list(table)):
        kwargs = table[name]
        dst = out / f"{name}.onnx"
        quantize_int8(src, dst, **{k: v for k, v in kwargs.items() if k != "calibrated"},
                      calibration_batches=(calibration_batches(em, task, max_length, stride)
                                           if kwargs.get("calibrated") else None))
        t0 = time.perf_counter()
        model = OnnxModel(dst, head=head, tokenizer=em.tokenizer, int8=kwargs["method"])
        drift = checks.metric_drift(task, torch_side, model,
                                    em.tokenizer, head=head, max_length=max_length, doc_stride=stride,
                                    max_examples=args.max_examples)
        results[name] = {**{k: (len(v) if isinstance(v, list) and k == "nodes_to_exclude" else v)
                            for k, v in kwargs.items()},
                         "drift": {k: round(v["drift"], 2) for k, v in drift["languages"].items()},
                         "max_abs_drift": round(drift["max_abs_drift"], 2),
                         "seconds_both_sides": round(time.perf_counter() - t0, 1)}
        print(name, json.dumps(results[name]), flush=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
