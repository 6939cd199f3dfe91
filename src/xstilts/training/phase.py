"""One training phase (intermediate or target) from its config to a registered model.

``run_phase(config)``: validate, reuse a registered model trained from the same
config if there is one, else train in a fresh MLflow run (resuming from a local
checkpoint a killed or failed attempt left), select the model by the config's
policy, store it compactly and register it with its tags. An exception marks the
run FAILED and registers nothing.
"""
from __future__ import annotations

import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from xstilts.config import PhaseConfig, flatten_params
from xstilts.errors import XstiltsError

log = logging.getLogger(__name__)


@dataclass
class PhaseResult:
    run_id: str | None
    model_uri: str | None
    reused: bool
    dev_scores: dict[str, float] = field(default_factory=dict)
    loop: object | None = None
    model_dir: str | None = None


def head_name(cfg: PhaseConfig) -> str:
    return "+".join(t.task for t in cfg.tasks) + ("+mlm" if cfg.mlm is not None else "")


def registry_name(cfg: PhaseConfig) -> str:
    from xstilts.tracking.registry import model_name

    return model_name(cfg.phase, head_name(cfg))


def run_tags(cfg: PhaseConfig) -> dict[str, str]:
    from xstilts.version import code_version

    return {
        "phase": cfg.phase, "task": head_name(cfg), "condition": cfg.condition,
        "data_spec_hash": cfg.data_spec_hash(), "seed": str(cfg.seed), "base_encoder": cfg.base_model,
        "code_version": code_version(), "selection_policy": cfg.selection, "run_key": cfg.run_key(),
        "oracle_selection": str(cfg.selection == "target_dev").lower(),
        "init_from": cfg.init_from or "base",
    }


# -- data --------------------------------------------------------------------------------------

def _train_examples(t, cfg: PhaseConfig):
    from xstilts.data.intermediate_spec import build_examples, spec_from_dict
    from xstilts.data.loading import load_examples

    if t.spec is not None:
        return build_examples(spec_from_dict(t.spec))
    out = []
    for lang in t.languages:
        out += load_examples(t.task, lang, t.split, source=t.source, max_examples=t.max_examples)
    return out


def build_train_sets(cfg: PhaseConfig, tokenizer):
    from xstilts.data.task_features import task_features
    from xstilts.families import resolve_lengths
    from xstilts.tasks import get_task
    from xstilts.training.loop import TrainSet

    sets = []
    args = cfg.training
    for t in cfg.tasks:
        task = get_task(t.task)
        examples = _train_examples(t, cfg)
        if not examples:
            raise XstiltsError(f"task {t.task}: no training examples ({t.split}, {t.languages})")
        examples = task.family.filter_examples(examples)
        max_length, doc_stride = resolve_lengths(task, args.max_length, args.doc_stride)
        tf = task_features(task, examples, tokenizer, lang="+".join(t.languages) if t.spec is None else "spec",
                           split=t.split if t.spec is None else f"spec-{cfg.data_spec_hash()}",
                           max_length=max_length, doc_stride=doc_stride)
        sets.append(TrainSet(t.task, tf.features, tf.collate, tf.units))
    if cfg.mlm is not None:
        sets.append(_mlm_set(cfg, tokenizer))
    return sets


def _mlm_set(cfg: PhaseConfig, tokenizer):
    from functools import partial

    from xstilts.data.loading import load_examples
    from xstilts.families import MASKED_LM
    from xstilts.training.loop import TrainSet
    from xstilts.training.mlm import collate_mlm, mask_sentences

    m = cfg.mlm
    sentences = []
    for lang in m.languages:
        for ex in load_examples(m.task, lang, m.split, max_examples=m.max_examples):
            sentences += [s for s in (getattr(ex, "text_a", None), getattr(ex, "text_b", None)) if s]
    feats = mask_sentences(sentences, tokenizer, max_length=MASKED_LM.lengths(cfg.training.max_length, None)[0],
                           probability=m.mask_probability, seed=cfg.seed)
    return TrainSet("mlm", feats, partial(collate_mlm, pad_id=tokenizer.pad_token_id),
                    [[i] for i in range(len(feats))], weight=m.weight)


def build_dev_sets(cfg: PhaseConfig, tokenizer):
    from xstilts.data.loading import load_examples
    from xstilts.data.task_features import task_features
    from xstilts.evaluation.predict import EvalData
    from xstilts.families import resolve_lengths
    from xstilts.tasks import get_task

    if cfg.selection == "last":
        return []
    out = []
    for t in cfg.tasks:
        task = get_task(t.task)
        for lang in t.dev_languages:
            examples = load_examples(t.task, lang, t.dev_split, source=t.source, max_examples=t.max_dev_examples)
            examples = task.family.filter_examples(examples)
            if not examples:
                raise XstiltsError(f"task {t.task}: no labelled {t.dev_split} examples in {lang} for model selection")
            max_length, doc_stride = resolve_lengths(task, cfg.training.max_length, cfg.training.doc_stride)
            tf = task_features(task, examples, tokenizer, lang=lang, split=t.dev_split,
                               max_length=max_length, doc_stride=doc_stride)
            out.append(EvalData(task, lang, t.dev_split, examples, tf))
    return out


def dev_evaluator(dev_sets, *, batch_size: int, bf16: bool, last_scores: dict):
    from xstilts.evaluation.predict import headline, predict, score

    def evaluate(model) -> float:
        values = []
        for d in dev_sets:
            s = score(d, predict(model, d.task.name, d, batch_size=batch_size, bf16=bf16))
            h = headline(d.task, s)
            last_scores[f"dev.{d.task.name}.{d.lang}"] = h
            values.append(h)
        return float(np.mean(values))

    return evaluate


# -- model -------------------------------------------------------------------------------------

def build_model(cfg: PhaseConfig):
    from xstilts.encoders.loading import load_encoder
    from xstilts.families import MASKED_LM
    from xstilts.models.multitask import HeadSpec, XstiltsModel
    from xstilts.models.persist import load_model
    from xstilts.tasks import get_task

    heads = []
    for t in cfg.tasks:
        task = get_task(t.task)
        heads.append(HeadSpec(t.task, task.family.name, len(task.labels or ())))
    if cfg.mlm is not None:
        heads.append(HeadSpec("mlm", MASKED_LM.name))
    if cfg.init_from:
        from xstilts.tracking.registry import fetch_model_dir

        model = load_model(fetch_model_dir(cfg.init_from), keep_heads=False)
        for i, h in enumerate(heads):
            model.add_head(h, seed=cfg.seed * 1000 + i)
    else:
        import torch

        torch.manual_seed(cfg.seed)
        encoder = load_encoder(cfg.base_model, num_hidden_layers=cfg.num_hidden_layers)
        model = XstiltsModel(encoder, [])
        for i, h in enumerate(heads):
            model.add_head(h, seed=cfg.seed * 1000 + i)
    if cfg.training.freeze_word_embeddings:
        model.encoder.embeddings.word_embeddings.weight.requires_grad_(False)
    return model


def base_model_of(cfg: PhaseConfig) -> str:
    """The base encoder reference a stored model rebuilds on (resolved to a stable path or id)."""
    from xstilts.encoders.loading import resolve_model

    return resolve_model(cfg.base_model) if cfg.base_model in ("default", "", None) else cfg.base_model


# -- the phase ---------------------------------------------------------------------------------

def _retire_unfinished(key: str) -> str | None:
    """Mark attempts that died without ending (SIGKILL) as KILLED; return the newest one's id."""
    import mlflow
    from mlflow import MlflowClient

    runs = mlflow.search_runs(filter_string=f"tags.run_key = '{key}' and attributes.status = 'RUNNING'",
                              output_format="list")
    for r in runs:
        MlflowClient().set_terminated(r.info.run_id, status="KILLED")
    return runs[0].info.run_id if runs else None


def run_phase(cfg: PhaseConfig, *, progress: bool = True, parent_run_id: str | None = None) -> PhaseResult:
    import os

    import mlflow

    from xstilts.encoders.loading import load_tokenizer
    from xstilts.models.persist import save_model
    from xstilts.paths import checkpoint_root
    from xstilts.runtime.cpu import resolve_bf16, set_threads
    from xstilts.tracking.registry import find_registered, log_and_register
    from xstilts.tracking.setup import configure_tracking
    from xstilts.training.checkpoint import CheckpointDir
    from xstilts.training.loop import train

    cfg.validate()
    set_threads(cfg.training.threads)
    configure_tracking(cfg.experiment)
    key = cfg.run_key()
    name = registry_name(cfg)
    if cfg.register and (found := find_registered(name, key)) is not None:
        log.info("reusing registered model %s (same config and seed, run %s)", found.uri, found.run_id)
        if os.environ.get("MLFLOW_RUN_ID"):  # inside `mlflow run`: say so in the run it created
            mlflow.MlflowClient().set_tag(os.environ["MLFLOW_RUN_ID"], "reused_model", found.uri)
        return PhaseResult(found.run_id, found.uri, reused=True)
    previous = _retire_unfinished(key)
    bf16 = resolve_bf16(cfg.training.bf16)
    tags = run_tags(cfg) | {"bf16": str(bf16).lower()}
    if parent_run_id:
        tags["mlflow.parentRunId"] = parent_run_id
    if previous:
        tags["previous_attempt"] = previous
    # nested when a caller holds a run open (parent given by tag otherwise)
    with mlflow.start_run(run_name=f"{cfg.phase}-{head_name(cfg)}-{cfg.condition}-s{cfg.seed}", tags=tags,
                          nested=mlflow.active_run() is not None and not os.environ.get("MLFLOW_RUN_ID")) as run:
        mlflow.log_params(flatten_params(cfg.to_dict()))
        mlflow.log_text(cfg.to_yaml(), "config.yaml")
        tokenizer = load_tokenizer(cfg.base_model)
        model = build_model(cfg)
        sets = build_train_sets(cfg, tokenizer)
        dev_sets = build_dev_sets(cfg, tokenizer)
        last_scores: dict[str, float] = {}
        evaluate = dev_evaluator(dev_sets, batch_size=cfg.training.eval_batch_size, bf16=bf16,
                                 last_scores=last_scores) if dev_sets else None
        ckpt = CheckpointDir(checkpoint_root() / key, key)
        mlflow.log_params({"train.examples": sum(len(s.units) for s in sets),
                           "train.sets": ",".join(s.name for s in sets)})
        result = train(model, sets, cfg.training, seed=cfg.seed, mixture=cfg.mixture, temperature=cfg.temperature,
                       bf16=bf16, checkpoints=ckpt, evaluate=evaluate, keep_best=cfg.selection != "last",
                       on_metrics=lambda m, step: mlflow.log_metrics(m, step=step), progress=progress)
        if result.resumed_from:
            mlflow.set_tag("resumed_from_step", str(result.resumed_from))
        summary = {"train.steps": result.steps, "train.seconds": result.seconds,
                   "train.examples_per_second": result.examples_per_second}
        if result.best_step is not None:
            summary |= {"selected.step": result.best_step if cfg.selection != "last" else result.steps,
                        "selected.dev_score": result.best_score}
        mlflow.log_metrics(summary)
        dev_scores: dict[str, float] = {}
        if evaluate is not None:
            evaluate(model)  # the selected weights' per-language dev scores
            dev_scores = dict(last_scores)
            mlflow.log_metrics(dev_scores)
        with tempfile.TemporaryDirectory(prefix="xstilts-save-") as tmp:
            model_dir = save_model(model, Path(tmp) / "model", base_model=base_model_of(cfg),
                                   frozen_word_embeddings=cfg.training.freeze_word_embeddings,
                                   store_dtype=cfg.store_dtype,
                                   extra={"run_key": key, "config": cfg.to_dict()})
            uri = None
            if cfg.register:
                registered = log_and_register(model_dir, name=name, tags=run_tags(cfg))
                uri = registered.uri
                mlflow.set_tag("registered_model", uri)
        ckpt.remove()
        return PhaseResult(run.info.run_id, uri, reused=False, dev_scores=dev_scores, loop=result)
