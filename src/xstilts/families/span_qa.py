"""Extractive QA (SQuAD, XQuAD, MLQA, TyDiQA-GoldP): 384-token windows, answer spans cut from the context."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from xstilts.errors import XstiltsError
from xstilts.families.base import ServingField, ServingSchema, TaskFamily


class SpanQA(TaskFamily):
    """Start/end logits per window; predictions are ``{question id: answer text}``."""

    name = "span_qa"
    max_length = 384   # XTREME's run_squad.py windows
    doc_stride = 128
    serving = ServingSchema(
        (ServingField("question", "string"), ServingField("context", "string", doc="the passage to answer from")),
        output="the answer text, cut from the context (the answer endpoint adds offsets and a score)")
    endpoint = "answer"
    declared_formats = {"squad": ((), ())}
    default_metric = "squad_em_f1"

    def read_declared(self, fmt: str, path, lang: str, *, fields: Mapping[str, Any], labels, label_map,
                      options: Mapping[str, Any]) -> list[Any]:
        from xstilts.data.readers import read_squad_json

        return read_squad_json(path, lang)
    export_outputs = {"start_logits": ("batch", "sequence"), "end_logits": ("batch", "sequence")}

    def filter_examples(self, examples: list[Any]) -> list[Any]:
        """Drop questions without an answer unless marked unanswerable: they would teach the CLS answer."""
        return [ex for ex in examples if ex.answers or ex.is_impossible]

    def featurizer(self, task, tokenizer, *, max_length: int, doc_stride: int):
        from xstilts.data.featurize.span_qa import SpanQAFeaturizer

        # The stride must leave room for the question inside a window.
        return SpanQAFeaturizer(tokenizer, max_length=max_length, doc_stride=min(doc_stride, max_length // 2))

    def collate(self, features: Sequence[Any], pad_id: int) -> dict:
        from xstilts.data.featurize.span_qa import collate

        return collate(features, pad_id=pad_id)

    def build_head(self, num_labels: int, config):
        from xstilts.models.heads import SpanHead

        return SpanHead(config.hidden_size)

    def forward(self, model, head, batch: Mapping[str, Any]):
        import torch
        from torch.nn import functional as F

        from xstilts.models.heads import TaskOutput

        mask = batch["attention_mask"]
        start, end = head(model.encode(batch["input_ids"], mask))
        start = start.masked_fill(mask == 0, torch.finfo(start.dtype).min)
        end = end.masked_fill(mask == 0, torch.finfo(end.dtype).min)
        loss = None
        if "start_positions" in batch:
            loss = (F.cross_entropy(start.float(), batch["start_positions"])
                    + F.cross_entropy(end.float(), batch["end_positions"])) / 2
        return TaskOutput(loss, (start, end))

    def decode(self, data, outputs: Iterable[tuple[list[int], list[int], Any]]) -> dict[str, str]:
        return {guid: span.text for guid, span in self.decode_spans(data, outputs).items()}

    def decode_spans(self, data, outputs: Iterable[tuple[list[int], list[int], Any]]) -> dict[str, Any]:
        """``{guid: AnswerSpan}``: the answer with its character offsets and score (serving)."""
        from xstilts.data.featurize.span_qa import answer_spans

        feats = data.features.features
        starts: list[Any] = [None] * len(feats)
        ends: list[Any] = [None] * len(feats)
        for _units, rows, res in outputs:
            s, e = (x.float().numpy() for x in res.logits)
            for k, r in enumerate(rows):
                n = len(feats[r].input_ids)
                starts[r], ends[r] = s[k, :n], e[k, :n]
        return answer_spans(starts, ends, feats, data.examples,
                            allow_impossible=any(ex.is_impossible for ex in data.examples))

    def gold(self, task, examples: Sequence[Any]) -> Any:
        from xstilts.evaluation.metrics.squad import references_from_examples

        return references_from_examples(examples)

    def require_gold(self, task, lang: str, split: str, data: Any) -> None:
        from xstilts.evaluation.gold_check import refuse

        if not data:
            raise refuse(task, lang, split, "the split is empty")
        missing = sum(not ex.answers and not ex.is_impossible for ex in data)
        if missing:
            raise refuse(task, lang, split, f"{missing} of {len(data)} questions have no gold answer "
                                            "(the file ships without answers)")

    def write_predictions(self, pred_dir: Path, task, split: str, lang: str, predictions: Any) -> Path:
        from xstilts.evaluation import predictions as files

        return files.write_answer_predictions(pred_dir, task.name, split, lang, predictions)

    def examples_from_rows(self, task, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        from xstilts.data.examples import SpanQAExample

        return [SpanQAExample(str(i), "serve", str(r["question"]), str(r["context"]), ())
                for i, r in enumerate(rows)]

    def response(self, predictions: Any, examples: Sequence[Any]) -> list[Any]:
        return [predictions[ex.guid] for ex in examples]

    def rows_from_sentences(self, sentences: Sequence[str]) -> list[dict[str, Any]]:
        """Each sentence asks about a context of the next three."""
        n = len(sentences)
        return [{"question": s, "context": " ".join(sentences[(i + k) % n] for k in (1, 2, 3))}
                for i, s in enumerate(sentences)]

    def check_served_rows(self, task, tokenizer, rows: Sequence[Mapping[str, Any]], *, max_length: int,
                          doc_stride: int) -> None:
        """Also refuse a question too long for its window: the tokenizer cannot window the context
        beside it (it panics: the stride must be shorter than what the question leaves)."""
        super().check_served_rows(task, tokenizer, rows, max_length=max_length, doc_stride=doc_stride)
        stride = min(doc_stride, max_length // 2)  # as the featurizer
        room = max_length - tokenizer.num_special_tokens_to_add(pair=True) - stride - 1
        questions = tokenizer([str(r["question"]).lstrip() for r in rows], add_special_tokens=False)["input_ids"]
        for i, ids in enumerate(questions):
            if len(ids) > room:
                raise XstiltsError(f"serving row {i}: the question is {len(ids)} tokens long; this model's "
                                   f"{max_length}-token windows (stride {stride}) leave room for at most {room}")

    def answers(self, task, model, tokenizer, rows: Sequence[Mapping[str, Any]], *, head: str | None,
                max_length: int, doc_stride: int, batch_size: int = 32) -> list[Any]:
        """:class:`~xstilts.data.featurize.span_qa.AnswerSpan` per row, decoded as evaluation decodes."""
        from xstilts.evaluation.predict import predict

        data = self.served_data(task, tokenizer, rows, max_length=max_length, doc_stride=doc_stride)
        if not data.examples:
            return []
        spans = predict(model, head, data, batch_size=batch_size, decode=self.decode_spans)
        return [spans[ex.guid] for ex in data.examples]

    def serve(self, task, model, tokenizer, rows: Sequence[Mapping[str, Any]], *, head: str | None,
              max_length: int, doc_stride: int, batch_size: int = 32, base_model: str = "") -> list[Any]:
        """The answer text per row (MLflow's plain outputs)."""
        return [a.text for a in self.answers(task, model, tokenizer, rows, head=head, max_length=max_length,
                                             doc_stride=doc_stride, batch_size=batch_size)]

    def serve_exported_described(self, task, model, tokenizer, rows: Sequence[Mapping[str, Any]], *,
                                 max_length: int, doc_stride: int, batch_size: int = 32) -> list[dict[str, Any]]:
        """``{answer, start, end, score}`` per row: character offsets in the context from the tokenizer's
        offset mapping, score the span's probability in its window (``answer_spans``)."""
        return [a.to_dict() for a in self.answers(task, model, tokenizer, rows, head=model.head,
                                                  max_length=max_length, doc_stride=doc_stride,
                                                  batch_size=batch_size)]


SPAN_QA = SpanQA()
