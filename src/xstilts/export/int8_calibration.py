"""Calibration of the row-wise int8 graph: outlier input channels kept fp32, GPTQ rounding.

Both come from one fp32 run over English calibration sentences (:func:`calibration_rows`):

* **Outlier channels** (LLM.int8()'s decomposition, Dettmers et al. 2022, with the channels fixed
  here): a transformer's layer inputs carry a few channels far larger than the rest, and a
  token's int8 scale (``max |x| / 127``) is set by them, so every other channel of that token
  gets a coarse grid. The :data:`OUTLIERS` channels with the largest ``max |x|`` of each input
  stay fp32 (a small fp32 Gemm adds them onto the int8 product); the int8 part is scaled without them.
* **GPTQ** (Frantar et al. 2023): the weights are rounded one input row at a time, each row's
  rounding error moved onto the rows not yet rounded through ``H = X^T X``, so the products move
  least where real inputs lie (the fp32 outlier rows take their share and are not rounded).

Why (docs/serving-performance.md, "Outlier channels in fp32 and GPTQ"; 2026-12-07, Zen 4 EPYC,
the three PAN-X models of a one-seed default grid): the plain row-wise graph moved the logits 17-19x as far as bf16
(``benchmarks/int8_granularity.py``) and its export check refused all three models (max |F1
drift| 0.52, 0.62, 0.72); with 8 fp32 channels and GPTQ the logits move about half as far and all
three pass (0.40, 0.15, 0.26), at 12-17 % more time per call than plain row-wise int8.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

#: input channels of each quantized MatMul kept fp32 (the largest max |x| on calibration tokens)
OUTLIERS = 8
#: calibration: this many English sentences (Tatoeba's English side, after the parity check's lines)
CALIBRATION_SENTENCES = 512
#: calibration starts after this many lines of its corpus (the parity check reads the first few)
CALIBRATION_SKIP = 100
CALIBRATION_SOURCE = f"tatoeba de-en test, English side, from line {CALIBRATION_SKIP}"
#: GPTQ's damping: this fraction of H's mean diagonal is added to its diagonal (the paper's 1 %)
DAMP = 0.01
#: rows rounded together before their error is carried to the rest (the paper's lazy batch)
BLOCK = 128


@dataclass
class Calibration:
    """Per activation (a quantized MatMul's input): its channels' max |x| and X^T X (float64)."""

    amax: dict[str, np.ndarray] = field(default_factory=dict)
    gram: dict[str, np.ndarray] = field(default_factory=dict)
    outliers: int = OUTLIERS
    gptq: bool = True

    def kept(self, activation: str) -> np.ndarray | None:
        """Sorted indices of the channels of ``activation`` that stay fp32 (None: all int8)."""
        amax = self.amax.get(activation)
        if amax is None or self.outliers <= 0 or self.outliers >= amax.size:
            return None
        return np.sort(np.argsort(-amax, kind="stable")[:self.outliers]).astype(np.int64)


def calibration_rows(family, skip: int = CALIBRATION_SKIP, count: int = CALIBRATION_SENTENCES) -> list[dict]:
    """Request rows of ``family`` made of English sentences: Tatoeba's English side (de-en test)
    after its first ``skip`` lines (the parity check reads the first few)."""
    from xstilts.data.loading import load_parallel

    lines = list(load_parallel("tatoeba", "de", "test").target[skip:skip + count])
    return family.rows_from_sentences(lines)


def calibrate(model, activations: Sequence[str], batches: Iterable[Mapping], *, outliers: int = OUTLIERS,
              gptq: bool = True) -> Calibration:
    """Run the fp32 ONNX ``model`` (``onnx.ModelProto``) on ``batches`` (``{input_ids, attention_mask}``,
    torch or numpy) with ``activations`` as extra outputs; collect each one's statistics over the
    real (unpadded) tokens."""
    import onnx
    import onnxruntime as ort

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    probe.graph.output.extend(onnx.helper.make_tensor_value_info(a, onnx.TensorProto.FLOAT, None)
                              for a in activations)
    session = ort.InferenceSession(probe.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    cal = Calibration(outliers=outliers, gptq=gptq)
    for batch in batches:
        feed = {k: (v.numpy() if hasattr(v, "numpy") else np.asarray(v)) for k, v in batch.items()}
        mask = feed["attention_mask"].astype(bool) if "attention_mask" in feed else None
        for name, x in zip(activations, session.run(list(activations), {k: feed[k] for k in names})):
            x = x[mask] if mask is not None and x.shape[:2] == mask.shape else x.reshape(-1, x.shape[-1])
            cal.amax[name] = np.maximum(cal.amax.get(name, 0.0), np.abs(x).max(0))
            if gptq:
                x = x.astype(np.float64)
                cal.gram[name] = cal.gram.get(name, 0.0) + x.T @ x
    return cal


def gptq_round(w: np.ndarray, h: np.ndarray, scale: np.ndarray, kept: np.ndarray | None = None,
               *, qmax: float = 127.0) -> tuple[np.ndarray, np.ndarray]:
    """GPTQ's int8 values of ``w`` (``in x out``) on the grid ``scale`` (``out``), rounded row by row,
    each row's error carried onto the later rows through ``h`` (``in x in``, X^T X). Rows in ``kept``
    are not rounded: they go last, take their share of every error and come back as fp32. Returns
    (int8 ``in x out`` with the kept rows 0, the kept rows' fp32 values)."""
    import torch

    keep = np.zeros(w.shape[0], dtype=bool)
    if kept is not None:
        keep[kept] = True
    order = np.concatenate([np.flatnonzero(~keep), np.flatnonzero(keep)])
    s = torch.from_numpy(np.array(scale, np.float64))
    q = _gptq(torch.from_numpy(np.array(w, np.float64)[order]),
              torch.from_numpy(np.array(h, np.float64)[np.ix_(order, order)]), s, int((~keep).sum()), qmax)
    q = q[torch.from_numpy(np.argsort(order))]
    fp32 = (q[torch.from_numpy(keep)] * s).numpy().astype(np.float32)
    q[torch.from_numpy(keep)] = 0.0
    return q.numpy().astype(np.int8), fp32


def _gptq(w, h, s, rounded: int, qmax: float):
    """GPTQ over the rows of ``w`` in order (in units of ``s``); rows from ``rounded`` on stay unrounded."""
    import torch

    dead = torch.diag(h) == 0          # an input that never fired: its weights do not matter
    h[dead, dead] = 1.0
    w[dead, :] = 0.0
    h += DAMP * torch.diag(h).mean() * torch.eye(h.shape[0], dtype=h.dtype)
    u = torch.linalg.cholesky(torch.cholesky_inverse(torch.linalg.cholesky(h)), upper=True)
    q = torch.zeros_like(w)
    for a in range(0, w.shape[0], BLOCK):
        b = min(a + BLOCK, w.shape[0])
        err = torch.zeros(b - a, w.shape[1], dtype=w.dtype)
        for i in range(a, b):
            q[i] = w[i] / s if i >= rounded else torch.clamp(torch.round(w[i] / s), -qmax, qmax)
            err[i - a] = (w[i] - q[i] * s) / u[i, i]
            w[i:b] -= u[i, i:b, None] * err[i - a]
        w[b:] -= u[a:b, b:].T @ err
    return q
