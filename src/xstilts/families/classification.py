"""Sentence(-pair) classification (XNLI, PAWS-X, MNLI, ANLI, QQP, SST-2)."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from xstilts.families.base import ServingField, ServingSchema, TaskFamily


class SentenceClassification(TaskFamily):
    """First token -> label; one label per example, one line per example in the prediction file."""

    name = "sentence_classification"
    serving = ServingSchema(
        (ServingField("text", "string", doc="the sentence (the premise of a pair)"),
         ServingField("text_pair", "string", required=False, doc="the second sentence of a pair")),
        output="the predicted label string")
    endpoint = "classify"
    declared_formats = {fmt: (("text_a",), ("text_b", "label", "guid")) for fmt in ("tsv", "csv", "jsonl")} | {
        "text": ((), ())}  # one sentence per line: unlabelled masked-LM text
    default_metric = "accuracy"

    def read_declared(self, fmt: str, path, lang: str, *, fields: Mapping[str, Any], labels, label_map,
                      options: Mapping[str, Any]) -> list[Any]:
        from xstilts.data.readers import mapped

        if fmt == "text":
            return mapped.read_text_lines(path, lang)
        if fmt == "jsonl":
            return mapped.read_mapped_jsonl(path, lang, fields=fields, labels=labels, label_map=label_map)
        reader = mapped.read_mapped_tsv if fmt == "tsv" else mapped.read_mapped_csv
        return reader(path, lang, fields=fields, header=bool(options.get("header", True)), labels=labels,
                      label_map=label_map)

    def featurizer(self, task, tokenizer, *, max_length: int, doc_stride: int):
        from xstilts.data.featurize.classification import ClassificationFeaturizer

        return ClassificationFeaturizer(tokenizer, list(task.labels), max_length=max_length)

    def collate(self, features: Sequence[Any], pad_id: int) -> dict:
        from xstilts.data.featurize.classification import collate

        return collate(features, pad_id=pad_id)

    def build_head(self, num_labels: int, config):
        from xstilts.models.heads import ClassificationHead

        return ClassificationHead(config.hidden_size, num_labels, getattr(config, "hidden_dropout_prob", 0.1))

    def forward(self, model, head, batch: Mapping[str, Any]):
        from xstilts.models.heads import TaskOutput, cross_entropy

        logits = head(model.encode(batch["input_ids"], batch["attention_mask"]))
        return TaskOutput(cross_entropy(logits, batch.get("labels")), logits)

    def decode(self, data, outputs: Iterable[tuple[list[int], list[int], Any]]) -> list[str]:
        import numpy as np

        feats = data.features.features
        out = np.zeros(len(data.examples), dtype=np.int64)
        for _units, rows, res in outputs:
            for r, p in zip(rows, res.logits.float().argmax(-1).numpy()):
                out[feats[r].example_index] = p
        labels = data.task.labels
        return [labels[i] for i in out]

    def gold(self, task, examples: Sequence[Any]) -> list[Any]:
        return [ex.label for ex in examples]

    def require_gold(self, task, lang: str, split: str, data: Any) -> None:
        from xstilts.evaluation.gold_check import require_labels

        require_labels(task, lang, split, data)

    def examples_from_rows(self, task, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        from xstilts.data.examples import SentenceExample

        return [SentenceExample(str(i), "serve", str(r["text"]),
                                None if r.get("text_pair") in (None, "") else str(r["text_pair"]), None)
                for i, r in enumerate(rows)]

    def rows_from_sentences(self, sentences: Sequence[str]) -> list[dict[str, Any]]:
        """Each sentence paired with the next (pairs exercise the separator tokens)."""
        return [{"text": s, "text_pair": sentences[(i + 1) % len(sentences)]} for i, s in enumerate(sentences)]


SENTENCE_CLASSIFICATION = SentenceClassification()
