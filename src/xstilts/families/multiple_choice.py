"""Multiple choice (HellaSwag, CommonsenseQA, CosmosQA): one row per choice, softmax over the choices."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from xstilts.families.base import ServingField, ServingSchema, TaskFamily


class MultipleChoice(TaskFamily):
    """Every choice of an example in one batch unit; the prediction is the choice index."""

    name = "multiple_choice"
    serving = ServingSchema(
        (ServingField("context", "string", required=False, doc="the passage (may be empty)"),
         ServingField("question", "string", doc="the question or the start of the sentence"),
         ServingField("choices", "list[string]", doc="at least two answers or endings")),
        output="the index of the predicted choice")
    endpoint = "choose"
    export_input_axes = ("batch", "choices", "sequence")
    export_outputs = {"logits": ("batch", "choices")}

    def featurizer(self, task, tokenizer, *, max_length: int, doc_stride: int):
        from xstilts.data.featurize.multiple_choice import MultipleChoiceFeaturizer

        return MultipleChoiceFeaturizer(tokenizer, max_length=max_length)

    def collate(self, features: Sequence[Any], pad_id: int) -> dict:
        from xstilts.data.featurize.multiple_choice import collate

        return collate(features, pad_id=pad_id)

    def units(self, features: Sequence[Any]) -> list[list[int]]:
        from xstilts.data.featurize.multiple_choice import rows_by_example

        return rows_by_example(features)

    def batch_group(self, unit: Sequence[int]) -> int:
        """A batch is ``[examples, choices, tokens]``: served rows with 2 and 4 choices go in two batches."""
        return len(unit)

    def build_head(self, num_labels: int, config):
        from xstilts.models.heads import ClassificationHead

        return ClassificationHead(config.hidden_size, 1, getattr(config, "hidden_dropout_prob", 0.1))

    def forward(self, model, head, batch: Mapping[str, Any]):
        from xstilts.models.heads import TaskOutput, cross_entropy

        ids, mask = batch["input_ids"], batch["attention_mask"]
        b, c, length = ids.shape
        hidden = model.encode(ids.view(b * c, length), mask.view(b * c, length))
        logits = head(hidden).view(b, c)
        return TaskOutput(cross_entropy(logits, batch.get("labels")), logits)

    def decode(self, data, outputs: Iterable[tuple[list[int], list[int], Any]]) -> list[int]:
        import numpy as np

        feats, units = data.features.features, data.features.units
        out = np.zeros(len(data.examples), dtype=np.int64)
        for batch_units, _rows, res in outputs:
            for u, p in zip(batch_units, res.logits.float().argmax(-1).numpy()):
                out[feats[units[u][0]].example_index] = p
        return out.tolist()

    def gold(self, task, examples: Sequence[Any]) -> list[Any]:
        return [ex.label for ex in examples]

    def require_gold(self, task, lang: str, split: str, data: Any) -> None:
        from xstilts.evaluation.gold_check import require_labels

        require_labels(task, lang, split, data)

    def examples_from_rows(self, task, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        from xstilts.data.examples import MultipleChoiceExample

        return [MultipleChoiceExample(str(i), "serve", str(r.get("context") or ""), str(r["question"]),
                                      tuple(str(c) for c in r["choices"]), None)
                for i, r in enumerate(rows)]

    def rows_from_sentences(self, sentences: Sequence[str]) -> list[dict[str, Any]]:
        n = len(sentences)
        return [{"question": s, "choices": [sentences[(i + 1) % n], sentences[(i + 2) % n]]}
                for i, s in enumerate(sentences)]

    def describe(self, rows: Sequence[Mapping[str, Any]], responses: Sequence[Any]) -> list[dict[str, Any]]:
        return [{"choice": int(r), "text": str(row["choices"][int(r)])} for row, r in zip(rows, responses)]


MULTIPLE_CHOICE = MultipleChoice()
