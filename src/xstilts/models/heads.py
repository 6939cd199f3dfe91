"""The head modules, on top of the shared encoder's hidden states; each family
(:mod:`xstilts.families`) builds its own and computes its loss and logits.

Heads follow the Hugging Face XLM-R task models (``*ForSequenceClassification``,
``*ForTokenClassification``, ``*ForQuestionAnswering``, ``*ForMultipleChoice``,
``*ForMaskedLM``) so that results are comparable with the field's baselines; the
multiple-choice head scores the first token through a dense+tanh layer because the
converted default encoder has no pooler.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

IGNORE_INDEX = -100


@dataclass
class TaskOutput:
    loss: torch.Tensor | None
    logits: torch.Tensor | tuple[torch.Tensor, torch.Tensor]


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor | None:
    """Mean cross-entropy in fp32 over the labelled positions; None without labels."""
    if labels is None:
        return None
    return F.cross_entropy(logits.float(), labels, ignore_index=IGNORE_INDEX)


class ClassificationHead(nn.Module):
    """First token -> dense -> tanh -> dropout -> labels (RobertaClassificationHead)."""

    def __init__(self, hidden: int, num_labels: int, dropout: float) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.dropout = nn.Dropout(dropout)
        self.out_proj = nn.Linear(hidden, num_labels)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        x = self.dropout(hidden_states[:, 0])
        x = torch.tanh(self.dense(x))
        return self.out_proj(self.dropout(x))


class TaggingHead(nn.Module):
    def __init__(self, hidden: int, num_labels: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden, num_labels)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(hidden_states))


class SpanHead(nn.Module):
    def __init__(self, hidden: int) -> None:
        super().__init__()
        self.qa_outputs = nn.Linear(hidden, 2)

    def forward(self, hidden_states: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        start, end = self.qa_outputs(hidden_states).split(1, dim=-1)
        return start.squeeze(-1), end.squeeze(-1)


class MLMHead(nn.Module):
    """dense -> gelu -> LayerNorm -> decoder tied to the word embeddings (XLMRobertaLMHead)."""

    def __init__(self, hidden: int, vocab: int, eps: float) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden, hidden)
        self.layer_norm = nn.LayerNorm(hidden, eps=eps)
        self.bias = nn.Parameter(torch.zeros(vocab))

    def forward(self, hidden_states: torch.Tensor, word_embeddings: torch.Tensor) -> torch.Tensor:
        x = self.layer_norm(F.gelu(self.dense(hidden_states)))
        return F.linear(x, word_embeddings, self.bias)


def build_head(family: str, num_labels: int, config) -> nn.Module:
    """A fresh head of the family recorded as ``family`` (a ``HeadSpec.family`` name)."""
    from xstilts.families import head_family

    return head_family(family).build_head(num_labels, config)


def init_head(head: nn.Module, std: float) -> None:
    """BERT initialisation (normal(0, 0.02) weights, zero biases, unit LayerNorm)."""
    for m in head.modules():
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, std=std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
