"""bf16 weights with fp32 master copies: what the optimizer sees and what the model ends as."""
from __future__ import annotations

import torch
from torch import nn

from xstilts.config import TrainingArgs
from xstilts.training.loop import make_optimizer
from xstilts.training.master_weights import Bf16MasterWeights


def _model() -> nn.Module:
    torch.manual_seed(0)
    m = nn.Sequential(nn.Embedding(50, 16), nn.Linear(16, 16), nn.LayerNorm(16), nn.Linear(16, 3))
    m[0].weight.requires_grad_(False)  # frozen, like the word embeddings by default
    return m


def test_model_runs_in_bf16_and_comes_back_in_fp32_exactly():
    model = _model()
    frozen = model[0].weight.detach().clone()
    mw = Bf16MasterWeights(model)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert {m.dtype for m in mw.masters} == {torch.float32}
    # masters start as the exact fp32 weights, not their bf16 rounding
    assert torch.equal(mw.state()["1.weight"], _model()[1].weight.detach())
    with torch.no_grad():
        mw.masters[0].add_(1e-3)
    mw.masters_to_model()
    mw.restore_fp32()
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    assert torch.equal(model[0].weight, frozen)  # frozen fp32 values untouched by the bf16 round trip
    assert torch.equal(model[1].weight, _model()[1].weight.detach() + 1e-3)  # trainable = the masters


def test_updates_below_bf16_resolution_accumulate_in_the_masters():
    model = _model()
    mw = Bf16MasterWeights(model)
    before = mw.state()["3.bias"].clone()
    opt = torch.optim.SGD([m for n, m in mw.named_masters()], lr=1.0)
    for _ in range(100):
        x = model[3](torch.ones(1, 16, dtype=torch.bfloat16))
        x.float().sum().backward()
        mw.grads_to_masters()
        assert all(p.grad is None for p in model.parameters())  # gradients moved to the masters
        for m in mw.masters:
            if m.grad is not None:
                m.grad.mul_(1e-5)  # each step moves a weight by 1e-5, far below bf16's 2^-8 relative step
        opt.step()
        opt.zero_grad(set_to_none=True)
        mw.masters_to_model()
    moved = before - mw.state()["3.bias"]
    assert torch.allclose(moved, torch.full_like(moved, 1e-3), rtol=1e-3)
    mw.restore_fp32()
    assert torch.allclose(model[3].bias, before - 1e-3, atol=1e-6)


def test_optimizer_groups_use_the_masters_names():
    model = _model()
    mw = Bf16MasterWeights(model)
    opt = make_optimizer(mw.named_masters(), TrainingArgs(weight_decay=0.1))
    decay, no_decay = opt.param_groups
    ids = {id(m): n for n, m in mw.named_masters()}
    assert sorted(ids[id(p)] for p in decay["params"]) == ["1.weight", "3.weight"]
    assert sorted(ids[id(p)] for p in no_decay["params"]) == ["1.bias", "2.bias", "2.weight", "3.bias"]
    assert all(p.dtype == torch.float32 for g in opt.param_groups for p in g["params"])


def test_bf16_mode_is_validated():
    import pytest

    from xstilts.config import PhaseConfig, TaskData
    from xstilts.errors import XstiltsError

    cfg = PhaseConfig(phase="target", tasks=[TaskData(task="panx")], training=TrainingArgs(bf16_mode="fp8"))
    with pytest.raises(XstiltsError, match="training.bf16_mode"):
        cfg.validate()
