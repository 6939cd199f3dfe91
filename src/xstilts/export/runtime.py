"""An exported bundle served with ONNX Runtime, with no PyTorch model and no MLflow involved.

A bundle directory holds ``model.onnx``, ``tokenizer/`` and the manifest
``xstilts_serve.json`` (task, family, labels, lengths, precision, the checks it passed).
:class:`OnnxModel` is called like ``XstiltsModel`` (``model(head, batch) -> TaskOutput``), so
the family's own featurizing and decoding (``TaskFamily.serve``) run on it unchanged.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from xstilts.errors import XstiltsError

GRAPH = "model.onnx"
TOKENIZER_DIR = "tokenizer"
SERVE_MANIFEST = "xstilts_serve.json"


@dataclass(frozen=True)
class SessionSettings:
    """ONNX Runtime's threading: ``intra_op`` threads per operator (0: ``OMP_NUM_THREADS`` when set, else
    ORT's default), ``inter_op`` across;
    ``spinning``: idle ORT threads busy-wait for the next operator (ORT's default). Off by default here: a
    server shares its cores with the HTTP event loop (and, in a loopback benchmark, the client), which
    spinning threads starve between calls."""

    intra_op_threads: int = 0
    inter_op_threads: int = 0
    spinning: bool = False

    def options(self):
        import onnxruntime as ort

        from xstilts.runtime.cpu import thread_budget

        so = ort.SessionOptions()
        so.intra_op_num_threads = self.intra_op_threads or thread_budget() or 0
        so.inter_op_num_threads = self.inter_op_threads
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.spinning else "0")
        so.add_session_config_entry("session.inter_op.allow_spinning", "1" if self.spinning else "0")
        return so


class OnnxModel:
    """An ONNX Runtime session with the call shapes evaluation uses (``predict``, ``embed_sentences``)."""

    def __init__(self, path: str | os.PathLike[str], *, head: str | None = None, tokenizer: Any = None,
                 settings: SessionSettings = SessionSettings(), int8: str | None = None, act7: bool = False) -> None:
        """``int8``: the graph's int8 method (None: fp32); a method whose scales span the batch runs
        every row alone (``row_wise``), a row-wise int8 graph is made exact for this CPU first, or, with
        ``act7``, run in its 7-bit-activation form (see :mod:`xstilts.export.int8_rowwise`)."""
        import onnxruntime as ort

        from xstilts.export.graphs import BATCH_DEPENDENT_INT8
        from xstilts.export.int8_rowwise import exact_graph

        self.path = Path(path)
        source = exact_graph(path, act7=act7) if int8 == "rowwise" else str(path)
        self.session = ort.InferenceSession(source, settings.options(), providers=["CPUExecutionProvider"])
        self.head = head
        self.tokenizer = tokenizer
        self.output_names = [o.name for o in self.session.get_outputs()]
        # where each output has the sequence axis (the export names its dynamic axes): cut rows are padded back
        self.sequence_axis = {o.name: o.shape.index("sequence") if "sequence" in o.shape else None
                              for o in self.session.get_outputs()}
        self.row_wise = int8 in BATCH_DEPENDENT_INT8

    # the parts of nn.Module that xstilts.evaluation.predict touches
    def eval(self) -> OnnxModel:
        return self

    def parameters(self):
        return iter(())

    def run(self, batch: dict) -> list[np.ndarray]:
        """The graph's outputs for ``batch``, run in groups of rows of similar length, each group cut to
        its longest row (outputs padded back to the batch's width): a short request batched beside a
        long one, or the short last window of a long text, costs its own length, not the longest's.
        A graph that is not row-independent (``row_wise``) runs every row alone."""
        ids, mask = (np.ascontiguousarray(np.asarray(batch[k]), dtype=np.int64)
                     for k in ("input_ids", "attention_mask"))
        width = ids.shape[-1]
        lengths = np.maximum(mask.reshape(ids.shape[0], -1, width).sum(-1).max(-1), 1)  # multiple choice: longest
        groups = [np.array([i]) for i in range(len(ids))] if self.row_wise else length_groups(lengths)
        if len(groups) == 1 and lengths.max() == width:
            return self.session.run(self.output_names, {"input_ids": ids, "attention_mask": mask})
        parts = []
        for rows in groups:
            n = int(lengths[rows].max())
            outs = self.session.run(self.output_names, {"input_ids": ids[rows, ..., :n],
                                                        "attention_mask": mask[rows, ..., :n]})
            parts.append([_pad_axis(o, self.sequence_axis[name], width) for o, name in zip(outs, self.output_names)])
        back = np.argsort(np.concatenate(groups), kind="stable")  # group order -> the batch's row order
        return [np.concatenate([p[k] for p in parts])[back] for k in range(len(self.output_names))]

    def __call__(self, head: str | None, batch: dict):
        import torch

        from xstilts.models.heads import TaskOutput

        outs = [torch.from_numpy(o) for o in self.run(batch)]
        return TaskOutput(None, outs[0] if len(outs) == 1 else tuple(outs))

    def embed(self, sentences, *, max_length: int, batch_size: int = 32) -> np.ndarray:
        """Sentence embeddings as ``embed_sentences`` makes them (length-sorted batches, input order)."""
        enc = self.tokenizer(list(sentences), truncation=True, max_length=max_length, add_special_tokens=True)
        ids = enc["input_ids"]
        out: np.ndarray | None = None
        order = np.argsort([len(x) for x in ids], kind="stable")
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            width = max(len(ids[i]) for i in idx)
            input_ids = np.full((len(idx), width), self.tokenizer.pad_token_id, dtype=np.int64)
            mask = np.zeros((len(idx), width), dtype=np.int64)
            for row, i in enumerate(idx):
                input_ids[row, :len(ids[i])] = ids[i]
                mask[row, :len(ids[i])] = 1
            pooled = self.run({"input_ids": input_ids, "attention_mask": mask})[0]
            if out is None:
                out = np.empty((len(ids), pooled.shape[1]), dtype=np.float32)
            out[idx] = pooled
        return out if out is not None else np.zeros((0, 0), dtype=np.float32)


#: a row joins a length group while it would be padded by at most this many tokens: what one more
#: ONNX Runtime call's fixed cost is worth (on a 2-core Zen 4 EPYC, the int8 PAN-X model of the
#: one-seed grid, one thread: a call took 2.23 ms + 0.20 ms per row and token, F/c 11.1 tokens,
#: ``python benchmarks/onnx_latency.py --model BUNDLE --fit``; rounded up, as AMX makes c smaller).
#: Padding beyond that costs more than a call of its own.
PAD_TOKENS = 12


def length_groups(lengths: np.ndarray, pad: int = PAD_TOKENS) -> list[np.ndarray]:
    """Row indices grouped by length, longest first; every row of a group is at most ``pad`` tokens
    shorter than the group's longest, so no row pays more padding than a call of its own would
    cost (row order kept within a group). Row-independent graphs give the same outputs however
    rows are grouped."""
    order = np.argsort(-np.asarray(lengths), kind="stable")
    groups: list[list[int]] = []
    for i in order:
        if groups and lengths[groups[-1][0]] - lengths[i] <= pad:
            groups[-1].append(int(i))
        else:
            groups.append([int(i)])
    return [np.array(sorted(g)) for g in groups]


def _pad_axis(out: np.ndarray, axis: int | None, width: int) -> np.ndarray:
    """``out`` padded along ``axis`` to ``width`` with a large negative logit (padding never wins)."""
    if axis is None or out.shape[axis] == width:
        return out
    pad = [(0, 0)] * out.ndim
    pad[axis] = (0, width - out.shape[axis])
    return np.pad(out, pad, constant_values=-1e4)


def read_serve_manifest(bundle: str | os.PathLike[str]) -> dict:
    path = Path(bundle) / SERVE_MANIFEST
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise XstiltsError(f"{bundle}: not an exported xstilts bundle (no {SERVE_MANIFEST})") from None


def int8_method(manifest: dict) -> str | None:
    """The bundle's int8 method, None for fp32 (bundles written before the field were blockwise)."""
    if manifest.get("precision") != "int8":
        return None
    return manifest.get("int8_method", "blockwise")


def int8_form(manifest: dict, saturating: bool | None = None) -> str | None:
    """How this CPU runs the bundle's graph: None (fp32), ``"act7"`` (a row-wise int8 bundle whose
    7-bit-activation form passed its export check, on a CPU whose u8 x s8 kernel saturates), ``"u8u8"``
    (the same CPU, that form not checked or refused), ``"u8s8"`` (VNNI, AMX, ARM: the graph as
    exported) or the bundle's other int8 method."""
    from xstilts.export.int8_rowwise import saturating_u8s8

    method = int8_method(manifest)
    if method != "rowwise":
        return method
    if not (saturating_u8s8() if saturating is None else saturating):
        return "u8s8"
    return "act7" if (manifest.get("int8_act7") or {}).get("passed") else "u8u8"


class ServedModel:
    """One exported bundle, loaded: predicts request rows as its family serves them."""

    def __init__(self, bundle: str | os.PathLike[str], *, settings: SessionSettings = SessionSettings(),
                 name: str = "", version: str = "") -> None:
        from transformers import AutoTokenizer

        from xstilts.tasks import get_task

        self.bundle = Path(bundle)
        self.manifest = read_serve_manifest(bundle)
        self.task = get_task(self.manifest["task"])
        self.family = self.task.family
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.bundle / TOKENIZER_DIR))
        self.int8_form = int8_form(self.manifest)
        self.model = OnnxModel(self.bundle / GRAPH, head=self.manifest.get("head"), tokenizer=self.tokenizer,
                               settings=settings, int8=int8_method(self.manifest), act7=self.int8_form == "act7")
        self.name = name or self.manifest.get("registered_name") or f"xstilts-serve-{self.task.name}"
        self.version = version or str(self.manifest.get("version") or "")

    @property
    def max_length(self) -> int:
        return int(self.manifest["max_length"])

    @property
    def doc_stride(self) -> int:
        return int(self.manifest["doc_stride"])

    def cost(self, rows: list[dict[str, Any]]) -> int:
        """The tokens of a request's longest row, specials included: what the server's batcher groups
        requests by. A text longer than a window counts all its tokens (its windows make a call of
        their own, however many rows of one window wait beside it). A hint, not the featurizer's
        count: every text field of a row is tokenized (words joined by spaces) and the counts summed."""
        per_row = [[" ".join(map(str, v)) if isinstance(v, (list, tuple)) else str(v) for v in r.values()]
                   for r in rows]
        counts = iter(self._token_counts([t for texts in per_row for t in texts]))
        longest = max((sum(next(counts) for _ in texts) for texts in per_row), default=0)
        return longest + 2

    def _token_counts(self, texts: list[str]) -> list[int]:
        """Tokens per text, without specials. ``cost`` runs on the server's event loop for every request:
        the Rust tokenizer alone takes half the time of the ``transformers`` wrapper around it."""
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is None:  # a slow (Python) tokenizer
            return [len(ids) for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]
        return [len(e.ids) for e in backend.encode_batch(texts, add_special_tokens=False)]

    def check(self, rows: list[dict[str, Any]]) -> None:
        """Raise ``XstiltsError`` naming the first row this model cannot featurize (before it is batched)."""
        self.family.check_served_rows(self.task, self.tokenizer, rows, max_length=self.max_length,
                                      doc_stride=self.doc_stride)

    def predict(self, rows: list[dict[str, Any]]) -> list[Any]:
        """One response per row (``TaskFamily.serve``'s: a label, tags, an answer, an index, a vector)."""
        return self.family.serve_exported(self.task, self.model, self.tokenizer, rows,
                                          max_length=self.max_length, doc_stride=self.doc_stride)

    def predict_described(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The task-shaped endpoint's answer per row (tags with offsets and entities, answer spans, ...)."""
        return self.family.serve_exported_described(self.task, self.model, self.tokenizer, rows,
                                                    max_length=self.max_length, doc_stride=self.doc_stride)
