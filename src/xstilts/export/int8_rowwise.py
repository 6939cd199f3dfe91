"""Row-wise int8: int8 weights per output channel, int8 activations per token, on the fast int8 GEMM.

Every ``MatMul`` whose second input is a constant 2-D weight ``W`` (``in x out``) becomes

    q(x) = round(x / s_x) + 128         (uint8; s_x = max |x| / 127 over each token's row;
                                         one QuantizeLinear, blocked over the row: opset 21)
    y    = MatMulIntegerToFloat(q(x), W_q, s_x, s_w, 128)
                                        (ONNX Runtime multiplies a per-row ``s_x`` into the
                                         product in place, after the GEMM)

with ``W_q = round(W / s_w)`` in [-127, 127] and ``s_w`` = max |W| / 127 per output column.
Each token's row has its own activation scale, so a row's answer never depends on what else
shares its batch (padding included), and an outlier token moves only its own scale. The
activations are quantized once per distinct input (the Q, K and V projections share one).

The export calibrates (:mod:`xstilts.export.int8_calibration`): each input's 8 loudest channels
on English sentences stay fp32 (``Gather`` -> one fp32 ``Gemm`` with those weight rows whose ``C``
is the int8 product, on 2-D views of both; they are zeroed before the row's scale is taken, so
they no longer set it) and the int8 weights are rounded by GPTQ. Every added op works per token,
so rows stay independent. The ``Gemm`` adds the fp32 part as it multiplies, where a ``MatMul``
and an ``Add`` took one more pass over the output, and the row scale goes into the int8 op
rather than a ``Mul`` after it (outputs identical both ways). On a 2-core AMX Xeon, 2026-12-07
(docs/serving-performance.md): the Gemm made a call up to 8 % faster (one thread, three runs;
13-token calls from 1 % slower to 4 % faster) and a server 1.04x the requests/s at 0.99x the p99;
the scale inside, 0-4 % and 1.03x at 0.98x.

Why not ONNX Runtime's own quantizers: ``MatMulNBits`` (blockwise, 8 or 4 bits) ran no faster
than fp32 on a 2-core AMX Xeon (ORT 1.32, 1x128 tokens: 42 ms against 23 ms for this graph's
first form, with Mul/Round/Add/Cast where one QuantizeLinear now stands), and
``quantize_dynamic`` scales activations per tensor (whole batch, padding included), which made
served answers depend on their batch neighbours and moved F1 by up to 1.5 points. This graph
keeps ``MatMulIntegerToFloat``'s u8 x s8 kernel (VNNI and AMX), ~2x faster than blockwise.

AVX2-only x86 CPUs (no VNNI) compute u8 x s8 with ``vpmaddubsw``, whose 16-bit pair sums can
saturate with these ranges (ONNX Runtime's quantization docs name the problem). There
:func:`exact_graph` builds the session from one of two exact forms: the 7-bit-activation form
(:func:`to_act7`: zero point 64, ``|q - 64| <= 63``, so a pair sums to at most 2 x 127 x 127 <
2^15 and u8 x s8 runs without saturation) when the export's check of that form passed (it rounds
activations twice as coarsely, so its answers differ from the 8-bit graph's and are checked on
their own), else the 8-bit graph with uint8 weights and zero point 128 (:func:`to_u8u8`: the same
products, u8 x u8, slower). On a 2-core AVX2-only EPYC the 7-bit form served 1.09-1.15x the
requests/s of the u8 x u8 form at 0.90x its p99 (two A/B runs, 2026-12-07,
docs/serving-performance.md).
"""
from __future__ import annotations

import os
import platform
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

QMAX = 127.0
ZERO_POINT = 128
#: the AVX2 form's activations (:func:`to_act7`): 7 bits around zero point 64
ACT7_ZERO_POINT = 64
ACT7_QMAX = 63.0
#: the graph's opset: QuantizeLinear with one scale per block of a row (``block_size``) is opset 21
QUANT_OPSET = 21
_EPS = 1e-8
_OP = "MatMulIntegerToFloat"


class _Rewrite:
    """Builds the quantized nodes and initializers of one graph (``run`` replaces them in place)."""

    def __init__(self, graph, calibration=None) -> None:
        from onnx import numpy_helper

        self.graph = graph
        self.calibration = calibration  # xstilts.export.int8_calibration.Calibration, or None: nearest rounding
        self.weights = {i.name: i for i in graph.initializer if len(i.dims) == 2}
        self.consts = [numpy_helper.from_array(np.array([-1], np.int64), "rq_axes"),
                       numpy_helper.from_array(np.array(_EPS, np.float32), "rq_eps"),
                       numpy_helper.from_array(np.array(QMAX, np.float32), "rq_qmax"),
                       numpy_helper.from_array(np.array(ZERO_POINT, np.uint8), "rq_zp")]
        self.inputs: dict[str, tuple[str, str]] = {}   # activation -> (its uint8, its row scales)
        self.split: dict[str, tuple[str, str]] = {}    # activation -> (int8 part, fp32 outlier channels)
        self.replaced: set[str] = set()
        self.nodes: list = []

    def run(self) -> int:
        for node in self.graph.node:
            w = _constant_weight(node, self.weights)
            if w is not None:
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

    def _outliers(self, x: str, kept: np.ndarray, width: int) -> tuple[str, str]:
        """``x`` with its ``kept`` channels zeroed (quantized) and those channels alone (fp32), once per
        activation."""
        from onnx import helper, numpy_helper

        if x not in self.split:
            p = f"rq_out{len(self.split)}_"
            mask = np.ones(width, np.float32)
            mask[kept] = 0.0
            self.consts += [numpy_helper.from_array(mask, p + "mask"), numpy_helper.from_array(kept, p + "idx")]
            self.nodes += [helper.make_node("Mul", [x, p + "mask"], [p + "int8"]),
                           helper.make_node("Gather", [x, p + "idx"], [p + "fp32"], axis=-1),
                           helper.make_node("Reshape", [p + "fp32", self._rows_of(kept.size)], [p + "fp32_2d"])]
            self.split[x] = (p + "int8", p + "fp32_2d")
        return self.split[x]

    def _rows_of(self, width: int) -> str:
        """The name of the constant shape ``[-1, width]``: a tensor's 2-D view, one row per token."""
        from onnx import numpy_helper

        name = f"rq_rows_{width}"
        if all(c.name != name for c in self.consts):
            self.consts.append(numpy_helper.from_array(np.array([-1, width], np.int64), name))
        return name

    def _weights(self, x: str, W: np.ndarray, kept: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(int8 weights, their per-output-channel scales, the fp32 rows of the ``kept`` channels)."""
        ws = weight_scales(W, kept)
        cal = self.calibration
        if cal is not None and x in cal.gram:  # X^T X is collected only when GPTQ is asked for
            from xstilts.export.int8_calibration import gptq_round

            wq, fp32 = gptq_round(W, cal.gram[x], ws, kept)
            return wq, ws, fp32
        rounded = W.copy()
        if kept is not None:
            rounded[kept] = 0.0  # the fp32 rows: not in the int8 product
        wq = np.clip(np.round(rounded / ws), -QMAX, QMAX).astype(np.int8)
        return wq, ws, (W[kept] if kept is not None else np.zeros((0, W.shape[1]), np.float32))

    def _matmul(self, node, w: str) -> None:
        from onnx import helper, numpy_helper

        x, width = node.input[0], int(self.weights[w].dims[0])
        kept = self.calibration.kept(x) if self.calibration is not None else None
        part = self._outliers(x, kept, width) if kept is not None else (x, None)
        q, scale = self._activation(part[0], width)
        wq, ws, fp32 = self._weights(x, numpy_helper.to_array(self.weights[w]).astype(np.float32), kept)
        self.consts += [numpy_helper.from_array(wq, w + "_q"), numpy_helper.from_array(ws.astype(np.float32), w + "_s")]
        self.replaced.add(w)
        out = node.output[0]
        int8_out = out if kept is None else out + "_int8"
        self.nodes.append(helper.make_node(_OP, [q, w + "_q", scale, w + "_s", "rq_zp"], [int8_out],
                                           domain="com.microsoft", name=(node.name or out) + "_rq"))
        if kept is not None:
            self.consts.append(numpy_helper.from_array(fp32.astype(np.float32), w + "_fp32"))
            self._add_fp32_part(out, int8_out, part[1], w + "_fp32", fp32.shape[1])

    def _add_fp32_part(self, out: str, int8_out: str, fp32_rows: str, weight: str, width: int) -> None:
        """``out`` = ``int8_out`` + the kept channels (``fp32_rows``, 2-D) times their fp32 weight rows,
        as one Gemm on 2-D views (``C``: the int8 product), reshaped back to ``int8_out``'s shape."""
        from onnx import helper

        self.nodes += [helper.make_node("Reshape", [int8_out, self._rows_of(width)], [out + "_int8_2d"]),
                       helper.make_node("Gemm", [fp32_rows, weight, out + "_int8_2d"], [out + "_2d"]),
                       helper.make_node("Shape", [int8_out], [out + "_shape"]),
                       helper.make_node("Reshape", [out + "_2d", out + "_shape"], [out])]


def quantize_rowwise(src: str | os.PathLike[str], dst: str | os.PathLike[str], *,
                     calibration_batches: Sequence[Mapping] | None = None, outliers: int | None = None,
                     gptq: bool = True) -> Path:
    """Write the row-wise int8 version of the fp32 graph ``src`` to ``dst`` (see the module).

    With ``calibration_batches`` (``{input_ids, attention_mask}``), each input's ``outliers``
    largest channels stay fp32 and the weights are rounded by GPTQ (``gptq``); see
    :mod:`xstilts.export.int8_calibration`. Without: every channel int8, nearest rounding."""
    import onnx
    from onnx import helper

    model = onnx.load(str(src))
    calibration = _calibrate(model, calibration_batches, outliers, gptq) if calibration_batches else None
    if not _Rewrite(model.graph, calibration).run():
        raise ValueError(f"{src}: no MatMul with a constant 2-D weight to quantize")
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx"):
            opset.version = max(opset.version, QUANT_OPSET)
    if not any(o.domain == "com.microsoft" for o in model.opset_import):
        model.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    onnx.save(model, str(dst))
    return Path(dst)


def weight_scales(w: np.ndarray, kept: np.ndarray | None = None) -> np.ndarray:
    """Each output column's int8 scale of ``w`` (``in x out``): max |w| / 127 over the int8 rows (the
    ``kept`` rows stay fp32 and do not set it); 1 for an all-zero column."""
    int8_rows = w if kept is None else np.delete(w, kept, axis=0)
    scales = np.abs(int8_rows).max(0) / QMAX
    scales[scales == 0] = 1.0
    return scales


def _constant_weight(node, weights) -> str | None:
    """The name of ``node``'s constant 2-D weight if it is a MatMul the rewrite quantizes, else None."""
    if node.op_type == "MatMul" and len(node.input) == 2 and node.input[1] in weights:
        return node.input[1]
    return None


def quantized_inputs(graph) -> list[str]:
    """The activations the rewrite quantizes: first inputs of MatMuls with a constant 2-D weight."""
    weights = {i.name for i in graph.initializer if len(i.dims) == 2}
    return list(dict.fromkeys(n.input[0] for n in graph.node if _constant_weight(n, weights) is not None))


def _calibrate(model, batches, outliers: int | None, gptq: bool):
    from xstilts.export.int8_calibration import OUTLIERS, calibrate

    return calibrate(model, quantized_inputs(model.graph), batches,
                     outliers=OUTLIERS if outliers is None else outliers, gptq=gptq)


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


def to_act7(model) -> int:
    """Give the row-wise graph ``model`` 7-bit activations, in place: every token's row is quantized to
    ``round(x / s_x) + 64`` with ``s_x = max |x| / 63``, and the GEMM's activation zero point becomes 64
    (the two shared constants the rewrite made). Weights stay int8, so ONNX Runtime's u8 x s8 kernel
    stays exact on AVX2 (pair sums within int16). Returns the constants changed, 0 if ``model`` is not a
    row-wise int8 graph. Not to be combined with :func:`to_u8u8` (its weight zero point is ``rq_zp``)."""
    from onnx import numpy_helper

    new = {"rq_zp": np.array(ACT7_ZERO_POINT, np.uint8), "rq_qmax": np.array(ACT7_QMAX, np.float32)}
    found = [i for i in model.graph.initializer if i.name in new]
    if len(found) != len(new) or not any(n.op_type == _OP for n in model.graph.node):
        return 0
    for init in found:
        init.CopyFrom(numpy_helper.from_array(new[init.name], init.name))
    return len(found)


def exact_graph(path: str | os.PathLike[str], *, saturating: bool | None = None,
                act7: bool = False) -> str | bytes:
    """What to build the session from: ``path`` itself, or a form of the row-wise int8 graph there as
    bytes: its 7-bit-activation form when ``act7`` (on any CPU: exact everywhere), else, on a CPU where
    the u8 x s8 kernel may saturate, its u8 x u8 form. A graph that is not row-wise int8: ``path``."""
    import onnx

    if saturating is None:
        saturating = saturating_u8s8()
    if not (act7 or saturating):
        return str(path)
    model = onnx.load(str(path))
    if not (to_act7(model) if act7 else to_u8u8(model)):
        return str(path)
    return model.SerializeToString()
