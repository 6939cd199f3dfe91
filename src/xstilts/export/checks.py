"""The checks every export passes before it is registered (their figures become version tags).

1. **Logit parity** on real sentences (Tatoeba test lines) in :data:`PARITY_LANGS`, made into
   request rows of the family (``TaskFamily.rows_from_sentences``), featurized as serving
   does: the max abs difference between PyTorch (fp32) and ONNX Runtime over every output.
   fp32 must stay within :data:`FP32_TOLERANCE`; int8 is reported (its logits move by design).
2. **Metric drift** on the task's English dev (test where a task has no dev) subset and two
   low-resource languages (the lowest Joshi classes among the task's languages with local
   gold, preferring those whose gold holds at least :data:`MIN_DRIFT_EXAMPLES` examples): ONNX
   score minus PyTorch score (percent points); fp32 within :data:`FP32_MAX_DRIFT`, int8 within
   :data:`INT8_MAX_DRIFT`.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from xstilts.errors import XstiltsError

log = logging.getLogger(__name__)

#: 12 languages of 8 scripts (Tatoeba codes); English comes from the English side.
PARITY_LANGS = ("en", "de", "fr", "ru", "zh", "ar", "hi", "ja", "sw", "jv", "te", "ta")
FP32_TOLERANCE = 1e-3       # max abs logit difference, fp32
FP32_MAX_DRIFT = 0.01       # metric points, fp32 (numerically zero)
INT8_MAX_DRIFT = 0.5        # metric points, int8
#: A low-resource language is one of the drift check's only if its gold holds this many examples
#: (or no other language is left): PAN-X jv dev has 100 sentences with 112 entities, so one entity
#: moves its F1 by about 0.9 point, and a 0.5-point limit there only tells "nothing moved" apart.
MIN_DRIFT_EXAMPLES = 500


def parity_sentences(langs=PARITY_LANGS, per_lang: int = 4) -> dict[str, list[str]]:
    """The first ``per_lang`` Tatoeba test lines of each language (English: the English side)."""
    from xstilts.data.loading import load_parallel

    out = {}
    for lang in langs:
        corpus = load_parallel("tatoeba", "de" if lang == "en" else lang, "test")
        out[lang] = list((corpus.target if lang == "en" else corpus.source)[:per_lang])
    return out


def logit_parity(task, module, onnx_model, tokenizer, *, max_length: int, doc_stride: int,
                 sentences: dict[str, list[str]]) -> dict[str, Any]:
    """Max abs difference of every output at every real (unpadded) position, per language and over all
    (PyTorch fp32 vs ONNX)."""
    family = task.family
    per_lang = {}
    module.eval()
    for lang, lines in sentences.items():
        worst = 0.0
        for batch in family.graph_batches(task, tokenizer, family.rows_from_sentences(lines),
                                          max_length=max_length, doc_stride=doc_stride):
            with torch.inference_mode():
                ref = module(batch["input_ids"], batch["attention_mask"])
            ref = ref if isinstance(ref, tuple) else (ref,)
            got = onnx_model.run({k: v.numpy() for k, v in batch.items()})
            mask = batch["attention_mask"].numpy().astype(bool)
            for name, r, g in zip(onnx_model.output_names, ref, got):
                r = r.float().numpy()
                if onnx_model.sequence_axis.get(name) == 1 and mask.ndim == 2:
                    r, g = r[mask], g[mask]  # padded positions answer nothing (row-wise int8 never computes them)
                worst = max(worst, float(np.abs(r - g).max()))
        per_lang[lang] = worst
    return {"max_abs_diff": max(per_lang.values()), "languages": len(per_lang), "per_language": per_lang}


def drift_languages(task) -> list[str]:
    """English first, then the task's languages from the lowest resource class up."""
    from xstilts.analysis.resource_groups import JOSHI_CLASS

    others = sorted((lang for lang in task.languages if lang != "en"), key=lambda x: (JOSHI_CLASS.get(x, 9), x))
    return ["en", *others] if "en" in task.languages else others


def metric_drift(task, torch_side, onnx_side, tokenizer, *, head: str | None, max_length: int, doc_stride: int,
                 max_examples: int, low_resource: int = 2, reference: dict | None = None) -> dict[str, Any]:
    """Task metric of both sides on English and ``low_resource`` languages that have local gold (the
    lowest-resource ones with :data:`MIN_DRIFT_EXAMPLES` examples first, smaller sets only to fill up).
    ``reference``: an earlier result of this check on the same model and sets, whose PyTorch scores
    are taken instead of scoring ``torch_side`` again."""
    from xstilts.evaluation.predict import headline

    split = "dev" if "dev" in task.splits else "test"
    loaded, skipped = _drift_sets(task, split, max_examples, low_resource)
    rows = {}
    for lang, data in loaded.items():
        kw = dict(lang=lang, split=split, head=head, max_length=max_length, doc_stride=doc_stride,
                  max_examples=max_examples)
        known = (reference or {}).get("languages", {}).get(lang)
        ref = known["torch"] if known else headline(task, task.family.score_exported(task, torch_side, tokenizer,
                                                                                        data, **kw))
        got = headline(task, task.family.score_exported(task, onnx_side, tokenizer, data, **kw))
        rows[lang] = {"torch": ref, "onnx": got, "drift": got - ref, "examples": _size(data)}
    if skipped:
        log.info("metric check of %s skipped %s", task.name, ", ".join(f"{k} ({v})" for k, v in skipped.items()))
    drift = max((abs(r["drift"]) for r in rows.values()), default=0.0)
    return {"split": split, "max_examples": max_examples, "languages": rows, "max_abs_drift": drift,
            "skipped": sorted(skipped)}


def _size(data) -> int | None:
    try:
        return len(data)
    except TypeError:  # a retrieval corpus pair
        return None


def _drift_sets(task, split: str, max_examples: int, low_resource: int) -> tuple[dict[str, Any], dict[str, str]]:
    """English's and the chosen low-resource languages' check data, in :func:`drift_languages` order."""
    loaded, small, skipped = {}, {}, {}
    for lang in drift_languages(task):
        try:
            data, _ = task.family.load_eval_split(task, lang, split, max_examples=max_examples,
                                                  bucc_policy="dev_tuned")
        except (XstiltsError, OSError) as exc:
            skipped[lang] = str(exc)[:200]
            continue
        n = _size(data)
        if lang == "en" or n is None or n >= min(max_examples, MIN_DRIFT_EXAMPLES):
            loaded[lang] = data
        else:
            small[lang] = data
            skipped[lang] = f"{n} examples, fewer than {min(max_examples, MIN_DRIFT_EXAMPLES)}"
        if len([x for x in loaded if x != "en"]) >= low_resource:
            break
    for lang in list(small)[:max(0, low_resource - len([x for x in loaded if x != "en"]))]:
        loaded[lang] = small[lang]  # too few large sets: the small ones still say something
        skipped.pop(lang)
    order = drift_languages(task)
    return dict(sorted(loaded.items(), key=lambda kv: order.index(kv[0]))), skipped


def require_passed(parity: dict, drift: dict, precision: str) -> None:
    """Raise naming the figure when an export falls outside its declared tolerance."""
    if precision == "fp32" and parity["max_abs_diff"] > FP32_TOLERANCE:
        raise XstiltsError(f"ONNX logits differ from PyTorch by {parity['max_abs_diff']:.2e} "
                           f"(tolerance {FP32_TOLERANCE:g} for fp32): not registered")
    limit = FP32_MAX_DRIFT if precision == "fp32" else INT8_MAX_DRIFT
    if drift["max_abs_drift"] > limit:
        hint = " (the fp32 export, without --quantize, keeps the metric)" if precision == "int8" else ""
        raise XstiltsError(f"the {precision} export moves the task metric by {drift['max_abs_drift']:.2f} points "
                           f"(limit {limit:g}): not registered{hint}. PyTorch -> ONNX on {drift['split']}: "
                           f"{describe_drift(drift)}")


def describe_drift(drift: dict) -> str:
    """``en 64.29 -> 64.41 (+0.13), te ...``: the metric check's languages, for a person."""
    return ", ".join(f"{lang} {r['torch']:.2f} -> {r['onnx']:.2f} ({r['drift']:+.2f})"
                     for lang, r in drift["languages"].items())
