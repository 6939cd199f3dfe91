"""bf16 weights for the forward and backward pass, fp32 master copies for the update.

Why: under ``torch.autocast`` every linear layer casts its fp32 weight and its
input to bf16 on each forward pass, layer norm and softmax run in fp32, and the
backward pass casts the gradients back (about 16 % of a training step in a
``torch.profiler`` run, PAN-X, batch 32). With the model itself in bf16 the
activations stay bf16; what remains are two weight-sized copies per step
(gradients to the masters, masters back to the model). Measured net effect on
the xstilts path: +7 % examples/s on PAN-X, none on XNLI (5- and 3-round A/B,
dev scores within 0.8 point), so ``training.bf16_mode: autocast`` stays available. The
optimizer works on fp32 copies, so updates far smaller than a bf16 weight's
resolution (2^-8 of its magnitude) are not lost; losses are computed in fp32
(the heads call ``.float()`` on the logits).

Frozen parameters (the word embeddings by default) get no master copy; their
fp32 values are kept aside untouched and put back by :meth:`restore_fp32`, so a
model leaves training in fp32 with exactly its master weights.
"""
from __future__ import annotations

import torch


class Bf16MasterWeights:
    """Casts ``model`` to bf16 in place and keeps fp32 masters of its trainable parameters.

    Use: build the optimizer over :attr:`masters` (same order as the trainable
    parameters, see :meth:`named_masters`), then per step ``backward()`` on the
    bf16 model, :meth:`grads_to_masters`, clip and step the optimizer on the
    masters, :meth:`masters_to_model`. :meth:`restore_fp32` ends it.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self._trainable: list[tuple[str, torch.nn.Parameter]] = [
            (n, p) for n, p in model.named_parameters() if p.requires_grad]
        self.masters: list[torch.Tensor] = [p.detach().clone().float().requires_grad_(True)
                                            for _, p in self._trainable]
        # fp32 storage of everything else that gets cast, given back untouched at the end
        self._frozen: list[tuple[torch.Tensor, torch.Tensor]] = []
        for p in model.parameters():
            if not p.requires_grad and p.is_floating_point():
                self._frozen.append((p, p.data))
        for b in model.buffers():
            if b.is_floating_point():
                self._frozen.append((b, b.data))
        with torch.no_grad():
            for t in [p for p in model.parameters()] + [b for b in model.buffers()]:
                if t.is_floating_point() and t.dtype != torch.bfloat16:
                    t.data = t.data.to(torch.bfloat16)

    def named_masters(self) -> list[tuple[str, torch.Tensor]]:
        return [(n, m) for (n, _), m in zip(self._trainable, self.masters)]

    def grads_to_masters(self) -> None:
        """fp32 copies of the bf16 gradients onto the masters; the model's gradients are dropped."""
        for (_, p), m in zip(self._trainable, self.masters):
            if p.grad is None:
                m.grad = None
                continue
            m.grad = p.grad.float()
            p.grad = None

    @torch.no_grad()
    def masters_to_model(self) -> None:
        torch._foreach_copy_([p.data for _, p in self._trainable], self.masters)

    def state(self) -> dict[str, torch.Tensor]:
        """The trainable weights in fp32, by parameter name (what checkpoints store)."""
        return {n: m.detach().clone() for n, m in self.named_masters()}

    @torch.no_grad()
    def restore_fp32(self) -> None:
        """The model back in fp32: trainable parameters from the masters, the rest as they were."""
        for (_, p), m in zip(self._trainable, self.masters):
            p.data = m.detach().clone()
            p.grad = None
        for t, original in self._frozen:
            t.data = original
