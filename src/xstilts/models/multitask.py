"""``XstiltsModel``: one encoder, one head per task (an intermediate mixture has several)."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from xstilts.families import head_family
from xstilts.models.heads import TaskOutput, build_head, init_head

__all__ = ["HeadSpec", "TaskOutput", "XstiltsModel"]


@dataclass(frozen=True)
class HeadSpec:
    task: str
    family: str  # a family's name (xstilts.families.head_family maps it back)
    num_labels: int = 0  # classes (classification, tagging); unused for span QA, MC and MLM

    def to_dict(self) -> dict:
        return asdict(self)


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
        """Loss (where the batch has labels) and logits of ``task``'s head, as its family computes them."""
        return head_family(self.head_specs[task].family).forward(self, self.heads[task], batch)
