"""The torch modules ``torch.onnx.export`` traces, the export call itself and int8 quantization."""
from __future__ import annotations

import os
from collections.abc import Sequence
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
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, (sample["input_ids"], sample["attention_mask"]), str(path),
                          input_names=list(INPUT_NAMES), output_names=list(family.export_outputs),
                          dynamic_axes=axes, opset_version=OPSET, dynamo=False, do_constant_folding=True)
    return path


def quantize_int8(src: str | os.PathLike[str], dst: str | os.PathLike[str], *,
                  nodes_to_exclude: Sequence[str] = (), reduce_range: bool = False) -> Path:
    """Dynamic int8 quantization (weights int8 per output channel, activations quantized at run
    time) of an fp32 graph.

    Measured on the 5-seed default grid's PAN-X champion (12 layers; 300 dev sentences each of
    en, sw, ml; served row by row; 2-core AMX Xeon), F1 moved by -1.55 / -1.37 / 0.00 points with
    per-channel signed weights, -1.86 / -3.09 / +0.83 with per-tensor signed weights (ONNX
    Runtime's default) and -3.21 / -0.46 / -3.75 with unsigned weights: per channel is the best
    of the three, and none is within the 0.5-point limit, so the export check refuses such
    an int8 export. On a 2-core AVX2-only AMD EPYC (no VNNI; ``benchmarks/int8_variants.py``, a
    one-seed default-grid PAN-X model, 200 dev sentences; en / jv / ml) per-channel int8 moved F1
    by -2.60 / +2.61 / +1.12; keeping the 24 attention- and FFN-output MatMuls in fp32 -0.90 /
    +0.63 / +1.56; ``reduce_range`` -2.04 / +2.61 / -2.28: none within 0.5 there either (PAN-X jv
    dev has 100 sentences with 112 entities, so one entity is about 0.9 point).

    ``nodes_to_exclude`` keeps those MatMuls in fp32 and ``reduce_range`` uses 7-bit weights
    (ONNX Runtime's advice against u8s8 saturation on AVX2 without VNNI); the export uses
    neither, the benchmark above compares them."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(src), str(dst), weight_type=QuantType.QInt8, per_channel=True,
                     nodes_to_exclude=list(nodes_to_exclude), reduce_range=reduce_range)
    return Path(dst)
