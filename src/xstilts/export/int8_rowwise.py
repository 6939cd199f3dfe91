"""Row-wise int8: int8 weights per output channel, int8 activations per token, on the fast int8 GEMM.

Every ``MatMul`` whose second input is a constant 2-D weight ``W`` (``in x out``) becomes

    q(x) = round(x / s_x) + 128         (uint8; s_x = max |x| / 127 over each token's row;
                                         one QuantizeLinear, blocked over the row: opset 21)
    y    = MatMulIntegerToFloat(q(x), W_q, 1.0, s_w, 128) * s_x

with ``W_q = round(W / s_w)`` in [-127, 127] and ``s_w`` = max |W| / 127 per output column.
Each token's row has its own activation scale, so a row's answer never depends on what else
shares its batch (padding included), and an outlier token moves only its own scale. The
activations are quantized once per distinct input (the Q, K and V projections share one).

Why not ONNX Runtime's own quantizers: ``MatMulNBits`` (blockwise, 8 or 4 bits) ran no faster
than fp32 on a 2-core AMX Xeon (ORT 1.32, 1x128 tokens: 42 ms against 23 ms for this graph's
first form, with Mul/Round/Add/Cast where one QuantizeLinear now stands), and
``quantize_dynamic`` scales activations per tensor (whole batch, padding included), which made
served answers depend on their batch neighbours and moved F1 by up to 1.5 points. This graph
keeps ``MatMulIntegerToFloat``'s u8 x s8 kernel (VNNI and AMX), ~2x faster than blockwise.

AVX2-only x86 CPUs (no VNNI) compute u8 x s8 with ``vpmaddubsw``, whose 16-bit pair sums can
saturate with these ranges (ONNX Runtime's quantization docs name the problem); there
:func:`exact_graph` turns the weights into uint8 with zero point 128 (u8 x u8: the same
products, exact, slower) before the session is built.
"""
from __future__ import annotations

import os
import platform
from pathlib import Path

import numpy as np

QMAX = 127.0
ZERO_POINT = 128
#: the graph's opset: QuantizeLinear with one scale per block of a row (``block_size``) is opset 21
QUANT_OPSET = 21
_EPS = 1e-8
_OP = "MatMulIntegerToFloat"


class _Rewrite:
    """Builds the quantized nodes and initializers of one graph (``run`` replaces them in place)."""

    def __init__(self, graph) -> None:
        from onnx import numpy_helper

        self.graph = graph
        self.weights = {i.name: i for i in graph.initializer if len(i.dims) == 2}
        self.consts = [numpy_helper.from_array(np.array([-1], np.int64), "rq_axes"),
                       numpy_helper.from_array(np.array(_EPS, np.float32), "rq_eps"),
                       numpy_helper.from_array(np.array(QMAX, np.float32), "rq_qmax"),
                       numpy_helper.from_array(np.array(ZERO_POINT, np.uint8), "rq_zp"),
                       numpy_helper.from_array(np.array(1.0, np.float32), "rq_one")]
        self.inputs: dict[str, tuple[str, str]] = {}   # activation -> (its uint8, its row scales)
        self.replaced: set[str] = set()
        self.nodes: list = []

    def run(self) -> int:
        for node in self.graph.node:
            w = node.input[1] if node.op_type == "MatMul" and len(node.input) == 2 else None
            if w in self.weights:
                self._matmul(node, w)
            else:
                self.nodes.append(node)
        keep = [i for i in self.graph.initializer if i.name not in self.replaced]
        del self.graph.initializer[:]
        self.graph.initializer.extend(keep + self.consts)
        del self.graph.node[:]
        self.graph.node.extend(self.nodes)
        return len(self.replaced)

    def _activation(self, x: str, width: int) -> tuple[str, str]:
        """uint8 rows of ``x`` (``width`` values a row) and their scales (nodes added once per activation).
        One QuantizeLinear does round(x / s_x) + 128 with ``s_x`` per row (a block of ``width``); its
        zero point must have the scales' shape, hence the Expand."""
        from onnx import helper

        if x not in self.inputs:
            p = f"rq{len(self.inputs)}_"
            self.nodes += [helper.make_node("Abs", [x], [p + "abs"]),
                           helper.make_node("ReduceMax", [p + "abs", "rq_axes"], [p + "amax"], keepdims=1),
                           helper.make_node("Max", [p + "amax", "rq_eps"], [p + "max"]),
                           helper.make_node("Div", [p + "max", "rq_qmax"], [p + "scale"]),
                           helper.make_node("Shape", [p + "scale"], [p + "shape"]),
                           helper.make_node("Expand", ["rq_zp", p + "shape"], [p + "zp"]),
                           helper.make_node("QuantizeLinear", [x, p + "scale", p + "zp"], [p + "q"],
                                            axis=-1, block_size=width)]
            self.inputs[x] = (p + "q", p + "scale")
        return self.inputs[x]

    def _matmul(self, node, w: str) -> None:
        from onnx import helper, numpy_helper

        q, scale = self._activation(node.input[0], int(self.weights[w].dims[0]))
        W = numpy_helper.to_array(self.weights[w]).astype(np.float32)
        ws = np.abs(W).max(0) / QMAX
        ws[ws == 0] = 1.0
        wq = np.clip(np.round(W / ws), -QMAX, QMAX).astype(np.int8)
        self.consts += [numpy_helper.from_array(wq, w + "_q"), numpy_helper.from_array(ws.astype(np.float32), w + "_s")]
        self.replaced.add(w)
        out = node.output[0]
        self.nodes += [helper.make_node(_OP, [q, w + "_q", "rq_one", w + "_s", "rq_zp"], [out + "_rq"],
                                        domain="com.microsoft", name=(node.name or out) + "_rq"),
                       helper.make_node("Mul", [out + "_rq", scale], [out])]


def quantize_rowwise(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> Path:
    """Write the row-wise int8 version of the fp32 graph ``src`` to ``dst`` (see the module)."""
    import onnx
    from onnx import helper

    model = onnx.load(str(src))
    if not _Rewrite(model.graph).run():
        raise ValueError(f"{src}: no MatMul with a constant 2-D weight to quantize")
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx"):
            opset.version = max(opset.version, QUANT_OPSET)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.save(model, str(dst))
    return Path(dst)


def saturating_u8s8(cpuinfo: str | None = None, machine: str | None = None) -> bool:
    """True where ONNX Runtime's u8 x s8 kernel may saturate: x86 CPUs without VNNI or AMX-INT8
    (an x86 machine whose flags cannot be read counts as one)."""
    from xstilts.runtime.environment import cpu_info

    machine = (machine or platform.machine()).lower()
    if machine not in ("x86_64", "amd64", "i386", "i686"):
        return False
    flags = cpu_info(cpuinfo)["flags"]
    return not (flags["avx512_vnni"] or flags["avx_vnni"] or flags["amx_int8"])


def to_u8u8(model) -> int:
    """Turn the int8 weights of the row-wise graph ``model`` into uint8 with zero point 128, in place
    (the products are the same; u8 x u8 runs without saturation). Returns the weights changed."""
    from onnx import numpy_helper

    weights = {n.input[1] for n in model.graph.node if n.op_type == _OP and len(n.input) == 5}
    changed = 0
    for init in model.graph.initializer:
        if init.name in weights and init.data_type == 3:  # TensorProto.INT8
            u8 = (numpy_helper.to_array(init).astype(np.int16) + ZERO_POINT).astype(np.uint8)
            init.CopyFrom(numpy_helper.from_array(u8, init.name))
            changed += 1
    for node in model.graph.node:
        if node.op_type == _OP and node.input[1] in weights and len(node.input) == 5:
            node.input.append("rq_zp")  # b_zero_point: 128, as the activations'
    return changed


def exact_graph(path: str | os.PathLike[str], *, saturating: bool | None = None) -> str | bytes:
    """What to build the session from: ``path`` itself, or, on a CPU where the u8 x s8 kernel may
    saturate and the graph is row-wise int8, its u8 x u8 version as bytes."""
    import onnx

    if saturating is None:
        saturating = saturating_u8s8()
    if not saturating:
        return str(path)
    model = onnx.load(str(path))
    if not to_u8u8(model):
        return str(path)
    return model.SerializeToString()
