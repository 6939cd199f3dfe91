"""The SFC64-masked dropout: right keep rate, inverted scaling, seeded, and swapped only where it should be."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

from xstilts.models.fast_dropout import FastDropout, dropout, keep_mask, use_fast_dropout


@pytest.mark.parametrize("p", [0.1, 0.5])
def test_keep_rate_and_independence(p):
    torch.manual_seed(0)
    keep = keep_mask((1000, 1000), p)
    # 1e6 Bernoulli draws: the keep rate's standard error is below 5e-4.
    assert abs(keep.mean() - (1 - p)) < 0.002
    flat = keep.ravel().astype(float)
    assert abs(np.corrcoef(flat[:-1], flat[1:])[0, 1]) < 0.01  # neighbours independent
    assert abs(np.corrcoef(keep[:, 0], keep[:, 1])[0, 1]) < 0.1


def test_masks_follow_torch_seed():
    torch.manual_seed(3)
    a = keep_mask((64, 384), 0.1)
    b = keep_mask((64, 384), 0.1)
    torch.manual_seed(3)
    assert np.array_equal(a, keep_mask((64, 384), 0.1))
    assert not np.array_equal(a, b)  # each call draws a new seed


def test_inverted_scaling_and_gradient():
    torch.manual_seed(1)
    x = torch.randn(200, 384, dtype=torch.bfloat16, requires_grad=True)
    y = dropout(x, 0.1, training=True)
    kept = y != 0
    assert 0.85 < kept.float().mean().item() < 0.95
    torch.testing.assert_close(y[kept], (x[kept].float() / 0.9).bfloat16(), rtol=1e-2, atol=1e-2)
    y.float().sum().backward()
    expected = torch.where(kept, torch.tensor(1 / 0.9), torch.tensor(0.0)).bfloat16()
    torch.testing.assert_close(x.grad, expected, rtol=1e-2, atol=0)
    assert dropout(x, 0.1, training=False) is x
    assert dropout(x, 0.0, training=True) is x
    assert (dropout(x, 1.0, training=True) == 0).all()


def test_swaps_hidden_dropouts_only_and_keeps_outputs(encoder_2layer):
    model = copy.deepcopy(encoder_2layer)
    keys = set(model.state_dict())
    model.eval()
    ids = torch.tensor([[0, 581, 10323, 111, 2]])
    before = model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
    n_layers = model.config.num_hidden_layers
    swapped = use_fast_dropout(model)
    assert swapped == 1 + 2 * n_layers  # embeddings, then attention output and FFN output per layer
    for name, module in model.named_modules():
        if name.endswith("attention.self.dropout"):
            assert type(module) is nn.Dropout  # its p goes to the attention kernel
        elif isinstance(module, nn.Dropout):
            assert isinstance(module, FastDropout) and module.p == pytest.approx(0.1)
    assert set(model.state_dict()) == keys
    after = model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
    torch.testing.assert_close(after, before)
    model.train()
    torch.manual_seed(0)
    t1 = model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
    torch.manual_seed(0)
    t2 = model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
    torch.testing.assert_close(t1, t2)
    assert not torch.allclose(t1, after)


def test_attention_dropout_uses_fast_masks_and_matches_sdpa_without_dropout(encoder_2layer, monkeypatch):
    model = copy.deepcopy(encoder_2layer)
    ids = torch.tensor([[0, 581, 10323, 111, 2], [0, 4, 2, 1, 1]])
    mask = (ids != 1).long()
    model.eval()
    before = model(input_ids=ids, attention_mask=mask).last_hidden_state
    use_fast_dropout(model)
    assert model.config._attn_implementation == "xstilts_sdpa"
    torch.testing.assert_close(model(input_ids=ids, attention_mask=mask).last_hidden_state, before)
    # Training, hidden dropouts off, attention dropout on but its masks keeping everything: the explicit
    # attention path gives sdpa's numbers (padding masked the same way).
    model.train()
    for name, m in model.named_modules():
        if isinstance(m, nn.Dropout):
            m.p = 0.1 if name.endswith("attention.self.dropout") else 0.0
    import xstilts.models.fast_dropout as fd

    with monkeypatch.context() as patch:
        patch.setattr(fd, "dropout_fn", lambda x, p, training: x)
        no_drop = model(input_ids=ids, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(no_drop[mask.bool()], before[mask.bool()], rtol=1e-4, atol=1e-4)
    # With its masks: they follow torch's seed, and the output changes.
    torch.manual_seed(0)
    a = model(input_ids=ids, attention_mask=mask).last_hidden_state
    torch.manual_seed(0)
    torch.testing.assert_close(model(input_ids=ids, attention_mask=mask).last_hidden_state, a)
    assert not torch.allclose(a[mask.bool()], before[mask.bool()], atol=1e-3)
