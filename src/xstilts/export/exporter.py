"""Export one model to a checked ONNX bundle (``xstilts export``; registering is the run store's)."""
from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from xstilts.errors import XstiltsError
from xstilts.export.runtime import GRAPH, SERVE_MANIFEST, TOKENIZER_DIR, OnnxModel

log = logging.getLogger(__name__)
PRECISIONS = ("fp32", "int8")
INT8_METHOD = "rowwise"      # see xstilts.export.graphs.quantize_int8
BUNDLE_FORMAT = 1


@dataclass
class ExportResult:
    bundle: Path                 # model.onnx, tokenizer/, xstilts_serve.json
    manifest: dict[str, Any]
    tags: dict[str, str]         # the check figures, for the registered version
    source: Any                  # the EvalModel exported (registry entry: .run_id, .tags)


def _pick_task(em, task_name: str | None):
    """The task to export: ``task_name``, else the model's only head."""
    from xstilts.tasks import get_task

    if task_name:
        return get_task(task_name)
    if em.model is None or len(em.model.head_specs) != 1:
        heads = sorted(em.model.head_specs) if em.model is not None else []
        raise XstiltsError(f"model {em.ref} has heads {heads}: pass --task (a bare encoder exports a retrieval "
                           f"task, e.g. --task tatoeba)")
    return get_task(next(iter(em.model.head_specs)))


def _torch_sides(em, task, head: str | None):
    """(module to trace, what the metric check runs on the PyTorch side)."""
    from xstilts.evaluation.retrieval_eval import default_layer
    from xstilts.export.graphs import TorchEmbedder

    module = task.family.export_module(em.model if em.model is not None else em.encoder, head,
                                       base_model=em.base_model)
    if task.family.needs_head:
        return module, em.model
    return module, TorchEmbedder(em.encoder, em.tokenizer,
                                 default_layer(em.base_model, em.encoder.config.num_hidden_layers))


def write_graph(em, task, head: str | None, module, out: Path, *, precision: str, max_length: int,
                doc_stride: int) -> Path:
    """``out/model.onnx`` (int8: quantized from an fp32 trace beside it, then removed)."""
    from xstilts.export.checks import parity_sentences
    from xstilts.export.graphs import export_graph, quantize_int8

    lines = parity_sentences(("de",), per_lang=2)["de"]
    sample = task.family.graph_batches(task, em.tokenizer, task.family.rows_from_sentences(lines),
                                       max_length=max_length, doc_stride=doc_stride, batch_size=2)[0]
    fp32 = export_graph(module, sample, out / ("fp32.onnx" if precision == "int8" else GRAPH), family=task.family)
    if precision == "int8":
        quantize_int8(fp32, out / GRAPH, method=INT8_METHOD,
                      calibration_batches=calibration_batches(em, task, max_length, doc_stride))
        fp32.unlink()
    return out / GRAPH


def calibration_batches(em, task, max_length: int, doc_stride: int) -> list[dict]:
    """The int8 calibration's batches: English sentences as request rows of the task's family, less
    the rows a server would refuse at these lengths (a span-QA question too long for its window)."""
    from xstilts.export.int8_calibration import calibration_rows

    rows = [row for row in calibration_rows(task.family)
            if _servable(task, em.tokenizer, row, max_length=max_length, doc_stride=doc_stride)]
    return task.family.graph_batches(task, em.tokenizer, rows, max_length=max_length, doc_stride=doc_stride,
                                     batch_size=32)


def _servable(task, tokenizer, row: dict, *, max_length: int, doc_stride: int) -> bool:
    try:
        task.family.check_served_rows(task, tokenizer, [row], max_length=max_length, doc_stride=doc_stride)
    except XstiltsError:
        return False
    return True


def int8_settings() -> dict[str, Any]:
    """What the int8 export's calibration did (manifest and tags)."""
    from xstilts.export import int8_calibration as c

    return {"outliers": c.OUTLIERS, "gptq": True, "sentences": c.CALIBRATION_SENTENCES,
            "source": c.CALIBRATION_SOURCE}


def export_model(model_ref: str, *, task_name: str | None = None, precision: str = "fp32",
                 out_dir: str | os.PathLike[str], max_examples: int = 200, store=None,
                 check: bool = True, parity_per_lang: int = 4) -> ExportResult:
    """Load ``model_ref``, trace its head to ONNX, check it against PyTorch and write the bundle.

    The bundle is built in a hidden folder beside ``out_dir`` and renamed into place only when
    every check passed, so a refused or crashed export leaves ``out_dir`` as it was; an earlier
    bundle there is replaced, any other non-empty folder is refused, never deleted.

    Raises:
        XstiltsError: unknown precision or task, an ``out_dir`` that is not a bundle, or a check
        outside its tolerance.
    """
    if precision not in PRECISIONS:
        raise XstiltsError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    out = Path(out_dir)
    _require_replaceable(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
    try:
        manifest, em, task = _build_bundle(model_ref, task_name, precision, staging, max_examples=max_examples,
                                           store=store, check=check, parity_per_lang=parity_per_lang)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return ExportResult(out, manifest, _tags(em, task, manifest), em)


def _require_replaceable(out: Path) -> None:
    """Refuse an ``out`` that holds anything but an earlier bundle (the export replaces it)."""
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / SERVE_MANIFEST).is_file())):
        raise XstiltsError(f"--out {out}: exists and is not an xstilts export bundle (no {SERVE_MANIFEST}); "
                           f"give a new or empty folder, or one an earlier export wrote")


def _build_bundle(model_ref: str, task_name: str | None, precision: str, out: Path, *, max_examples: int,
                  store, check: bool, parity_per_lang: int):
    """Write and check the bundle in ``out``: (manifest, the loaded model, the task)."""
    from xstilts.evaluation.runner import load_eval_model, resolve_head
    from xstilts.export import checks
    from xstilts.families import resolve_lengths
    from xstilts.models.persist import store_tokenizer
    from xstilts.tasks import get_task

    needs_head = get_task(task_name).family.needs_head if task_name else True
    em = load_eval_model(model_ref, needs_head=needs_head, store=store)
    task = _pick_task(em, task_name)
    head = resolve_head(em.model, task) if task.family.needs_head else None
    max_length, doc_stride = resolve_lengths(task, em.max_length, em.doc_stride)
    module, torch_side = _torch_sides(em, task, head)
    graph = write_graph(em, task, head, module, out, precision=precision, max_length=max_length,
                        doc_stride=doc_stride)
    store_tokenizer(em.tokenizer, out / TOKENIZER_DIR)
    onnx_model = OnnxModel(graph, head=head, tokenizer=em.tokenizer,  # as served
                           int8=INT8_METHOD if precision == "int8" else None)
    parity = checks.logit_parity(task, module, onnx_model, em.tokenizer, max_length=max_length,
                                 doc_stride=doc_stride, sentences=checks.parity_sentences(per_lang=parity_per_lang))
    drift = checks.metric_drift(task, torch_side, onnx_model, em.tokenizer, head=head, max_length=max_length,
                                doc_stride=doc_stride, max_examples=max_examples)
    if check:
        checks.require_passed(parity, drift, precision)
    manifest = _manifest(em, task, head, precision, max_length, doc_stride, parity, drift, graph_opset(graph))
    if precision == "int8":
        manifest["int8_act7"] = check_act7(task, module, torch_side, graph, em.tokenizer, head=head, drift=drift,
                                           max_length=max_length, doc_stride=doc_stride, max_examples=max_examples,
                                           parity_per_lang=parity_per_lang)
    (out / SERVE_MANIFEST).write_text(json.dumps(manifest, indent=2, ensure_ascii=False))
    return manifest, em, task


def check_act7(task, module, torch_side, graph: Path, tokenizer, *, head: str | None, drift: dict, max_length: int,
               doc_stride: int, max_examples: int, parity_per_lang: int) -> dict[str, Any]:
    """The same checks on the graph's 7-bit-activation form, which CPUs without VNNI serve when it
    passes (``passed``; else they serve the 8-bit graph in its slower exact form). Its refusal does
    not refuse the export: the 8-bit graph passed."""
    from xstilts.export import checks
    from xstilts.export.int8_rowwise import ACT7_ZERO_POINT

    side = OnnxModel(graph, head=head, tokenizer=tokenizer, int8=INT8_METHOD, act7=True)
    parity = checks.logit_parity(task, module, side, tokenizer, max_length=max_length, doc_stride=doc_stride,
                                 sentences=checks.parity_sentences(per_lang=parity_per_lang))
    metric = checks.metric_drift(task, torch_side, side, tokenizer, head=head, max_length=max_length,
                                 doc_stride=doc_stride, max_examples=max_examples, reference=drift)
    try:
        checks.require_passed(parity, metric, "int8")
        refused = None
    except XstiltsError as exc:
        refused = str(exc)
        log.info("the 7-bit-activation form of the int8 export is refused (CPUs without VNNI serve the "
                 "8-bit graph as u8 x u8): %s", refused)
    return {"activation_bits": 7, "zero_point": ACT7_ZERO_POINT, "parity": parity, "metric": metric,
            "passed": refused is None, "refused": refused}


def graph_opset(path) -> int:
    """The ONNX opset of the graph at ``path`` (an int8 graph may need a newer one than the export's)."""
    import onnx

    imports = onnx.load(str(path), load_external_data=False).opset_import
    return next(o.version for o in imports if o.domain in ("", "ai.onnx"))


def _manifest(em, task, head, precision, max_length, doc_stride, parity, drift, opset: int) -> dict[str, Any]:
    from xstilts.export.graphs import INPUT_NAMES

    family = task.family
    return {
        "format_version": BUNDLE_FORMAT, "task": task.name, "family": family.name, "head": head,
        "labels": list(task.labels) if task.labels else None, "max_length": max_length, "doc_stride": doc_stride,
        "precision": precision, "int8_method": INT8_METHOD if precision == "int8" else None,
        "int8_calibration": int8_settings() if precision == "int8" else None,
        "opset": opset, "inputs": list(INPUT_NAMES),
        "input_axes": list(family.export_input_axes), "outputs": {k: list(v) for k, v in family.export_outputs.items()},
        "source_model": em.ref, "base_model": em.tags.get("base_encoder") or "default",
        "serving": family.serving.to_dict(), "endpoint": family.endpoint,
        "checks": {"parity": parity, "metric": drift,
                   "tolerances": {"fp32_max_abs_diff": _tol("FP32_TOLERANCE"), "fp32_max_drift": _tol("FP32_MAX_DRIFT"),
                                  "int8_max_drift": _tol("INT8_MAX_DRIFT")}},
    }


def _tol(name: str) -> float:
    from xstilts.export import checks

    return getattr(checks, name)


def _tags(em, task, manifest: dict) -> dict[str, str]:
    """Version tags: what was exported and the check figures."""
    parity, metric = manifest["checks"]["parity"], manifest["checks"]["metric"]
    tags = {"task": task.name, "family": task.family.name, "precision": manifest["precision"],
            "opset": manifest["opset"], "source_model": em.ref, "source_run_id": em.run_id or "",
            "parity.max_abs_diff": f"{parity['max_abs_diff']:.3g}", "parity.languages": parity["languages"],
            "metric.split": metric["split"], "metric.max_examples": metric["max_examples"],
            "metric.max_abs_drift": f"{metric['max_abs_drift']:.4f}"}
    if manifest.get("int8_method"):
        tags["int8_method"] = manifest["int8_method"]
        act7 = manifest.get("int8_act7") or {}
        if act7:
            tags.update({"int8_act7.passed": str(act7["passed"]).lower(),
                         "int8_act7.parity.max_abs_diff": f"{act7['parity']['max_abs_diff']:.3g}",
                         "int8_act7.metric.max_abs_drift": f"{act7['metric']['max_abs_drift']:.4f}"})
        cal = manifest.get("int8_calibration") or {}
        tags.update({f"int8_calibration.{k}": v for k, v in cal.items()})
    for lang, r in metric["languages"].items():
        tags[f"metric.{lang}.torch"] = f"{r['torch']:.2f}"
        tags[f"metric.{lang}.onnx"] = f"{r['onnx']:.2f}"
    for key in ("base_encoder", "condition", "seed", "run_key"):
        if key in em.tags:
            tags[f"source.{key}"] = em.tags[key]
    return {k: str(v) for k, v in tags.items()}
