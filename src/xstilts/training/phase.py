"""One training phase (intermediate or target) from its config to a registered model.

``run_phase(config)``: validate, reuse a registered model trained from the same
config if there is one, else train in a fresh MLflow run (resuming from a local
checkpoint a killed or failed attempt left), select the model by the config's
policy, store it compactly and register it with its tags. An exception marks the
run FAILED and registers nothing.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

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
    checkpoint: object | None = None  # the CheckpointDir, removed once the model is registered


def head_name(cfg: PhaseConfig) -> str:
    return "+".join(t.task for t in cfg.tasks) + ("+mlm" if cfg.mlm is not None else "")


def registry_name(cfg: PhaseConfig) -> str:
    from xstilts.tracking.store import model_name

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


def dev_evaluator(dev_sets, *, batch_size: int, bf16: bool, last_scores: dict, timings=None):
    """``evaluate(model) -> mean headline dev score``; its forward passes are charged to
    ``timings``' evaluation forward passes, batching and scoring to data."""
    from xstilts.evaluation.predict import headline, predict, score
    from xstilts.runtime.timing import Timings

    timings = timings or Timings()

    def evaluate(model) -> float:
        values = []
        with timings.phase("data"), timings.forward_hooks([model]):
            for d in dev_sets:
                s = score(d, predict(model, d.task.name, d, batch_size=batch_size, bf16=bf16))
                h = headline(d.task, s)
                last_scores[f"dev.{d.task.name}.{d.lang}"] = h
                values.append(h)
        return float(np.mean(values))

    return evaluate


# -- model -------------------------------------------------------------------------------------

def build_model(cfg: PhaseConfig, init_dir: str | os.PathLike[str] | None = None):
    """The model to train: heads on the bare encoder, or on the encoder of ``cfg.init_from``
    (read from ``init_dir``, its local copy, when the caller fetched it from the registry)."""
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
        model = load_model(init_dir or cfg.init_from, keep_heads=False)
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
    """The base encoder's logical name, as a stored model records it.

    ``default`` (any alias of the converted default), a Hub id as given, or a
    local directory made absolute: never the cache location the default happened
    to have here, which the machine that loads the model need not share.
    """
    from pathlib import Path

    from xstilts.encoders.loading import DEFAULT_ALIASES

    if cfg.base_model is None or str(cfg.base_model) in DEFAULT_ALIASES:
        return "default"
    path = Path(cfg.base_model).expanduser()
    return str(path.resolve()) if path.exists() else str(cfg.base_model)


# -- the phase ---------------------------------------------------------------------------------

class Tracker(Protocol):
    """What a phase logs into (:class:`xstilts.tracking.store.JobRun`, or :class:`NullTracker`)."""

    def log_params(self, params: dict[str, Any]) -> None: ...
    def log_metrics(self, metrics: dict[str, float], step: int = 0) -> None: ...
    def set_tags(self, tags: dict[str, Any]) -> None: ...
    def log_text(self, text: str, artifact_file: str) -> None: ...


class NullTracker:
    """Logs nothing (benchmarks, library use without MLflow)."""

    def log_params(self, params): pass
    def log_metrics(self, metrics, step=0): pass
    def set_tags(self, tags): pass
    def log_text(self, text, artifact_file): pass


#: ``on_evaluation(step, score) -> stop?``: called after every dev evaluation (Optuna's pruning hook).
EvalCallback = Callable[[int, float], bool]


def train_phase(cfg: PhaseConfig, tracker: Tracker, *, model_dir: str | os.PathLike[str],
                checkpoint_dir: str | os.PathLike[str] | None = None, init_dir: str | os.PathLike[str] | None = None,
                progress: bool = True, on_evaluation: EvalCallback | None = None,
                timings=None) -> PhaseResult:
    """Train ``cfg`` into ``model_dir``: the work function of a training job.

    Reads no environment variable and configures no tracking: logging goes to
    ``tracker``, a resumable checkpoint to ``checkpoint_dir`` (resumed from when it
    holds one of the same ``run_key``), the selected model to ``model_dir``.
    ``on_evaluation`` sees every dev score and may stop the run early; ``init_dir``
    is the local copy of ``cfg.init_from``; ``timings`` (a
    :class:`~xstilts.runtime.timing.Timings`) is charged with where the time went.
    """
    from xstilts.encoders.loading import load_tokenizer
    from xstilts.models.persist import save_model
    from xstilts.runtime.timing import Timings
    from xstilts.training.checkpoint import CheckpointDir
    from xstilts.training.loop import train

    timings = timings or Timings()
    key = cfg.run_key()
    device, args = placement(cfg, tracker)  # before anything loads: a missing GPU fails here
    bf16 = args.bf16
    tracker.log_params(flatten_params(cfg.to_dict()))
    tracker.log_text(cfg.to_yaml(), "config.yaml")
    with timings.phase("model_load"):
        tokenizer = load_tokenizer(cfg.base_model)
        model = build_model(cfg, init_dir).to(device)
    with timings.phase("data"):
        sets = build_train_sets(cfg, tokenizer)
        dev_sets = build_dev_sets(cfg, tokenizer)
    last_scores: dict[str, float] = {}
    evaluate = dev_evaluator(dev_sets, batch_size=cfg.training.eval_batch_size, bf16=bf16,
                             last_scores=last_scores, timings=timings) if dev_sets else None
    ckpt = CheckpointDir(Path(checkpoint_dir) / key, key) if checkpoint_dir is not None else None
    tracker.log_params({"train.examples": sum(len(s.units) for s in sets),
                        "train.sets": ",".join(s.name for s in sets)})
    result = train(model, sets, args, seed=cfg.seed, mixture=cfg.mixture, temperature=cfg.temperature,
                   bf16=bf16, checkpoints=ckpt, evaluate=evaluate, keep_best=cfg.selection != "last",
                   on_metrics=lambda m, step: tracker.log_metrics(m, step=step), progress=progress,
                   should_stop=on_evaluation, timings=timings)
    _log_summary(tracker, cfg, result)
    dev_scores: dict[str, float] = {}
    if evaluate is not None:
        evaluate(model)  # the selected weights' per-language dev scores
        dev_scores = dict(last_scores)
        tracker.log_metrics(dev_scores)
    max_length, doc_stride = trained_lengths(cfg)
    with timings.phase("model_load"):
        model.to("cpu")  # saved from the CPU: a stored model loads on machines without a GPU
        saved = save_model(model, model_dir, base_model=base_model_of(cfg),
                           frozen_word_embeddings=cfg.training.freeze_word_embeddings,
                           store_dtype=cfg.store_dtype, tokenizer=tokenizer, max_length=max_length,
                           doc_stride=doc_stride, extra={"run_key": key, "config": cfg.to_dict()})
    return PhaseResult(None, None, reused=False, dev_scores=dev_scores, loop=result, model_dir=str(saved),
                       checkpoint=ckpt)


def placement(cfg: PhaseConfig, tracker: Tracker | None = None):
    """``(device, training args)`` of ``cfg`` on this machine: ``training.device`` resolved
    (an error naming it when it asks for a GPU that is not here), and the training args with
    ``bf16`` and ``bf16_mode`` as they run there (see :mod:`xstilts.runtime.device`). Both are
    recorded on ``tracker``'s run: never in the ``run_key``, which leaves devices out."""
    from dataclasses import replace

    from xstilts.runtime.device import describe_device, resolve_device, training_precision

    device = resolve_device(cfg.training.device, "training.device")
    precision = training_precision(device, cfg.training.bf16, cfg.training.bf16_mode)
    if tracker is not None:
        tracker.log_params({"device": str(device), "precision": precision.describe()})
        tracker.set_tags({"device": describe_device(device), "bf16": str(precision.bf16).lower()})
    return device, replace(cfg.training, bf16=precision.bf16, bf16_mode=precision.bf16_mode)


def trained_lengths(cfg: PhaseConfig) -> tuple[int, int]:
    """The ``(max_length, doc_stride)`` the model is trained with: the config's, else its
    (first) task's family defaults -- what evaluation and serving then use by default."""
    from xstilts.families import resolve_lengths
    from xstilts.tasks import get_task

    return resolve_lengths(get_task(cfg.tasks[0].task), cfg.training.max_length, cfg.training.doc_stride)


def _log_summary(tracker: Tracker, cfg: PhaseConfig, result) -> None:
    if result.resumed_from:
        tracker.set_tags({"resumed_from_step": str(result.resumed_from)})
    summary = {"train.steps": result.steps, "train.seconds": result.seconds,
               "train.examples_per_second": result.examples_per_second}
    if result.best_step is not None:
        summary |= {"selected.step": result.best_step if cfg.selection != "last" else result.steps,
                    "selected.dev_score": result.best_score}
    tracker.log_metrics(summary)
    if result.stopped_early:
        tracker.set_tags({"stopped_early_at_step": str(result.steps)})


def run_phase(cfg: PhaseConfig, *, progress: bool = True, parent_run_id: str | None = None,
              store=None) -> PhaseResult:
    """Validate ``cfg``, reuse its registered model or train and register it (one job).

    The library's and the CLI's entry point for one phase: a one-job plan run by
    :mod:`xstilts.grid.jobs` on the run store (``store``, default: the one of
    ``MLFLOW_TRACKING_URI``), with its claim, reuse and FAILED-on-error policy.
    """
    from xstilts.grid.jobs import JobContext, run_train

    from xstilts.runtime.device import resolve_device
    from xstilts.tracking.store import RunStore

    cfg.validate()
    resolve_device(cfg.training.device, "training.device")  # a missing GPU: one error line, no FAILED run
    store = store or RunStore.open(cfg.experiment)
    ctx = JobContext.create(store, parent_run_id=parent_run_id, progress=progress, adopt_launch=True)
    result = run_train(ctx, cfg, wait=True)
    launch = store.take_launch_run()
    if result.reused and launch:  # inside `mlflow run`: say so in the run it created
        from xstilts.tracking.store import JobRun

        JobRun(store, launch).set_tags({"reused_model": result.model_uri})
    return result
