"""Run a model over one task's evaluation data and score it with the task's metric.

Shared by model selection during training and by ``xstilts evaluate``: batches of
similar length (longest first), inference mode, and bf16 where the CPU has it --
autocast on the fp32 model being trained, or a bf16 copy of the weights
(:func:`bf16_inference_copy`) when only inference follows. Batches go to the
model's device and its outputs come back to the CPU before the family decodes them.
"""
from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from xstilts.data.featurize.batching import length_grouped_batches
from xstilts.data.task_features import TaskFeatures
from xstilts.runtime.device import autocast, model_device, to_cpu, to_device


@dataclass
class EvalData:
    task: Any  # xstilts.tasks.registry.Task
    lang: str
    split: str
    examples: list[Any]
    features: TaskFeatures


def _batches(data: EvalData, batch_size: int, max_tokens: int | None = None) -> list[list[int]]:
    """Units sorted longest first, cut into batches of at most ``batch_size`` units and,
    with ``max_tokens``, at most that many padded tokens (a unit longer than the budget
    goes alone). Equal lengths keep their order, so the batches are reproducible. Units
    the family keeps apart (:meth:`~xstilts.families.base.TaskFamily.batch_group`: served
    multiple-choice rows with different numbers of choices) never share a batch."""
    f = data.features
    lengths = [max(len(f.features[i].input_ids) for i in u) for u in f.units]
    groups: dict[Any, list[int]] = {}
    for u, unit in enumerate(f.units):
        groups.setdefault(data.task.family.batch_group(unit), []).append(u)
    out: list[list[int]] = []
    for members in groups.values():
        cut = _length_batches([lengths[u] for u in members], [len(f.units[u]) for u in members], batch_size,
                              max_tokens)
        out += [[members[i] for i in batch] for batch in cut]
    return out


def _length_batches(lengths: list[int], rows: list[int], batch_size: int, max_tokens: int | None) -> list[list[int]]:
    """:func:`_batches` of units with these padded lengths and numbers of rows (indices into them)."""
    if max_tokens is None:
        return length_grouped_batches(lengths, batch_size, seed=0, shuffle=False)
    if batch_size < 1 or max_tokens < 1:
        raise ValueError(f"batch_size and max_tokens must be positive, got {batch_size} and {max_tokens}")
    out: list[list[int]] = []
    current: list[int] = []
    n = 0
    for u in np.argsort(-np.asarray(lengths, dtype=np.int64), kind="stable").tolist():
        # the first (longest) unit sets the padded width of the batch
        if current and (len(current) >= batch_size or (n + rows[u]) * lengths[current[0]] > max_tokens):
            out.append(current)
            current, n = [], 0
        current.append(u)
        n += rows[u]
    if current:
        out.append(current)
    return out


def bf16_inference_copy(model):
    """A bf16 copy of ``model`` for inference only (the original is left as it is).

    Why not autocast: autocast casts every weight at every forward and keeps layer
    norm and softmax in fp32, so activations go back and forth between dtypes; on
    this CPU (AMX) a pure bf16 forward ran 1.11-1.27x faster on PAN-X dev, F1
    within 0.15 point (``benchmarks/eval_throughput.py`` compares both).
    """
    import copy

    return copy.deepcopy(model).to(torch.bfloat16).eval()


def _is_bf16(model) -> bool:
    p = next(model.parameters(), None)
    return p is not None and p.dtype == torch.bfloat16


def _forward_all(model, head: str, data: EvalData, batch_size: int, bf16: bool, progress: str | None = None,
                 max_tokens: int | None = None):
    """Yield (units of the batch, rows of the batch, model output) for every batch."""
    from tqdm.auto import tqdm

    f = data.features
    device = model_device(model)
    # a bf16 model runs as it is: autocast would move norms and softmax back to fp32
    cast = autocast(device, True) if bf16 and not _is_bf16(model) else contextlib.nullcontext()
    model.eval()
    batches = _batches(data, batch_size, max_tokens)
    with torch.inference_mode(), cast:
        # no bar object at all without a label: a served request makes one call of its own
        bars = batches if progress is None else tqdm(batches, desc=progress, leave=False, unit="batch")
        for units in bars:
            rows = [i for u in units for i in f.units[u]]
            batch = f.collate([f.features[i] for i in rows])
            batch = to_device({k: v for k, v in batch.items() if k in ("input_ids", "attention_mask")}, device)
            out = model(head, batch)
            yield units, rows, out if device.type == "cpu" else to_cpu(out)


def predict(model, head: str, data: EvalData, *, batch_size: int = 64, bf16: bool = False,
            progress: str | None = None, max_tokens: int | None = None, decode=None) -> Any:
    """Family-specific predictions in example order (``progress``: a progress bar's label).

    ``max_tokens`` also caps the padded tokens per batch: on CPUs, batches of about
    a thousand tokens keep the activations in cache and ran fastest (PAN-X, 2 cores).

    classification: label string per example; tagging: tag list per example;
    span QA: ``{guid: answer text}``; multiple choice: choice index per example. ``decode``
    replaces the family's ``decode`` (serving decodes span QA answers with their offsets).
    """
    outputs = _forward_all(model, head, data, batch_size, bf16, progress, max_tokens)
    return (decode or data.task.family.decode)(data, outputs)


def gold(data: EvalData) -> Any:
    """Gold labels in the form :func:`predict` returns predictions."""
    return data.task.family.gold(data.task, data.examples)


def score(data: EvalData, predictions: Any) -> dict[str, float]:
    """The task's registered metric on ``predictions`` (values in percent)."""
    from xstilts.evaluation.metrics.registry import get_metric

    metric = get_metric(data.task.metric)
    return metric.compute(gold(data), predictions, language=data.lang)


def headline(task, scores: dict[str, float]) -> float:
    """One number per task-language (QA: (EM + F1) / 2, as XTREME averages)."""
    from xstilts.evaluation.metrics.registry import get_metric

    keys = get_metric(task.metric).headline
    return float(np.mean([scores[k] for k in keys]))
