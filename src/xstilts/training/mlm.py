"""Masked-LM text for the "+MLM" intermediate condition (Phang et al. 2020).

Masking is static: decided once per sentence from the run's seed (BERT's
original recipe), so an interrupted run resumes onto identical batches.
Of the chosen positions 80 % become ``<mask>``, 10 % a random token, 10 % stay.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from xstilts.data.featurize.base import IGNORE_INDEX, attention_mask, pad_rows


@dataclass(frozen=True, eq=False)
class MLMFeature:
    input_ids: np.ndarray
    labels: np.ndarray


def mask_sentences(sentences: Sequence[str], tokenizer, *, max_length: int, probability: float,
                   seed: int) -> list[MLMFeature]:
    rng = np.random.default_rng([seed, 7])
    special = set(tokenizer.all_special_ids)
    vocab = len(tokenizer)
    out = []
    for ids in tokenizer(list(sentences), truncation=True, max_length=max_length)["input_ids"]:
        ids = np.asarray(ids, dtype=np.int32)
        candidates = np.array([i for i, t in enumerate(ids) if int(t) not in special])
        if len(candidates) == 0:
            continue
        n = max(1, int(round(probability * len(candidates))))  # at least one target per sentence
        chosen = rng.choice(candidates, size=n, replace=False)
        labels = np.full_like(ids, IGNORE_INDEX)
        labels[chosen] = ids[chosen]
        masked = ids.copy()
        roll = rng.random(n)
        masked[chosen[roll < 0.8]] = tokenizer.mask_token_id
        rand = chosen[(roll >= 0.8) & (roll < 0.9)]
        masked[rand] = rng.integers(3, vocab, size=len(rand))
        out.append(MLMFeature(masked, labels))
    return out


def collate_mlm(features: Sequence[MLMFeature], pad_id: int) -> dict[str, torch.Tensor]:
    lengths = [len(f.input_ids) for f in features]
    length = max(lengths)
    return {"input_ids": pad_rows([f.input_ids for f in features], pad_id, length),
            "attention_mask": attention_mask(lengths, length),
            "labels": pad_rows([f.labels for f in features], IGNORE_INDEX, length)}
