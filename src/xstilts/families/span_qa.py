"""Extractive QA (SQuAD, XQuAD, MLQA, TyDiQA-GoldP): 384-token windows, answer spans cut from the context."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from xstilts.families.base import ServingField, ServingSchema, TaskFamily


class SpanQA(TaskFamily):
    """Start/end logits per window; predictions are ``{question id: answer text}``."""

    name = "span_qa"
    max_length = 384   # XTREME's run_squad.py windows
    doc_stride = 128
    serving = ServingSchema(
        (ServingField("question", "string"), ServingField("context", "string", doc="the passage to answer from")),
        output="the answer text, cut from the context")
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
        from xstilts.data.featurize.span_qa import best_spans

        feats = data.features.features
        starts: list[Any] = [None] * len(feats)
        ends: list[Any] = [None] * len(feats)
        for _units, rows, res in outputs:
            s, e = (x.float().numpy() for x in res.logits)
            for k, r in enumerate(rows):
                n = len(feats[r].input_ids)
                starts[r], ends[r] = s[k, :n], e[k, :n]
        return best_spans(starts, ends, feats, data.examples,
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

    def describe(self, rows: Sequence[Mapping[str, Any]], responses: Sequence[Any]) -> list[dict[str, Any]]:
        """The answer and its character offsets in the context (the first occurrence of the text)."""
        out = []
        for row, answer in zip(rows, responses):
            start = str(row["context"]).find(answer) if answer else -1
            out.append({"answer": answer, "start": start if start >= 0 else None,
                        "end": start + len(answer) if start >= 0 else None})
        return out


SPAN_QA = SpanQA()
