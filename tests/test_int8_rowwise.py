"""Row-wise int8 graphs (xstilts.export.int8_rowwise) on a two-MatMul graph built here."""
from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")


def _graph(path, seed=0):
    """y = relu(x @ W1) @ W2 with x (batch, seq, 16): two MatMuls with constant weights, one not."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w1 = rng.normal(size=(16, 24)).astype(np.float32)
    w2 = rng.normal(size=(24, 8)).astype(np.float32)
    w2[:, 3] = 0.0  # an all-zero output channel: its scale must not divide by zero
    nodes = [helper.make_node("MatMul", ["x", "w1"], ["h"]), helper.make_node("Relu", ["h"], ["r"]),
             helper.make_node("MatMul", ["r", "w2"], ["y"]),
             helper.make_node("MatMul", ["x", "xt"], ["g"])]  # no constant weight: left alone
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "s", 16])
    xt = helper.make_tensor_value_info("xt", TensorProto.FLOAT, ["b", 16, "s"])
    outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("y", "g")]
    graph = helper.make_graph(nodes, "g", [x, xt], outs, [numpy_helper.from_array(w1, "w1"),
                                                           numpy_helper.from_array(w2, "w2")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))
    return w1, w2


def _reference(x, w):
    """The row-wise int8 product in numpy: per-token uint8 activations, per-channel int8 weights."""
    s_x = np.maximum(np.abs(x).max(-1, keepdims=True), 1e-8) / 127
    q = np.round(x / s_x)  # half to even, as ONNX's QuantizeLinear
    s_w = np.abs(w).max(0) / 127
    s_w[s_w == 0] = 1.0
    wq = np.clip(np.round(w / s_w), -127, 127)
    return (q @ wq) * s_w * s_x


def _run(source, x):
    """The graph's outputs as served: on a CPU whose u8 x s8 kernel saturates, its exact u8 x u8 form."""
    from xstilts.export.int8_rowwise import exact_graph

    sess = ort.InferenceSession(exact_graph(source) if isinstance(source, str) else source,
                                providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x, "xt": np.swapaxes(x, 1, 2).copy()})


def test_rowwise_graph_is_the_numpy_definition_and_leaves_other_matmuls(tmp_path):
    from xstilts.export.int8_rowwise import quantize_rowwise

    w1, w2 = _graph(tmp_path / "f.onnx")
    quantize_rowwise(tmp_path / "f.onnx", tmp_path / "q.onnx")
    q = onnx.load(str(tmp_path / "q.onnx"))
    ops = [n.op_type for n in q.graph.node]
    assert ops.count("MatMulIntegerToFloat") == 2 and ops.count("MatMul") == 1
    x = np.random.default_rng(1).normal(size=(3, 5, 16)).astype(np.float32)
    y, g = _run(str(tmp_path / "q.onnx"), x)
    h = np.maximum(_reference(x, w1), 0)
    np.testing.assert_allclose(y, _reference(h, w2), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(g, x @ np.swapaxes(x, 1, 2), rtol=1e-5)  # the fp32 MatMul untouched
    fy = np.maximum(x @ w1, 0) @ w2
    assert np.abs(y - fy).max() < 0.05 * np.abs(fy).max()  # and close to fp32


def test_a_rows_answer_does_not_depend_on_its_batch(tmp_path):
    """Each token has its own scale: a row alone equals the row beside others and beside padding."""
    from xstilts.export.int8_rowwise import quantize_rowwise

    _graph(tmp_path / "f.onnx")
    quantize_rowwise(tmp_path / "f.onnx", tmp_path / "q.onnx")
    rng = np.random.default_rng(2)
    batch = rng.normal(size=(4, 7, 16)).astype(np.float32)
    batch[0] *= 50  # a loud neighbour would move a per-tensor scale
    batch[2, 4:] = 0  # padding
    together = _run(str(tmp_path / "q.onnx"), batch)[0]
    for i in range(4):
        alone = _run(str(tmp_path / "q.onnx"), batch[i:i + 1])[0]
        assert np.array_equal(alone[0], together[i])
    short = _run(str(tmp_path / "q.onnx"), batch[2:3, :4])[0]
    assert np.array_equal(short[0], together[2, :4])


def test_u8u8_version_gives_the_same_outputs(tmp_path):
    """The exact form for CPUs whose u8 x s8 kernel saturates: uint8 weights + zero point 128."""
    from xstilts.export.int8_rowwise import exact_graph, quantize_rowwise, saturating_u8s8, to_u8u8

    w1, w2 = _graph(tmp_path / "f.onnx")
    quantize_rowwise(tmp_path / "f.onnx", tmp_path / "q.onnx")
    x = np.random.default_rng(3).normal(size=(2, 6, 16)).astype(np.float32)
    u8u8 = exact_graph(tmp_path / "q.onnx", saturating=True)
    assert isinstance(u8u8, bytes)
    model = onnx.load_from_string(u8u8)
    assert {i.data_type for i in model.graph.initializer if i.name.endswith("_q")} == {onnx.TensorProto.UINT8}
    y = _run(u8u8, x)[0]
    np.testing.assert_allclose(y, _reference(np.maximum(_reference(x, w1), 0), w2), rtol=1e-4, atol=1e-4)
    if not saturating_u8s8():  # VNNI / AMX: the u8 x s8 graph itself gives the same products
        assert np.array_equal(_run((tmp_path / "q.onnx").read_bytes(), x)[0], y)  # bytes: run as they are
    assert exact_graph(tmp_path / "q.onnx", saturating=False) == str(tmp_path / "q.onnx")
    assert to_u8u8(model) == 0  # already converted: nothing left to change
    fp32 = exact_graph(tmp_path / "f.onnx", saturating=True)
    assert fp32 == str(tmp_path / "f.onnx")  # no row-wise int8 in it


def _reference7(x, w):
    """The 7-bit-activation form in numpy: |round(x / s_x)| <= 63 with s_x = max |x| / 63."""
    s_x = np.maximum(np.abs(x).max(-1, keepdims=True), 1e-8) / 63
    s_w = np.abs(w).max(0) / 127
    s_w[s_w == 0] = 1.0
    return (np.round(x / s_x) @ np.clip(np.round(w / s_w), -127, 127)) * s_w * s_x


def test_act7_form_is_its_numpy_definition_where_8_bit_u8s8_would_saturate(tmp_path):
    """Weights all +-127 and activations at their row's maximum: a pair of u8 x s8 products sums to
    2 x 255 x 127 in the 8-bit graph (beyond int16 for vpmaddubsw), to 2 x 127 x 127 here. The 7-bit
    form is its definition on any CPU, AVX2-only ones included, with int8 weights kept."""
    from onnx import TensorProto, helper, numpy_helper

    from xstilts.export.int8_rowwise import exact_graph, quantize_rowwise, saturating_u8s8, to_act7

    w = np.where(np.arange(64 * 8).reshape(64, 8) % 3 == 0, -1.0, 1.0).astype(np.float32)
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "w"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["b", "s", 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(w, "w")])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(tmp_path / "f.onnx"))
    quantize_rowwise(tmp_path / "f.onnx", tmp_path / "q.onnx")
    x = np.full((2, 3, 64), 2.5, np.float32)
    x[1] = np.random.default_rng(4).normal(size=(3, 64))
    act7 = exact_graph(tmp_path / "q.onnx", saturating=False, act7=True)
    model = onnx.load_from_string(act7)
    assert {i.data_type for i in model.graph.initializer if i.name.endswith("_q")} == {onnx.TensorProto.INT8}
    y = ort.InferenceSession(act7, providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    np.testing.assert_allclose(y, _reference7(x, w), rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(y[0], x[0] @ w, rtol=1e-5)  # constant rows round exactly
    if saturating_u8s8():  # AVX2 without VNNI: the 8-bit graph run as exported is wrong here (0.4 for 50)
        raw = ort.InferenceSession(str(tmp_path / "q.onnx"), providers=["CPUExecutionProvider"]).run(None, {"x": x})
        assert np.abs(raw[0][0] - x[0] @ w).max() > 1.0
    assert to_act7(onnx.load(str(tmp_path / "f.onnx"))) == 0  # fp32: nothing to change
    assert exact_graph(tmp_path / "f.onnx", act7=True) == str(tmp_path / "f.onnx")


@pytest.mark.parametrize("manifest, saturating, form", [
    ({"precision": "fp32"}, True, None),
    ({"precision": "int8", "int8_method": "rowwise", "int8_act7": {"passed": True}}, False, "u8s8"),
    ({"precision": "int8", "int8_method": "rowwise", "int8_act7": {"passed": True}}, True, "act7"),
    ({"precision": "int8", "int8_method": "rowwise", "int8_act7": {"passed": False}}, True, "u8u8"),
    ({"precision": "int8", "int8_method": "rowwise"}, True, "u8u8"),  # bundles exported before the form
    ({"precision": "int8"}, True, "blockwise"),
])
def test_which_int8_form_a_cpu_serves(manifest, saturating, form):
    from xstilts.export.runtime import int8_form

    assert int8_form(manifest, saturating) == form


@pytest.mark.parametrize("flags, machine, saturating", [
    ("fpu sse avx2 fma avx512f avx512bw", "x86_64", True),       # Skylake-X: vpmaddubsw
    ("fpu sse avx2 fma", "x86_64", True),                         # AVX2-only EPYC, laptops
    ("fpu avx2 avx512f avx512_vnni", "x86_64", False),            # VNNI: vpdpbusd, 32-bit sums
    ("fpu avx2 avx_vnni", "x86_64", False),
    ("fpu avx2 avx512_vnni amx_tile amx_int8", "x86_64", False),
    ("", "x86_64", True),                                         # unknown x86: take the exact path
    ("fp asimd asimddp", "aarch64", False),
])
def test_which_cpus_take_the_exact_path(flags, machine, saturating):
    from xstilts.export.int8_rowwise import saturating_u8s8

    cpuinfo = f"processor\t: 0\nmodel name\t: test\nflags\t\t: {flags}\n"
    assert saturating_u8s8(cpuinfo, machine) is saturating


def test_a_graph_without_weights_to_quantize_is_refused(tmp_path):
    from onnx import TensorProto, helper

    from xstilts.export.int8_rowwise import quantize_rowwise

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 2])
    graph = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g", [x],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 2])])
    onnx.save(helper.make_model(graph), str(tmp_path / "r.onnx"))
    with pytest.raises(ValueError, match="no MatMul with a constant 2-D weight"):
        quantize_rowwise(tmp_path / "r.onnx", tmp_path / "q.onnx")


def test_length_groups_bound_padding_and_cover_every_row():
    from xstilts.export.runtime import PAD_TOKENS, length_groups

    lengths = np.array([13, 115, 15, 128, 9, 80, 1, 25, 116])
    groups = length_groups(lengths)
    assert sorted(np.concatenate(groups).tolist()) == list(range(len(lengths)))
    # longest first: 128 takes 116 (12 shorter) but not 115; 25 takes 15 and 13, not 9
    assert [g.tolist() for g in groups] == [[3, 8], [1], [5], [0, 2, 7], [4, 6]]
    for g in groups:
        assert lengths[g].max() - lengths[g].min() <= PAD_TOKENS
    assert [g.tolist() for g in length_groups(lengths, pad=0)][:2] == [[3], [8]]


def _tagger(path):
    """input_ids -> embedding -> MatMul -> (batch, sequence, 3) logits, as an export names its axes."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(4)
    nodes = [helper.make_node("Gather", ["emb", "input_ids"], ["h"]),
             helper.make_node("Cast", ["attention_mask"], ["m"], to=TensorProto.FLOAT),
             helper.make_node("Unsqueeze", ["m", "axis"], ["m3"]),
             helper.make_node("Mul", ["h", "m3"], ["hm"]),
             helper.make_node("MatMul", ["hm", "w"], ["logits"])]
    ins = [helper.make_tensor_value_info(n, TensorProto.INT64, ["batch", "sequence"])
           for n in ("input_ids", "attention_mask")]
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "sequence", 3])
    inits = [numpy_helper.from_array(rng.normal(size=(50, 8)).astype(np.float32), "emb"),
             numpy_helper.from_array(rng.normal(size=(8, 3)).astype(np.float32), "w"),
             numpy_helper.from_array(np.array([-1], np.int64), "axis")]
    graph = helper.make_graph(nodes, "t", ins, [out], inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), str(path))


def test_grouped_run_equals_the_whole_batch_on_every_real_token(tmp_path):
    """OnnxModel.run cuts each length group to its longest row; real tokens get the whole batch's
    outputs, padding positions get -1e4 where a group was cut, and row order is kept."""
    from xstilts.export.int8_rowwise import quantize_rowwise
    from xstilts.export.runtime import OnnxModel

    _tagger(tmp_path / "t.onnx")
    quantize_rowwise(tmp_path / "t.onnx", tmp_path / "q.onnx")
    lengths = [3, 30, 4, 28, 1]  # two groups: 30 and 28, then 4, 3 and 1 (cut to 4)
    ids = np.zeros((5, 30), np.int64)
    mask = np.zeros_like(ids)
    rng = np.random.default_rng(5)
    for i, n in enumerate(lengths):
        ids[i, :n], mask[i, :n] = rng.integers(1, 50, n), 1
    for path, int8 in ((tmp_path / "t.onnx", None), (tmp_path / "q.onnx", "rowwise"), (tmp_path / "q.onnx", "dynamic")):
        model = OnnxModel(path, int8=int8)
        assert model.row_wise == (int8 == "dynamic")
        got = model.run({"input_ids": ids, "attention_mask": mask})[0]
        whole = model.session.run(None, {"input_ids": ids, "attention_mask": mask})[0]
        assert got.shape == whole.shape
        for i, n in enumerate(lengths):
            np.testing.assert_allclose(got[i, :n], whole[i, :n], rtol=1e-6, atol=1e-6)
        assert (got[0, 4:] == -1e4).all() and (got[4, 4:] == -1e4).all()


# -- calibration: outlier channels kept fp32, GPTQ rounding (xstilts.export.int8_calibration) --------

def _nearest(w, scale):
    return np.clip(np.round(w / scale), -127, 127).astype(np.int8)


def test_gptq_with_uncorrelated_inputs_is_nearest_rounding():
    """With X^T X diagonal no row's error can be carried by another row: GPTQ rounds to nearest."""
    from xstilts.export.int8_calibration import gptq_round

    rng = np.random.default_rng(4)
    w = rng.normal(size=(12, 5))
    scale = np.abs(w).max(0) / 127
    q, fp32 = gptq_round(w, np.diag(rng.uniform(0.5, 3.0, size=12)), scale)
    assert np.array_equal(q, _nearest(w, scale)) and fp32.shape == (0, 5)


def _correlated(rng, tokens=400, width=16):
    """Inputs whose channels move together, as a layer's inputs do."""
    return rng.normal(size=(tokens, 4)) @ rng.normal(size=(4, width)) + 0.1 * rng.normal(size=(tokens, width))


def test_gptq_moves_the_products_on_correlated_inputs_less_than_nearest_rounding():
    from xstilts.export.int8_calibration import gptq_round

    rng = np.random.default_rng(5)
    x, w = _correlated(rng), rng.normal(size=(16, 6))
    scale = np.abs(w).max(0) / 127
    q, _ = gptq_round(w, x.T @ x, scale)
    nearest = np.linalg.norm(x @ (w - _nearest(w, scale) * scale))
    gptq = np.linalg.norm(x @ (w - q * scale))
    assert np.abs(q.astype(int)).max() <= 127
    assert gptq < 0.7 * nearest, (gptq, nearest)


def test_gptq_kept_rows_come_back_fp32_and_take_the_others_error():
    """Rows kept fp32 are 0 in the int8 weights and come back unrounded, carrying the rounded rows'
    error: the product moves less than with the same rows kept at their own values."""
    from xstilts.export.int8_calibration import gptq_round

    rng = np.random.default_rng(6)
    x, w = _correlated(rng), rng.normal(size=(16, 6))
    kept = np.array([3, 11])
    rest = np.delete(np.arange(16), kept)
    scale = np.abs(w[rest]).max(0) / 127
    q, fp32 = gptq_round(w, x.T @ x, scale, kept)
    assert not q[kept].any() and fp32.shape == (2, 6)
    full = q * scale
    full[kept] = fp32
    plain = _nearest(w, scale) * scale
    plain[kept] = w[kept]
    assert np.linalg.norm(x @ (w - full)) < 0.7 * np.linalg.norm(x @ (w - plain))


def _outlier_reference(x, w, kept):
    """Row-wise int8 of the channels not kept, plus the kept channels in fp32."""
    xi, wi = x.copy(), w.copy()
    xi[..., kept], wi[kept] = 0.0, 0.0
    return _reference(xi, wi) + x[..., kept] @ w[kept]


def test_outlier_channels_stay_fp32_and_the_rest_is_the_rowwise_definition(tmp_path):
    """Calibrated on tokens whose channel 4 is 30x the others (padding, 100x, is not counted): that
    channel stays fp32 in the first MatMul, the second keeps its own loudest channel, and the
    graph is closer to fp32 than the uncalibrated one."""
    from xstilts.export.int8_rowwise import quantize_rowwise

    w1, w2 = _graph(tmp_path / "f.onnx")
    rng = np.random.default_rng(7)
    x = rng.normal(size=(3, 5, 16)).astype(np.float32)
    x[..., 4] *= 30
    calib = x.copy()
    calib[:, 3:, 9] = 100.0  # padding: masked out of the statistics
    mask = np.ones((3, 5), np.int64)
    mask[:, 3:] = 0
    batch = {"x": calib, "xt": np.swapaxes(calib, 1, 2).copy(), "attention_mask": mask}
    quantize_rowwise(tmp_path / "f.onnx", tmp_path / "c.onnx", calibration_batches=[batch], outliers=1, gptq=False)
    ops = [n.op_type for n in onnx.load(str(tmp_path / "c.onnx")).graph.node]
    assert ops.count("Gather") == 2 and ops.count("Gemm") == 2  # one fp32 outlier Gemm each
    assert ops.count("MatMul") == 1  # x @ xt, left alone
    loud = int(np.abs(np.maximum(calib[:, :3] @ w1, 0)).max((0, 1)).argmax())
    h = np.maximum(_outlier_reference(x, w1, [4]), 0)
    y = _run(str(tmp_path / "c.onnx"), x)[0]
    np.testing.assert_allclose(y, _outlier_reference(h, w2, [loud]), rtol=1e-4, atol=1e-4)
    quantize_rowwise(tmp_path / "f.onnx", tmp_path / "q.onnx")
    fy = np.maximum(x @ w1, 0) @ w2
    assert np.abs(y - fy).mean() < 0.6 * np.abs(_run(str(tmp_path / "q.onnx"), x)[0] - fy).mean()


def test_weight_scales_span_the_int8_rows_only():
    from xstilts.export.int8_rowwise import weight_scales

    w = np.array([[2.0, 0.0], [-254.0, 0.0], [63.5, 0.0]])
    np.testing.assert_allclose(weight_scales(w), [2.0, 1.0])  # max |w| / 127; an all-zero column: 1
    np.testing.assert_allclose(weight_scales(w, np.array([1])), [0.5, 1.0])  # the fp32 row does not set it
