"""Length-grouped batches, checked against HF's get_length_grouped_indices."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from transformers.trainer_pt_utils import get_length_grouped_indices

from xstilts.data.featurize import feature_lengths, featurize_classification, length_grouped_batches
from xstilts.data.loading import load_examples
from xstilts.tasks import get_task


@pytest.fixture(scope="module")
def xnli_lengths(xlmr_tokenizer):
    examples = load_examples("xnli", "en", "dev", max_examples=600)
    return feature_lengths(featurize_classification(examples, xlmr_tokenizer, get_task("xnli").labels))


@pytest.mark.parametrize("batch_size", [8, 32])
def test_same_order_as_hf_for_the_same_permutation(xnli_lengths, batch_size, monkeypatch):
    seed = 3
    perm = np.random.default_rng(seed).permutation(len(xnli_lengths))
    monkeypatch.setattr(torch, "randperm", lambda n, generator=None: torch.from_numpy(perm))
    reference = get_length_grouped_indices(xnli_lengths.tolist(), batch_size)
    hf_mult = max(1, min(len(xnli_lengths) // (batch_size * 4), 50))
    batches = length_grouped_batches(xnli_lengths, batch_size, seed, mega_batch_mult=hf_mult)
    assert [i for b in batches for i in b] == reference
    assert all(len(b) == batch_size for b in batches[:-1])


def test_permutation_determinism_and_less_padding(xnli_lengths):
    batches = length_grouped_batches(xnli_lengths, 16, seed=0)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(xnli_lengths)))
    assert batches == length_grouped_batches(xnli_lengths, 16, seed=0)
    assert batches != length_grouped_batches(xnli_lengths, 16, seed=1)
    assert max(xnli_lengths[batches[0]]) == max(xnli_lengths)  # longest batch first

    def padded_tokens(bs):
        return sum(len(b) * max(xnli_lengths[b]) for b in bs)

    random_order = np.random.default_rng(0).permutation(len(xnli_lengths))
    random_batches = [random_order[i:i + 16] for i in range(0, len(random_order), 16)]
    assert padded_tokens(batches) < 0.85 * padded_tokens(random_batches)


def test_small_sets_pad_less_than_hf_mega_batches(xnli_lengths):
    """A set under 50 batches is one mega-batch: fewer padded slots than HF's quarter-set mega-batches."""

    def padded_tokens(bs):
        return sum(len(b) * max(xnli_lengths[b]) for b in bs)

    for seed in range(3):
        ours = length_grouped_batches(xnli_lengths, 32, seed)
        hf_mult = max(1, min(len(xnli_lengths) // (32 * 4), 50))
        hf_like = length_grouped_batches(xnli_lengths, 32, seed, mega_batch_mult=hf_mult)
        assert padded_tokens(ours) < 0.95 * padded_tokens(hf_like)
        assert len({len(b) for b in ours[:-1]}) == 1 and sorted(i for b in ours for i in b) == list(
            range(len(xnli_lengths)))


def test_evaluation_order_is_sorted_longest_first(xnli_lengths):
    batches = length_grouped_batches(xnli_lengths, 50, seed=0, shuffle=False)
    flat = [i for b in batches for i in b]
    assert sorted(flat) == list(range(len(xnli_lengths)))
    assert list(xnli_lengths[flat]) == sorted(xnli_lengths, reverse=True)
    assert length_grouped_batches([], 4, seed=0) == []
    with pytest.raises(ValueError):
        length_grouped_batches(xnli_lengths, 0, seed=0)
