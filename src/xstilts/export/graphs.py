"""The torch modules ``torch.onnx.export`` traces, the export call itself and int8 quantization."""
from __future__ import annotations

import os
from collections.abc import Sequence
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

#: ONNX opset of the exported graphs (the TorchScript exporter's newest well-supported one).
OPSET = 18
INPUT_NAMES = ("input_ids", "attention_mask")


class HeadGraph(nn.Module):
    """``(input_ids, attention_mask) -> head outputs`` of one head, as ``XstiltsModel(head, batch)``."""

    def __init__(self, model: nn.Module, head: str) -> None:
        super().__init__()
        self.model = model
        self.head = head

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        return self.model(self.head, {"input_ids": input_ids, "attention_mask": attention_mask}).logits


class EmbeddingGraph(nn.Module):
    """Mean pooling over the attention mask of hidden layer ``layer`` (``embed_sentences``' embedding)."""

    def __init__(self, encoder: nn.Module, layer: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.layer = layer

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=self.layer != -1)
        hidden = out.last_hidden_state if self.layer == -1 else out.hidden_states[self.layer]
        m = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1)


class TorchEmbedder:
    """The PyTorch side of a retrieval export check: ``embed`` as the ONNX model has it."""

    def __init__(self, encoder: nn.Module, tokenizer, layer: int) -> None:
        self.encoder, self.tokenizer, self.layer = encoder, tokenizer, layer

    def embed(self, sentences, *, max_length: int, batch_size: int = 32):
        from xstilts.encoders.embed import embed_sentences

        return embed_sentences(self.encoder, self.tokenizer, list(sentences), batch_size=batch_size,
                               max_length=max_length, layer=self.layer)


@contextmanager
def eager_attention(module: nn.Module):
    """Trace with transformers' eager attention (restored afterwards): its graph is softmax over masked
    scores; the SDPA path's export adds IsNaN/Where guards over every attention matrix, which cost
    time in each call and guard nothing here (every row has at least one real token)."""
    models = [m for m in module.modules() if hasattr(m, "set_attn_implementation") and hasattr(m, "config")]
    before = [m.config._attn_implementation for m in models]
    try:
        for m in models:
            m.set_attn_implementation("eager")
        yield
    finally:
        for m, impl in zip(models, before):
            m.set_attn_implementation(impl)


def export_graph(module: nn.Module, sample: dict, path: str | os.PathLike[str], *, family) -> Path:
    """Trace ``module`` on ``sample`` into one ONNX file at ``path`` with the family's dynamic axes.

    The TorchScript exporter (``dynamo=False``): it needs no onnxscript, traces the
    2-layer test models in seconds and gave the same logits as the dynamo exporter
    (max abs diff 4e-7 both) when both were tried.
    """
    import warnings

    axes = {name: dict(enumerate(family.export_input_axes)) for name in INPUT_NAMES}
    for name, dims in family.export_outputs.items():
        axes[name] = {i: d for i, d in enumerate(dims) if d is not None}
    module.eval()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad(), eager_attention(module):
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (sample["input_ids"], sample["attention_mask"]), str(path),
                          input_names=list(INPUT_NAMES), output_names=list(family.export_outputs),
                          dynamic_axes=axes, opset_version=OPSET, dynamo=False, do_constant_folding=True)
    return path


#: int8 methods of :func:`quantize_int8` (``rowwise``: what ``xstilts export --quantize int8`` does).
INT8_METHODS = ("rowwise", "blockwise", "dynamic")
#: methods whose activation scales do not follow each row alone: served one request row at a time
BATCH_DEPENDENT_INT8 = ("blockwise", "dynamic")
#: blockwise: weights and activations are quantized in blocks of this many values along the reduced axis
INT8_BLOCK = 128


def quantize_int8(src: str | os.PathLike[str], dst: str | os.PathLike[str], *, method: str = "rowwise",
                  block_size: int = INT8_BLOCK, nodes_to_exclude: Sequence[str] = (),
                  reduce_range: bool = False, op_types: Sequence[str] = (),
                  calibration_batches: Sequence | None = None) -> Path:
    """int8 quantization of an fp32 graph.

    ``rowwise`` (the export's, :mod:`xstilts.export.int8_rowwise`): int8 weights per output
    channel, uint8 activations scaled per token, on ONNX Runtime's u8 x s8 GEMM (VNNI / AMX).
    With ``calibration_batches`` it keeps each input's outlier channels fp32 and rounds the weights
    by GPTQ (:mod:`xstilts.export.int8_calibration`; the export passes English sentences).
    ``blockwise``: ONNX Runtime's ``MatMulNBits`` with 8-bit symmetric weights in blocks of
    ``block_size``, computed in int8 (``accuracy_level`` 4: activations quantized per block).
    ``dynamic``: ``quantize_dynamic`` (int8 weights per output channel, one activation scale per
    tensor per call: a row's answer depends on its batch); ``nodes_to_exclude`` (MatMuls kept
    fp32), ``reduce_range`` (7-bit weights) and ``op_types`` apply to it only.

    Measured on the champion of a one-seed default-grid PAN-X run (12 layers; 1,000 PAN-X dev
    sentences per language; 2-core AMX Xeon, ORT 1.32): F1 drift en / ml / te / mr / sw rowwise
    +0.05 / +0.41 / -0.03 / +0.70 / -0.05, blockwise 0.00 / +0.35 / +0.17 / +0.22 / +0.53;
    one sentence of 128 tokens, one thread: rowwise 23 ms, blockwise 42 ms (fp32 speed).
    Earlier, on another one-seed model (en / jv / ml / my / te): blockwise -0.37 / -0.66 / +0.01 /
    0.00 / +0.13, dynamic -0.73 / -0.33 / -1.47 / +0.35 / -0.92; 7-bit rowwise weights or
    activations moved en by -1.4 / -0.9, so both stay 8-bit."""
    if method == "rowwise":
        from xstilts.export.int8_rowwise import quantize_rowwise

        return quantize_rowwise(src, dst, calibration_batches=calibration_batches)
    if method == "dynamic":
        from onnxruntime.quantization import QuantType, quantize_dynamic

        quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True,
                         nodes_to_exclude=list(nodes_to_exclude), reduce_range=reduce_range,
                         op_types_to_quantize=list(op_types) or None)
        return Path(dst)
    if method != "blockwise":
        raise ValueError(f"int8 method must be one of {INT8_METHODS}, got {method!r}")
    return _quantize_blockwise(src, dst, block_size)


def _quantize_blockwise(src, dst, block_size: int) -> Path:
    import logging

    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import (DefaultWeightOnlyQuantConfig,
                                                                 MatMulNBitsQuantizer)

    config = DefaultWeightOnlyQuantConfig(block_size=block_size, is_symmetric=True, accuracy_level=4, bits=8)
    quantizer = MatMulNBitsQuantizer(onnx.load(str(src)), bits=8, block_size=block_size, is_symmetric=True,
                                     accuracy_level=4, algo_config=config)
    level = logging.getLogger().level  # the quantizer logs every node at INFO
    logging.getLogger().setLevel(max(level, logging.WARNING))
    try:
        quantizer.process()
    finally:
        logging.getLogger().setLevel(level)
    quantizer.model.save_model_to_file(str(dst), use_external_data_format=False)
    return Path(dst)
