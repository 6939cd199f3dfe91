"""``XstiltsModel``: one encoder, one head per task (an intermediate mixture has several)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn
from torch.nn import functional as F

from xstilts.models.heads import IGNORE_INDEX, build_head, init_head


@dataclass(frozen=True)
class HeadSpec:
    task: str
    family: str
    num_labels: int = 0  # classes (classification, tagging); unused for span QA, MC and MLM

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TaskOutput:
    loss: torch.Tensor | None
    logits: torch.Tensor | tuple[torch.Tensor, torch.Tensor]


class XstiltsModel(nn.Module):
    def __init__(self, encoder: nn.Module, heads: list[HeadSpec], *, seed: int = 0) -> None:
        super().__init__()
        self.encoder = encoder
        self.head_specs = {h.task: h for h in heads}
        self.heads = nn.ModuleDict()
        for spec in heads:
            self.add_head(spec, seed=seed)

    @property
    def config(self):
        return self.encoder.config

    def add_head(self, spec: HeadSpec, *, seed: int = 0) -> None:
        """A freshly initialised head; seeded on its own so that the head's start
        does not depend on how many random numbers the encoder load consumed."""
        generator_state = torch.random.get_rng_state()
        torch.manual_seed(seed)
        head = build_head(spec.family, spec.num_labels, self.config)
        init_head(head, getattr(self.config, "initializer_range", 0.02))
        torch.random.set_rng_state(generator_state)
        self.head_specs[spec.task] = spec
        self.heads[spec.task] = head

    def drop_heads(self) -> None:
        """Keep only the encoder (what moves from the intermediate to the target phase)."""
        self.heads = nn.ModuleDict()
        self.head_specs = {}

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def forward(self, task: str, batch: dict[str, torch.Tensor]) -> TaskOutput:
        spec = self.head_specs[task]
        head = self.heads[task]
        ids, mask = batch["input_ids"], batch["attention_mask"]
        if spec.family == "multiple_choice":
            b, c, length = ids.shape
            hidden = self.encode(ids.view(b * c, length), mask.view(b * c, length))
            logits = head(hidden).view(b, c)
            return TaskOutput(_ce(logits, batch.get("labels")), logits)
        hidden = self.encode(ids, mask)
        if spec.family == "sentence_classification":
            logits = head(hidden)
            return TaskOutput(_ce(logits, batch.get("labels")), logits)
        if spec.family == "tagging":
            logits = head(hidden)
            labels = batch.get("labels")
            loss = None if labels is None else _ce(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1))
            return TaskOutput(loss, logits)
        if spec.family == "span_qa":
            start, end = head(hidden)
            start = start.masked_fill(mask == 0, torch.finfo(start.dtype).min)
            end = end.masked_fill(mask == 0, torch.finfo(end.dtype).min)
            loss = None
            if "start_positions" in batch:
                loss = (F.cross_entropy(start.float(), batch["start_positions"])
                        + F.cross_entropy(end.float(), batch["end_positions"])) / 2
            return TaskOutput(loss, (start, end))
        if spec.family == "mlm":
            labels = batch.get("labels")
            if labels is not None:
                # Score only the masked positions: the vocabulary projection is the
                # most expensive matmul here and the others carry no loss.
                keep = labels != IGNORE_INDEX
                logits = head(hidden[keep], self.encoder.embeddings.word_embeddings.weight)
                return TaskOutput(F.cross_entropy(logits.float(), labels[keep]), logits)
            logits = head(hidden, self.encoder.embeddings.word_embeddings.weight)
            return TaskOutput(None, logits)
        raise ValueError(f"task {task}: unknown family {spec.family}")


def _ce(logits: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor | None:
    if labels is None:
        return None
    return F.cross_entropy(logits.float(), labels, ignore_index=IGNORE_INDEX)
