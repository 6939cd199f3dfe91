"""Retrieval with the bare encoder: Tatoeba (nearest neighbour) and BUCC 2018 (bitext mining).

No head and no training data: evaluation embeds sentences with one hidden layer
of the encoder (:mod:`xstilts.evaluation.retrieval_eval`). The two tasks differ
in their gold (line alignment vs. gold pairs), their scoring and their
prediction files, so each has its own family object; both are named
``retrieval``.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from xstilts.families.base import ServingField, ServingSchema, TaskFamily


class Retrieval(TaskFamily):
    """Sentences in, mean-pooled embeddings out; shared by Tatoeba and BUCC."""

    name = "retrieval"
    needs_head = False
    serving = ServingSchema((ServingField("text", "string", doc="a sentence in any language"),),
                            output="its embedding: the mean-pooled hidden layer evaluation uses, a list of floats")
    endpoint = "embed"
    export_outputs = {"embeddings": ("batch", None)}

    def map_hub_datasets(self, task, datasets_: Sequence[Any], lang: str, split: str):
        """One corpus from the rows of all datasets (gold pairs pair rows across them)."""
        from xstilts.data.hub import label_names_of

        rows = [row for ds in datasets_ for row in ds]
        return task.from_hub_rows(rows, lang, split, label_names_of(datasets_[0], task) if datasets_ else None)

    def require_gold(self, task, lang: str, split: str, data: Any) -> None:
        from xstilts.evaluation.gold_check import refuse

        if not data.source or not data.target:
            raise refuse(task, lang, split, "the corpus is empty")

    def load_eval_split(self, task, lang: str, split: str, *, max_examples: int | None,
                        bucc_policy: str) -> tuple[Any, Any | None]:
        """The whole corpus: retrieval keeps its own prefix rule (``max_examples`` sentences per side)."""
        from xstilts.data.loading import load_parallel

        corpus = load_parallel(task.name, lang, split)
        self.require_gold(task, lang, split, corpus)
        return corpus, None

    def eval_layer(self, em, layer: int | None) -> int | None:
        from xstilts.evaluation.retrieval_eval import default_layer

        return default_layer(em.base_model, em.encoder.config.num_hidden_layers) if layer is None else layer

    def eval_settings(self, *, bf16: bool, layer: int | None, max_tokens: int | None,
                      bucc_policy: str) -> dict[str, Any]:
        # pools hidden states of the fp32 encoder under autocast, as the encoder check does
        return {"bf16_mode": "autocast" if bf16 else "off", "layer": layer, "pooling": "mean"}

    def serve(self, task, model, tokenizer, rows: Sequence[Mapping[str, Any]], *, head: str | None,
              max_length: int, doc_stride: int, batch_size: int = 32, base_model: str = "") -> list[Any]:
        """Embed each row's ``text`` with the layer and length evaluation uses (no head involved)."""
        from xstilts.encoders.embed import embed_sentences
        from xstilts.evaluation.retrieval_eval import default_layer

        for i, row in enumerate(rows):
            self.check_row(i, row)
        encoder = encoder_of(model)
        layer = default_layer(base_model, encoder.config.num_hidden_layers)
        vectors = embed_sentences(encoder, tokenizer, [str(r["text"]) for r in rows], batch_size=batch_size,
                                  max_length=max_length, layer=layer)
        return vectors.tolist()

    # -- export: the encoder's mean-pooled sentence embeddings ---------------------------
    def export_module(self, model, head: str | None, *, base_model: str = ""):
        """Mean pooling over the mask of the layer evaluation pools (the encoder alone, no head)."""
        from xstilts.evaluation.retrieval_eval import default_layer
        from xstilts.export.graphs import EmbeddingGraph

        encoder = encoder_of(model)
        return EmbeddingGraph(encoder, default_layer(base_model, encoder.config.num_hidden_layers))

    def graph_batches(self, task, tokenizer, rows: Sequence[Mapping[str, Any]], *, max_length: int,
                      doc_stride: int, batch_size: int = 8) -> list[dict[str, Any]]:
        texts = [str(r["text"]) for r in rows]
        return [dict(tokenizer(texts[i:i + batch_size], truncation=True, max_length=max_length, padding=True,
                               return_tensors="pt", return_token_type_ids=False))
                for i in range(0, len(texts), batch_size)]

    def score_exported(self, task, model, tokenizer, examples: Any, *, lang: str, split: str,
                       head: str | None, max_length: int, doc_stride: int,
                       max_examples: int | None = None) -> dict[str, float]:
        """Top-1 accuracy of ``model.embed`` on the first ``max_examples`` aligned lines of a corpus
        (``examples``: a parallel corpus; Tatoeba's gold is the line alignment), XTREME's direction
        (English queries) as ``accuracy`` and the other as ``accuracy_xx_to_en``."""
        from xstilts.evaluation.metrics.retrieval import tatoeba_accuracy

        n = len(examples.source) if max_examples is None else min(max_examples, len(examples.source))
        src = model.embed(list(examples.source[:n]), max_length=max_length)
        tgt = model.embed(list(examples.target[:n]), max_length=max_length)
        result = tatoeba_accuracy(src, tgt)
        return {"accuracy": result.en_to_xx, "accuracy_xx_to_en": result.xx_to_en}

    def serve_exported(self, task, model, tokenizer, rows: Sequence[Mapping[str, Any]], *, max_length: int,
                       doc_stride: int, batch_size: int = 32) -> list[Any]:
        for i, row in enumerate(rows):
            self.check_row(i, row)
        return model.embed([str(r["text"]) for r in rows], max_length=max_length).tolist()

    def describe(self, rows: Sequence[Mapping[str, Any]], responses: Sequence[Any]) -> list[dict[str, Any]]:
        return [{"embedding": v, "dim": len(v)} for v in responses]


class TatoebaRetrieval(Retrieval):
    """en -> xx nearest neighbour as XTREME runs it (xx -> en beside it); gold is the line alignment.

    Predictions are XTREME's ``tatoeba/test-{lang}.tsv``: per English line, the index of the
    retrieved xx line. Beside the predictions folder, ``labels/tatoeba/test-{lang}.tsv`` holds
    the gold in XTREME's label layout (line i: ``i``), so that ``python evaluate.py
    --prediction_folder OUT/predictions --label_folder OUT/labels`` of google-research/xtreme
    scores them (with every XTREME Tatoeba language evaluated, as that script requires).
    """

    report_note = ("Its `accuracy` is top-1 retrieval with English queries among the other language's "
                   "sentences (en -> xx, XTREME's direction); `accuracy_xx_to_en` in the results table is "
                   "the other direction.")

    def require_gold(self, task, lang: str, split: str, data: Any) -> None:
        from xstilts.evaluation.gold_check import refuse

        super().require_gold(task, lang, split, data)
        # Gold is the line alignment itself: line i translates line i.
        if len(data.source) != len(data.target):
            raise refuse(task, lang, split, f"{len(data.source)} source lines but {len(data.target)} "
                                            "English lines; Tatoeba gold is the line alignment")

    def evaluate_language(self, em, task, head: str | None, item, split: str, *, max_examples: int | None,
                          batch_size: int, bf16: bool, max_length: int, layer: int | None, bucc_policy: str,
                          progress: str | None, max_tokens: int | None, doc_stride: int | None = None):
        from xstilts.evaluation.retrieval_eval import evaluate_tatoeba

        out = evaluate_tatoeba(em.encoder, em.tokenizer, item.data, layer=layer, bf16=bf16, batch_size=batch_size,
                               max_examples=max_examples, max_length=max_length, progress=progress)
        return out.scores, out.predictions, out.num_examples, out.details


    def write_predictions(self, pred_dir: Path, task, split: str, lang: str, predictions: Any) -> Path:
        from xstilts.evaluation import predictions as files

        files.write_index_gold(Path(pred_dir).parent / "labels", task.name, split, lang, len(predictions))
        return files.write_label_predictions(pred_dir, task.name, split, lang, predictions)


class BuccMining(Retrieval):
    """Margin-based mining with a tuned score threshold; predictions are mined id pairs."""

    def require_gold(self, task, lang: str, split: str, data: Any) -> None:
        from xstilts.evaluation.gold_check import refuse

        super().require_gold(task, lang, split, data)
        if not data.gold:
            raise refuse(task, lang, split, "no gold sentence pairs (the .gold file is missing or empty)")

    def load_eval_split(self, task, lang: str, split: str, *, max_examples: int | None,
                        bucc_policy: str) -> tuple[Any, Any | None]:
        """The corpus, and under ``dev_tuned`` on test the dev corpus that tunes the threshold."""
        from xstilts.data.loading import load_parallel
        from xstilts.evaluation.runner import _real_local

        corpus, _ = super().load_eval_split(task, lang, split, max_examples=max_examples, bucc_policy=bucc_policy)
        tune = None
        if bucc_policy == "dev_tuned" and split == "test" and _real_local(task, lang, "dev"):
            tune = load_parallel(task.name, lang, "dev")
            self.require_gold(task, lang, "dev", tune)
        return corpus, tune

    def eval_settings(self, *, bf16: bool, layer: int | None, max_tokens: int | None,
                      bucc_policy: str) -> dict[str, Any]:
        return super().eval_settings(bf16=bf16, layer=layer, max_tokens=max_tokens, bucc_policy=bucc_policy) \
            | {"bucc_threshold_policy": bucc_policy}

    def evaluate_language(self, em, task, head: str | None, item, split: str, *, max_examples: int | None,
                          batch_size: int, bf16: bool, max_length: int, layer: int | None, bucc_policy: str,
                          progress: str | None, max_tokens: int | None, doc_stride: int | None = None):
        from xstilts.evaluation.retrieval_eval import evaluate_bucc_split

        out = evaluate_bucc_split(em.encoder, em.tokenizer, item.data, policy=bucc_policy, layer=layer, bf16=bf16,
                                  batch_size=batch_size, max_examples=max_examples, tune_corpus=item.tune,
                                  max_length=max_length, progress=progress)
        return out.scores, out.predictions, out.num_examples, out.details

    def write_predictions(self, pred_dir: Path, task, split: str, lang: str, predictions: Any) -> Path:
        from xstilts.evaluation import predictions as files

        return files.write_pair_predictions(pred_dir, task.name, split, lang, predictions)


TATOEBA = TatoebaRetrieval()
BUCC = BuccMining()


def encoder_of(model):
    """The encoder that pooling runs on: an ``XstiltsModel``'s, or ``model`` itself when it is a bare encoder
    (whose own ``encoder`` attribute is its stack of layers, without the embeddings)."""
    from xstilts.models.multitask import XstiltsModel

    return model.encoder if isinstance(model, XstiltsModel) else model
