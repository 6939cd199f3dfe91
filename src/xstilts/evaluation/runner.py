"""Zero-shot evaluation of one model on every language of one task, in one process.

``evaluate_model("models:/xstilts-target-panx/3", "panx")`` loads the model once,
then for each language: loads the split, refuses it if its gold labels are
missing or placeholders (:mod:`xstilts.evaluation.gold_check`), predicts
(length-sorted batches, inference mode, a bf16 copy of the model where the CPU has
bf16 matmuls),
writes XTREME's prediction file ``{out_dir}/predictions/{task}/{split}-{lang}.{tsv|json}``
and scores it with the task's registered metric. Averages follow XTREME
(:func:`~xstilts.evaluation.metrics.aggregate.summarize_task`), with and without English.

Retrieval tasks (Tatoeba, BUCC) use the encoder alone: a bare encoder (the
offline default, a local Hugging Face directory, a Hub id) or the encoder of a
trained xstilts model (see :mod:`xstilts.evaluation.retrieval_eval`).

MLflow: scores are logged as ``{task}.{metric}.{lang}`` plus the averages
(``{task}.{metric}.avg``, ``{task}.score``, ``*_no_en``) and the prediction files
as artifacts, in a **child run** of the run that trained the model (tag
``mlflow.parentRunId``, same experiment). A child run rather than the training run
itself, so that evaluating again (another split, more examples, a new layer)
never overwrites or mixes with earlier numbers, and every evaluation keeps its
own settings as parameters (``eval.*``). Under ``mlflow run`` the entry point's
run is used and tagged as that child; models without a training run (bare
encoders, plain directories) get a top-level run.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from xstilts.errors import UnknownNameError, XstiltsError

log = logging.getLogger(__name__)

SPLITS = ("test", "dev")
# Default input lengths: the task family's (xstilts.families.resolve_lengths; QA 384, else 128).
#: Padded tokens per forward pass (see :func:`xstilts.evaluation.predict.predict`).
DEFAULT_MAX_TOKENS = 1024


# -- the model -------------------------------------------------------------------------------

@dataclass
class EvalModel:
    """What evaluation needs of a model reference, loaded once."""

    ref: str
    tokenizer: Any
    encoder: Any                      # the bare transformer (retrieval)
    model: Any | None = None          # XstiltsModel with heads; None for a bare encoder
    base_model: str = ""              # the encoder the model was built on (names the default layer)
    run_id: str | None = None         # the MLflow run that trained a registered model
    tags: dict[str, str] = field(default_factory=dict)
    max_length: int | None = None     # the length the model was trained with (None: bare encoder, unknown)
    doc_stride: int | None = None     # likewise its QA window stride
    _bf16: Any | None = field(default=None, repr=False)

    def to(self, device) -> EvalModel:
        """The model (or bare encoder) moved to ``device``, in place; a bf16 copy made earlier is
        dropped (it would stay where it was)."""
        if self.model is not None:
            self.model.to(device)  # the encoder is the model's
        else:
            self.encoder.to(device)
        self._bf16 = None
        return self

    def bf16_model(self):
        """A bf16 copy of :attr:`model`, made once (see ``predict.bf16_inference_copy``)."""
        from xstilts.evaluation.predict import bf16_inference_copy

        if self._bf16 is None:
            self._bf16 = bf16_inference_copy(self.model)
        return self._bf16


def _is_model_dir(ref: str) -> bool:
    from xstilts.models.persist import MANIFEST

    return (Path(ref).expanduser() / MANIFEST).is_file()


def load_eval_model(model_ref: str, *, needs_head: bool, store=None,
                    num_hidden_layers: int | None = None) -> EvalModel:
    """Load ``model_ref``: ``models:/NAME/VERSION``, an xstilts model directory, or a bare encoder.

    A registered model is resolved and fetched through ``store`` (a
    :class:`~xstilts.tracking.store.RunStore`; opened on demand). A bare encoder
    may be cut to ``num_hidden_layers`` (small test grids).

    Raises:
        XstiltsError: a bare encoder where a task head is needed, or an unusable reference.
    """
    from xstilts.encoders.loading import load_encoder, load_tokenizer, resolve_model

    ref = str(model_ref)
    if ref.startswith("models:/") or _is_model_dir(ref):
        from xstilts.models.persist import load_for_inference

        run_id, tags, model_dir = None, {}, Path(ref).expanduser()
        if ref.startswith("models:/"):
            if store is None:
                from xstilts.tracking.store import RunStore

                store = RunStore.open()
            registered = store.resolve_registered(ref)
            run_id, tags = registered.run_id, registered.tags
        local = store.fetched(ref) if ref.startswith("models:/") else contextlib.nullcontext(model_dir)
        with local as model_dir:  # loaded whole: a download goes after
            # the base resolved here (a directory for the default: its name selects the retrieval layer)
            model, tokenizer, manifest, base = load_for_inference(model_dir)
        return EvalModel(ref, tokenizer, model.encoder, model, base, run_id, dict(tags),
                         max_length=manifest.get("max_length"), doc_stride=manifest.get("doc_stride"))
    if needs_head:
        raise XstiltsError(f"model {ref!r} is not a trained xstilts model (models:/NAME/VERSION or a directory "
                           f"with xstilts_model.json), so it has no task head; only the retrieval tasks "
                           f"(tatoeba, bucc2018) can evaluate a bare encoder")
    resolved = resolve_model(None if ref in ("", "default") else ref)
    encoder = load_encoder(resolved, num_hidden_layers=num_hidden_layers)
    encoder.eval()
    return EvalModel(ref, load_tokenizer(resolved), encoder, None, resolved)


def resolve_head(model, task) -> str:
    """The head that predicts ``task``: the model's only head, else the one named after the task
    (or after the task it is trained on, e.g. ``squad`` for XQuAD and MLQA)."""
    specs = model.head_specs
    if len(specs) == 1:
        name = next(iter(specs))
    else:
        names = [n for n in (task.name, task.train_task) if n and n in specs]
        if not names:
            raise XstiltsError(f"the model has heads {sorted(specs)}, none for task {task.name}"
                               + (f" (or {task.train_task})" if task.train_task else ""))
        name = names[0]
    task.family.check_head(specs[name], task, name)
    return name


# -- which data ------------------------------------------------------------------------------

def _real_local(task, lang: str, split: str) -> bool:
    """Local files exist and are more than the HF few-example dummy sample."""
    from xstilts.data.loading import local_files

    files = local_files(task, lang, split)
    return bool(files) and not any("hf_dummy_samples" in f.parts for f in files)


def resolve_split(task, split: str | None, langs: list[str] | None) -> str:
    """``split`` if given; else whichever of test and dev has local data for more of the
    requested languages (all of the task's if none are given), test on ties."""
    if split is not None:
        task.check_split(split)
        if split not in SPLITS:
            raise XstiltsError(f"evaluate scores a dev or test split, not {split!r}")
        return split
    pool = langs or list(task.languages)
    counts = {s: sum(_real_local(task, lang, s) for lang in pool) for s in SPLITS if s in task.splits}
    if not counts:
        raise XstiltsError(f"task {task.name} has neither a dev nor a test split")
    return max(counts, key=lambda s: (counts[s], s == "test"))


def resolve_languages(task, split: str, langs: list[str] | None) -> list[str]:
    """``langs`` checked against the task, or every language with local data for ``split``."""
    if langs:
        return [task.check_language(lang) for lang in langs]
    found = [lang for lang in task.languages if _real_local(task, lang, split)]
    if not found:
        raise XstiltsError(f"task {task.name} has no local {split} data for any language; pass --langs to "
                           f"load them from the Hugging Face Hub ({task.hub_id})")
    return found


# -- results ---------------------------------------------------------------------------------

@dataclass
class LanguageResult:
    lang: str
    num_examples: int
    scores: dict[str, float]          # percent, the metric's keys
    headline: float
    predictions_file: str
    seconds: float
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class EvalReport:
    model: str
    task: str
    split: str
    metric: str
    settings: dict[str, Any]
    languages: list[LanguageResult]
    summary: dict[str, float]         # TaskSummary.as_metrics(): averages and task score
    seconds: float
    run_id: str | None = None
    predictions_dir: str = ""

    def metrics(self) -> dict[str, float]:
        """Flat MLflow metrics: ``{task}.{metric}.{lang}`` and the summary."""
        out: dict[str, float] = {}
        for r in self.languages:
            out.update({f"{self.task}.{k}.{r.lang}": v for k, v in r.scores.items()})
            if "threshold" in r.details:
                out[f"{self.task}.threshold.{r.lang}"] = r.details["threshold"]
        out.update(self.summary)
        return out

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"metrics": self.metrics()}


# -- evaluation ------------------------------------------------------------------------------

def _write_predictions(pred_dir: Path, task, split: str, lang: str, predictions) -> Path:
    return task.family.write_predictions(pred_dir, task, split, lang, predictions)


@dataclass
class LanguageData:
    """One language's split, loaded and checked for gold labels before any model work."""

    lang: str
    data: Any                          # list of examples, or a ParallelCorpus (retrieval)
    tune: Any | None = None            # BUCC: the dev corpus that tunes a test threshold


def load_language_data(task, lang: str, split: str, *, max_examples: int | None,
                       bucc_policy: str = "dev_tuned") -> LanguageData:
    """Load ``(task, lang, split)``; refuse it if its gold labels are missing or placeholders."""
    data, tune = task.family.load_eval_split(task, lang, split, max_examples=max_examples, bucc_policy=bucc_policy)
    return LanguageData(lang, data, tune)


def _evaluate_language(em: EvalModel, task, head: str | None, item: LanguageData, split: str, *,
                       max_examples: int | None, batch_size: int, bf16: bool, max_length: int,
                       layer: int | None, bucc_policy: str, progress: bool, max_tokens: int | None):
    """(scores, predictions, number of examples, details) of one language."""
    return task.family.evaluate_language(
        em, task, head, item, split, max_examples=max_examples, batch_size=batch_size, bf16=bf16,
        max_length=max_length, layer=layer, bucc_policy=bucc_policy,
        progress=f"{task.name} {item.lang}" if progress else None, max_tokens=max_tokens, doc_stride=em.doc_stride)


def evaluate_model(model_ref: str, task: str, *, langs: list[str] | None = None, split: str | None = None,
                   max_examples: int | None = None, batch_size: int = 64, bf16: bool | None = None,
                   out_dir: str | os.PathLike[str] = ".", layer: int | None = None,
                   bucc_threshold_policy: str = "dev_tuned", max_length: int | None = None,
                   max_tokens: int | None = DEFAULT_MAX_TOKENS, log_to_mlflow: bool = True, run_id: str | None = None,
                   progress: bool = True, model: EvalModel | None = None, store=None,
                   num_hidden_layers: int | None = None, timings=None, device: str | None = "auto") -> EvalReport:
    """Score ``model_ref`` on ``task`` in every language; see the module docstring.

    Args:
        model_ref: ``models:/NAME/VERSION``, an xstilts model directory, or (retrieval
            only) a bare encoder: ``default``, a local HF directory or a Hub id.
        task: a target task name.
        langs: languages to score (default: every language with local data for the split).
        split: ``dev`` or ``test`` (default: the one with local data for more languages, test on ties).
        max_examples: keep the first N examples (retrieval: sentences per side) of each language.
        batch_size: at most this many examples per forward pass.
        max_tokens: and at most this many padded tokens (None: no token budget;
            retrieval embeds fixed batches of ``batch_size``, as the encoder check does).
        bf16: bf16 inference (a bf16 copy of the model; retrieval: autocast);
            None = where the CPU supports it natively.
        out_dir: prediction files go to ``{out_dir}/predictions/{task}/{split}-{lang}.*``.
        layer: retrieval only, the hidden layer to pool (-1 = last); None = the model's default.
        bucc_threshold_policy: ``dev_tuned`` or ``same_split`` (BUCC only; recorded).
        max_length: tokens per input (default: the length the model was trained with; retrieval,
            bare encoders and models that do not record it: XTREME's, 384 for QA, else 128).
        log_to_mlflow: log scores, settings and prediction files (see module doc).
        run_id: log into this existing MLflow run instead of a new child run.
        model: an already loaded :class:`EvalModel` for ``model_ref`` (skips loading).
        store: the :class:`~xstilts.tracking.store.RunStore` that resolves registered
            models and receives the logs (default: opened on demand).
        num_hidden_layers: cut a bare encoder to this many layers (small test grids).
        timings: a :class:`~xstilts.runtime.timing.Timings` charged with the forward passes
            (evaluation forward), loading and featurizing the data and scoring (data).
        device: auto (a CUDA GPU when torch sees one, else the CPU), cpu, cuda or cuda:N; the
            model (``model`` too) is moved there. Recorded in the settings, not in any key.
    """
    from xstilts.families import resolve_lengths
    from xstilts.runtime.cpu import resolve_bf16
    from xstilts.runtime.device import resolve_device
    from xstilts.runtime.timing import Timings
    from xstilts.tasks import get_task

    start = time.perf_counter()
    t = get_task(task)
    bucc_threshold_policy = _check_request(t, max_examples, bucc_threshold_policy)
    split = resolve_split(t, split, langs)
    languages = resolve_languages(t, split, langs)
    bf16 = resolve_bf16(bf16)
    where = resolve_device(device, "device")  # before any loading: a missing GPU fails here
    timings = timings or Timings()
    with timings.phase("data"):
        items = [load_language_data(t, lang, split, max_examples=max_examples, bucc_policy=bucc_threshold_policy)
                 for lang in languages]
    if store is None and log_to_mlflow:  # one store for loading and logging: the first to open it under
        store = _open_store()             # `mlflow run` takes the launch run, which the evaluation is logged into
    with timings.phase("model_load"):
        em = _placed(model or load_eval_model(model_ref, needs_head=t.family.needs_head, store=store,
                                              num_hidden_layers=num_hidden_layers), where)
    # a head sees inputs cut as in its training; retrieval keeps XTREME's protocol (encoder only)
    max_length, _ = resolve_lengths(t, max_length or (em.max_length if t.family.needs_head else None))
    head = resolve_head(em.model, t) if t.family.needs_head else None
    layer = t.family.eval_layer(em, layer)
    settings = _settings(em, t, str(model_ref), split, languages, head, max_examples=max_examples,
                         batch_size=batch_size, bf16=bf16, max_length=max_length, layer=layer,
                         max_tokens=max_tokens, bucc_policy=bucc_threshold_policy) | {"device": str(where)}
    pred_dir = Path(out_dir) / "predictions"
    if bf16 and head is not None:
        with timings.phase("model_load"):
            em.bf16_model()  # made before the hooks go on (a copy would carry them)
    with timings.phase("data"), timings.forward_hooks([em.model, em._bf16, em.encoder]):
        results = [_score_language(em, t, head, item, split, pred_dir, max_examples=max_examples,
                                   batch_size=batch_size, bf16=bf16, max_length=max_length, layer=layer,
                                   bucc_policy=bucc_threshold_policy, progress=progress, max_tokens=max_tokens)
                   for item in items]
    report = _report(str(model_ref), t, split, settings, results, time.perf_counter() - start, pred_dir)
    write_report(report, out_dir)
    if log_to_mlflow:
        report.run_id = log_report(report, em, store, run_id=run_id)
    return report


def _placed(em: EvalModel, where) -> EvalModel:
    """``em`` on the device ``where`` (a model already on the CPU, evaluated there, is not touched)."""
    from xstilts.runtime.device import model_device

    if where.type != "cpu" or model_device(em.encoder).type != "cpu":
        em.to(where)
    return em


def _open_store():
    from xstilts.tracking.store import RunStore

    return RunStore.open()


def _settings(em, t, model_ref: str, split: str, languages: list[str], head: str | None, *, max_examples,
              batch_size: int, bf16: bool, max_length: int, layer, max_tokens, bucc_policy: str) -> dict[str, Any]:
    """The evaluation's recorded settings (its run's params and the report's header)."""
    settings: dict[str, Any] = {
        "model": model_ref, "task": t.name, "split": split, "langs": ",".join(languages),
        "max_examples": max_examples or "all", "batch_size": batch_size, "bf16": bf16,
        "max_length": max_length, "head": head or "none (encoder)", "base_model": em.base_model,
    }
    # bf16_mode, then layer and pooling (retrieval) or max_tokens, and BUCC's threshold policy
    settings |= t.family.eval_settings(bf16=bf16, layer=layer, max_tokens=max_tokens, bucc_policy=bucc_policy)
    if em.tags.get("selection_policy"):
        settings["model_selection_policy"] = em.tags["selection_policy"]
    return settings


def _check_request(t, max_examples: int | None, bucc_threshold_policy: str) -> str:
    """Refuse an intermediate task or a bad cap; the BUCC policy, validated."""
    from xstilts.evaluation.metrics.bucc import ThresholdPolicy

    if t.kind != "target":
        raise XstiltsError(f"task {t.name} is an intermediate task; evaluate scores the target tasks")
    if max_examples is not None and max_examples < 1:
        raise XstiltsError(f"max_examples must be positive, got {max_examples}")
    try:
        return str(ThresholdPolicy(bucc_threshold_policy))
    except ValueError:
        raise UnknownNameError("BUCC threshold policy", bucc_threshold_policy,
                               [p.value for p in ThresholdPolicy]) from None


def _score_language(em: EvalModel, t, head: str | None, item: LanguageData, split: str, pred_dir: Path,
                    **kw) -> LanguageResult:
    """One language: predict, write XTREME's prediction file, score."""
    from xstilts.evaluation.metrics.registry import get_metric

    t0 = time.perf_counter()
    scores, predictions, n, details = _evaluate_language(em, t, head, item, split, **kw)
    path = _write_predictions(pred_dir, t, split, item.lang, predictions)
    keys = get_metric(t.metric).headline
    log.info("%s %s %s: %s", t.name, split, item.lang, scores)
    return LanguageResult(item.lang, n, scores, sum(scores[k] for k in keys) / len(keys), str(path),
                          time.perf_counter() - t0, details)


def _report(model_ref: str, t, split: str, settings: dict, results: list[LanguageResult], seconds: float,
            pred_dir: Path) -> EvalReport:
    from xstilts.evaluation.metrics.aggregate import summarize_task
    from xstilts.evaluation.metrics.registry import get_metric

    summary = summarize_task(t.name, {r.lang: r.scores for r in results}, get_metric(t.metric).headline).as_metrics()
    return EvalReport(model_ref, t.name, split, t.metric, settings, results, summary, seconds,
                      predictions_dir=str(pred_dir / t.name))


def report_path(out_dir: str | os.PathLike[str], task: str, split: str) -> Path:
    return Path(out_dir) / f"eval-{task}-{split}.json"


def write_report(report: EvalReport, out_dir: str | os.PathLike[str]) -> Path:
    from xstilts.evaluation.predictions import write_atomic

    return write_atomic(report_path(out_dir, report.task, report.split),
                        json.dumps(report.to_dict(), indent=2, default=str) + "\n")


# -- MLflow ----------------------------------------------------------------------------------

def eval_record(report: EvalReport) -> dict[str, Any]:
    """What a later lookup by evaluation key reads back: the per-language scores."""
    return {"model": report.model, "task": report.task, "split": report.split, "metric": report.metric,
            "languages": {r.lang: r.scores for r in report.languages}}


def log_report(report: EvalReport, em: EvalModel, store, *, run_id: str | None = None,
               parent_id: str | None = None, tags: dict[str, str] | None = None,
               adopt_launch: bool = True) -> str:
    """Log ``report`` through ``store`` (see module doc for which run); returns the run id.

    ``parent_id`` defaults to the run that trained the model; ``adopt_launch``
    logs into the run ``mlflow run`` created, when there is one.
    """
    from xstilts.tracking.store import PARENT_TAG, JobRun

    tags = {"phase": "evaluation", "task": report.task, "eval.split": report.split, "eval.model": report.model,
            **(tags or {})}
    if parent_id is None and em.run_id and em.run_id != run_id and store.run_exists(em.run_id):
        parent_id = em.run_id
    if run_id:
        run = JobRun(store, run_id)
        run.set_tags(tags | ({PARENT_TAG: parent_id} if parent_id else {}))
        _log_evaluation(run, report)
        store.end_run(run_id)
        return run_id
    with store.job_run(f"eval-{report.task}-{report.split}", tags, parent_id=parent_id,
                       adopt_launch=adopt_launch) as run:
        _log_evaluation(run, report)
    return run.run_id


def _log_evaluation(run, report: EvalReport) -> None:
    from xstilts.tracking.store import EVAL_RECORD

    run.log_params({f"eval.{k}": v for k, v in report.settings.items()})
    metrics = report.metrics()
    total = sum(r.num_examples for r in report.languages)
    metrics["eval.seconds"] = report.seconds
    metrics["eval.examples_per_second"] = total / report.seconds if report.seconds else 0.0
    run.log_metrics(metrics)
    for r in report.languages:
        run.log_artifact(r.predictions_file, f"predictions/{report.task}")
    run.log_dict(report.to_dict(), f"evaluation/{report.task}-{report.split}.json")
    run.log_dict(eval_record(report), EVAL_RECORD)
