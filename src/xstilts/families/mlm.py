"""Masked language modelling: the auxiliary head of the ``en+mlm`` intermediate condition.

Internal: no task declares it and it is never evaluated; it exists so that
:class:`~xstilts.models.multitask.XstiltsModel` builds and runs its head the same
way as every other family's.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from xstilts.families.base import ServingSchema, TaskFamily


class MaskedLM(TaskFamily):
    name = "mlm"
    serving = ServingSchema((), output="not served")

    def build_head(self, num_labels: int, config):
        from xstilts.models.heads import MLMHead

        return MLMHead(config.hidden_size, config.vocab_size, config.layer_norm_eps)

    def forward(self, model, head, batch: Mapping[str, Any]):
        from torch.nn import functional as F

        from xstilts.models.heads import IGNORE_INDEX, TaskOutput

        hidden = model.encode(batch["input_ids"], batch["attention_mask"])
        embeddings = model.encoder.embeddings.word_embeddings.weight
        labels = batch.get("labels")
        if labels is not None:
            # Score only the masked positions: the vocabulary projection is the
            # most expensive matmul here and the others carry no loss.
            keep = labels != IGNORE_INDEX
            logits = head(hidden[keep], embeddings)
            return TaskOutput(F.cross_entropy(logits.float(), labels[keep]), logits)
        return TaskOutput(None, head(hidden, embeddings))


MASKED_LM = MaskedLM()
