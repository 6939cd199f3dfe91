"""The :class:`TaskFamily` interface: everything that differs between kinds of task.

A task module declares its family object (``family = TAGGING``); training,
evaluation and serving then ask ``task.family`` to featurize, build and run the
head, decode outputs, check gold labels and write prediction files, instead of
switching on a family name in each of those places. Families are stateless
singletons, so a task class can hold one as a class attribute.

Heavy modules (torch, featurizers, metrics) are imported inside the methods:
``xstilts.tasks`` imports the families, and listing tasks should stay cheap.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from xstilts.errors import XstiltsError

#: XTREME's ``max_seq_length`` and ``doc_stride`` flags (``scripts/train_*.sh``).
XTREME_MAX_LENGTH = 128
XTREME_DOC_STRIDE = 128


@dataclass(frozen=True)
class ServingField:
    """One input column of a serving request."""

    name: str
    type: str                    # "string", "list[string]"
    required: bool = True
    doc: str = ""
    words: bool = False          # list[string] of single words: an item with whitespace in it is refused


@dataclass(frozen=True)
class ServingSchema:
    """Request rows (one record per input) and what each row's response is."""

    inputs: tuple[ServingField, ...]
    output: str                  # what :meth:`TaskFamily.serve` returns per row

    def check_row(self, i: int, row: Mapping[str, Any]) -> None:
        """Refuse a row lacking a required field, naming the row and the field."""
        for f in self.inputs:
            if f.required and row.get(f.name) in (None, ""):
                raise XstiltsError(f"serving row {i}: missing field {f.name!r} ({f.doc or f.type})")

    def to_dict(self) -> dict[str, Any]:
        return {"inputs": [vars(f) for f in self.inputs], "output": self.output}


class TaskFamily:
    """Base class of the family objects; subclasses override what their family does differently.

    Defaults describe a family with a trained head, one feature row per unit and
    XTREME's 128-token inputs.
    """

    name: ClassVar[str]
    #: the task's default input length and QA window stride (see :meth:`lengths`)
    max_length: ClassVar[int] = XTREME_MAX_LENGTH
    doc_stride: ClassVar[int] = XTREME_DOC_STRIDE
    #: False: evaluated with the bare encoder, no head, no training data (retrieval)
    needs_head: ClassVar[bool] = True
    serving: ClassVar[ServingSchema]
    #: file formats a dataset of this family may be declared in (``tasks.declared``), each with
    #: its (required, optional) record fields; empty: the family cannot be declared in a config
    declared_formats: ClassVar[dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {}
    #: a sentence the grid report adds to this family's target note (what its headline metric means)
    report_note: ClassVar[str] = ""
    #: the metric a declared dataset of this family is scored with unless it names one
    default_metric: ClassVar[str | None] = None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"

    # -- lengths -------------------------------------------------------------------------
    def lengths(self, max_length: int | None, doc_stride: int | None) -> tuple[int, int]:
        """``(max_length, doc_stride)``, each None replaced by this family's default."""
        return (self.max_length if max_length is None else max_length,
                self.doc_stride if doc_stride is None else doc_stride)

    # -- data ----------------------------------------------------------------------------
    def read_declared(self, fmt: str, path, lang: str, *, fields: Mapping[str, Any], labels, label_map,
                      options: Mapping[str, Any]) -> list[Any]:
        """Records of one file of a dataset declared in a config (format ``fmt``, see :attr:`declared_formats`)."""
        raise XstiltsError(f"family {self.name} cannot read declared datasets")

    def filter_examples(self, examples: list[Any]) -> list[Any]:
        """The training/dev examples a head can learn from (all of them, unless overridden)."""
        return examples

    def featurizer(self, task, tokenizer, *, max_length: int, doc_stride: int):
        raise XstiltsError(f"task {task.name}: family {self.name} has no featurizer for training")

    def collate(self, features: Sequence[Any], pad_id: int) -> dict:
        raise NotImplementedError

    def units(self, features: Sequence[Any]) -> list[list[int]]:
        """Feature indices a batch must keep together (one feature each by default)."""
        return [[i] for i in range(len(features))]

    def batch_group(self, unit: Sequence[int]) -> Any:
        """Evaluation and serving put only units with equal groups in one batch (None: any mix)."""
        return None

    def collator(self, pad_id: int):
        """:meth:`collate` bound to the tokenizer's pad id: what a training set or evaluation batches with."""
        return partial(self.collate, pad_id=pad_id)

    def map_hub_datasets(self, task, datasets_: Sequence[Any], lang: str, split: str):
        """Records of already loaded ``datasets.Dataset`` objects, concatenated in order."""
        from xstilts.data.hub import label_names_of

        out: list = []
        for ds in datasets_:
            out.extend(task.from_hub_rows(ds, lang, split, label_names_of(ds, task)))
        return out

    # -- the head ------------------------------------------------------------------------
    def build_head(self, num_labels: int, config):
        raise XstiltsError(f"family {self.name} has no head")

    def forward(self, model, head, batch: Mapping[str, Any]):
        """The head's :class:`~xstilts.models.heads.TaskOutput` (loss where labels are given)."""
        raise XstiltsError(f"family {self.name} has no head")

    def check_head(self, spec, task, name: str) -> None:
        """Raise unless the model head ``name`` (a ``HeadSpec``) can predict ``task``."""
        if spec.family != self.name:
            raise XstiltsError(f"the model's head {name!r} is a {spec.family} head; task {task.name} "
                               f"needs {self.name}")
        if task.labels and spec.num_labels != len(task.labels):
            raise XstiltsError(f"the model's head {name!r} predicts {spec.num_labels} labels; task {task.name} "
                               f"has {len(task.labels)} ({', '.join(task.labels)})")

    # -- predictions ---------------------------------------------------------------------
    def decode(self, data, outputs: Iterable[tuple[list[int], list[int], Any]]) -> Any:
        """Predictions in example order from ``(units, rows, TaskOutput)`` of every batch."""
        raise XstiltsError(f"task {data.task.name}: family {self.name} cannot decode head outputs")

    def gold(self, task, examples: Sequence[Any]) -> Any:
        """Gold labels in the form :meth:`decode` returns predictions."""
        raise XstiltsError(f"task {task.name}: no gold labels for family {self.name}")

    def require_gold(self, task, lang: str, split: str, data: Any) -> None:
        """Raise unless every item of the whole split carries a real gold label."""
        raise XstiltsError(f"task {task.name}: no gold check for family {self.name}")

    def write_predictions(self, pred_dir: Path, task, split: str, lang: str, predictions: Any) -> Path:
        """One label per line (XTREME's layout for classification); families override theirs."""
        from xstilts.evaluation import predictions as files

        return files.write_label_predictions(pred_dir, task.name, split, lang, predictions)

    # -- evaluation ----------------------------------------------------------------------
    def load_eval_split(self, task, lang: str, split: str, *, max_examples: int | None,
                        bucc_policy: str) -> tuple[Any, Any | None]:
        """``(data, tuning data or None)`` of one language, gold checked on the whole split."""
        from xstilts.data.loading import load_examples

        examples = load_examples(task.name, lang, split)
        self.require_gold(task, lang, split, examples)  # on the whole split: a prefix may look constant
        return (examples[:max_examples] if max_examples is not None else examples), None

    def method_note(self, task) -> str | None:
        """A sentence for the report's Methods list on how ``task``'s scores were produced (none here)."""
        return None

    def eval_layer(self, em, layer: int | None) -> int | None:
        """The hidden layer evaluation pools (only the encoder-only families pool one)."""
        return layer

    def eval_settings(self, *, bf16: bool, layer: int | None, max_tokens: int | None,
                      bucc_policy: str) -> dict[str, Any]:
        """The family's part of the recorded evaluation settings."""
        return {"bf16_mode": "weights" if bf16 else "off", "max_tokens": max_tokens or "none"}

    def evaluate_language(self, em, task, head: str | None, item, split: str, *, max_examples: int | None,
                          batch_size: int, bf16: bool, max_length: int, layer: int | None, bucc_policy: str,
                          progress: str | None, max_tokens: int | None, doc_stride: int | None = None):
        """``(scores, predictions, number of examples, details)`` of one language, with the head."""
        from xstilts.data.task_features import task_features
        from xstilts.evaluation.predict import EvalData, predict, score

        model = em.bf16_model() if bf16 else em.model
        features = task_features(task, item.data, em.tokenizer, lang=item.lang, split=split,
                                 max_length=max_length, doc_stride=doc_stride or self.doc_stride)
        data = EvalData(task, item.lang, split, item.data, features)
        predictions = predict(model, head, data, batch_size=batch_size, bf16=bf16, progress=progress,
                              max_tokens=max_tokens)
        return score(data, predictions), predictions, len(item.data), {}

    # -- serving -------------------------------------------------------------------------
    def check_row(self, i: int, row: Mapping[str, Any]) -> None:
        """Refuse a request row the schema does not allow (families with either-or fields override)."""
        self.serving.check_row(i, row)

    def examples_from_rows(self, task, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        """Serving request rows as the family's (unlabelled) example records."""
        raise NotImplementedError

    def response(self, predictions: Any, examples: Sequence[Any]) -> list[Any]:
        """One response per request row from :meth:`decode`'s predictions (in row order)."""
        return list(predictions)

    def serve(self, task, model, tokenizer, rows: Sequence[Mapping[str, Any]], *, head: str | None,
              max_length: int, doc_stride: int, batch_size: int = 32, base_model: str = "") -> list[Any]:
        """Predict request ``rows`` exactly as evaluation does: same featurizer, lengths and decoding.

        ``base_model`` names the encoder the model was built on (the retrieval families pick
        their layer by it).
        """
        from xstilts.evaluation.predict import predict

        data = self.served_data(task, tokenizer, rows, max_length=max_length, doc_stride=doc_stride)
        if not data.examples:
            return []
        return self.response(predict(model, head, data, batch_size=batch_size), data.examples)

    def check_served_rows(self, task, tokenizer, rows: Sequence[Mapping[str, Any]], *, max_length: int,
                          doc_stride: int) -> None:
        """Refuse (``XstiltsError`` naming the row) rows the featurizer cannot window at these lengths."""
        for i, row in enumerate(rows):
            self.check_row(i, row)

    def served_data(self, task, tokenizer, rows: Sequence[Mapping[str, Any]], *, max_length: int,
                    doc_stride: int):
        """Checked request ``rows`` as evaluation data (examples and features, featurized as evaluation does)."""
        from xstilts.data.task_features import task_features
        from xstilts.evaluation.predict import EvalData

        self.check_served_rows(task, tokenizer, rows, max_length=max_length, doc_stride=doc_stride)
        examples = self.examples_from_rows(task, rows)
        features = task_features(task, examples, tokenizer, lang="serve", split="serve", max_length=max_length,
                                 doc_stride=doc_stride, cache=False) if examples else None
        return EvalData(task, "serve", "serve", examples, features)

    # -- ONNX export and serving from an export ------------------------------------------
    #: the exported graph's outputs and their dynamic axes (by position; None: fixed)
    export_outputs: ClassVar[dict[str, tuple[str | None, ...]]] = {"logits": ("batch", None)}
    #: dynamic axes of ``input_ids`` / ``attention_mask``
    export_input_axes: ClassVar[tuple[str, ...]] = ("batch", "sequence")
    #: the task-shaped HTTP endpoint of this family (``POST /models/{name}/{endpoint}``)
    endpoint: ClassVar[str] = "predict"

    def export_module(self, model, head: str | None, *, base_model: str = ""):
        """The torch module ``torch.onnx.export`` traces: ``(input_ids, attention_mask) -> outputs``,
        computed as :meth:`forward` computes them (so span logits come masked as in evaluation)."""
        from xstilts.export.graphs import HeadGraph

        return HeadGraph(model, head)

    def rows_from_sentences(self, sentences: Sequence[str]) -> list[dict[str, Any]]:
        """Request rows of this family built from real sentences (export parity checks)."""
        return [{"text": s} for s in sentences]

    def graph_batches(self, task, tokenizer, rows: Sequence[Mapping[str, Any]], *, max_length: int,
                      doc_stride: int, batch_size: int = 8) -> list[dict[str, Any]]:
        """``{input_ids, attention_mask}`` torch batches of ``rows`` as evaluation featurizes them."""
        from xstilts.data.task_features import task_features

        f = task_features(task, self.examples_from_rows(task, rows), tokenizer, lang="export", split="export",
                          max_length=max_length, doc_stride=doc_stride, cache=False)
        out = []
        for start in range(0, len(f.units), batch_size):
            idx = [i for u in f.units[start:start + batch_size] for i in u]
            batch = f.collate([f.features[i] for i in idx])
            out.append({k: batch[k] for k in ("input_ids", "attention_mask")})
        return out

    def score_exported(self, task, model, tokenizer, examples: Sequence[Any], *, lang: str, split: str,
                       head: str | None, max_length: int, doc_stride: int,
                       max_examples: int | None = None) -> dict[str, float]:
        """The task metric of ``model`` (an ``XstiltsModel`` or an ONNX model called the same way) on
        ``examples`` (as :meth:`load_eval_split` returns them, already cut to ``max_examples``)."""
        from xstilts.data.task_features import task_features
        from xstilts.evaluation.predict import EvalData, predict, score

        features = task_features(task, examples, tokenizer, lang=lang, split=split, max_length=max_length,
                                 doc_stride=doc_stride, cache=False)
        data = EvalData(task, lang, split, list(examples), features)
        return score(data, predict(model, head, data, batch_size=32))

    def serve_exported(self, task, model, tokenizer, rows: Sequence[Mapping[str, Any]], *, max_length: int,
                       doc_stride: int, batch_size: int = 32) -> list[Any]:
        """:meth:`serve` on an exported model (an ONNX model called like ``XstiltsModel``)."""
        return self.serve(task, model, tokenizer, rows, head=model.head, max_length=max_length,
                          doc_stride=doc_stride, batch_size=batch_size)

    def serve_exported_described(self, task, model, tokenizer, rows: Sequence[Mapping[str, Any]], *,
                                 max_length: int, doc_stride: int, batch_size: int = 32) -> list[dict[str, Any]]:
        """The task-shaped endpoint's answers (:meth:`describe` of :meth:`serve_exported`'s) on an exported model."""
        return self.describe(rows, self.serve_exported(task, model, tokenizer, rows, max_length=max_length,
                                                       doc_stride=doc_stride, batch_size=batch_size))

    def describe(self, rows: Sequence[Mapping[str, Any]], responses: Sequence[Any]) -> list[dict[str, Any]]:
        """The task-shaped endpoint's answer per row, from :meth:`serve`'s responses."""
        return [{"label": r} for r in responses]
