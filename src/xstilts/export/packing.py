"""Padding-free graphs: the exported encoder computes its token-wise layers on real tokens only.

A served batch pads its rows to the longest, and every padding token costs a full pass through
each layer's output projection, feed-forward and layer norms, though nothing reads its result.
While tracing, :func:`packed_tokens` makes the encoder keep its hidden states *packed*: the real
tokens of the whole batch in one ``[1, tokens, hidden]`` row, chosen by the attention mask.
Only self-attention needs the batch's ``[rows, length]`` layout: its input is unpacked (a
padding slot holds a copy of a real token's state, which the mask keeps out of every real
token's attention), the model's own attention module runs on it (Q/K/V projections included),
and its output is packed again. The encoder's output is unpacked with zeros at padding, so the
graph's inputs, outputs and heads are those of a padded graph.

Every packed op is token-wise, so each real token's numbers are the padded graph's (the export's
checks compare real tokens' logits with PyTorch); only padding positions of the output differ,
and nothing reads them. The int8 rewrite quantizes each token's row on its own, which packing
keeps true. With padding this cheap, the server lets rows of more different lengths share a
call (``PACKED_PAD_TOKENS`` in :mod:`xstilts.export.runtime`).

Applies to encoders with the BERT family's module layout (``encoder.layer[i].attention.self``:
BERT, RoBERTa, XLM-R); :func:`packable` says whether a module has it.
"""
from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn


class _Tokens:
    """Where a batch's real tokens are: set from the attention mask each time the encoder runs.

    Written for the few graph nodes it traces to (each node costs every call a fixed time): a pack
    is Reshape + Gather, an unpack Squeeze + Gather with a ``[rows, length]`` index. Inside the encoder
    an unpacked padding slot repeats the batch's first real token (any finite state serves: the
    mask keeps padding out of every real token's attention, and the next pack drops it); the
    encoder's output gets zeros there."""

    def __init__(self, hidden: int) -> None:
        self.hidden = hidden
        self.idx = self.slots = self.out_slots = None

    def set(self, mask: torch.Tensor) -> None:
        real = mask > 0
        flat = real.reshape(-1)
        self.idx = torch.nonzero(flat).reshape(-1)                        # real tokens, in batch order
        packed_row = torch.cumsum(flat.to(torch.int64), 0) - 1             # a real slot's row in the pack
        self.slots = torch.where(flat, packed_row, 0).view_as(mask)
        self.out_slots = torch.where(flat, packed_row, self.idx.shape[0]).view_as(mask)

    def pack(self, x: torch.Tensor) -> torch.Tensor:
        """``[rows, length, hidden]`` -> ``[1, real tokens, hidden]`` (3-D, so that a linear layer
        stays a MatMul in the graph, which the int8 rewrite quantizes, not a Gemm)."""
        return x.reshape(1, -1, self.hidden).index_select(1, self.idx)

    def unpack(self, x: torch.Tensor) -> torch.Tensor:
        """``[1, real tokens, hidden]`` -> ``[rows, length, hidden]`` (padding: the first real token)."""
        return x.squeeze(0)[self.slots]

    def unpack_output(self, x: torch.Tensor) -> torch.Tensor:
        """``[1, real tokens, hidden]`` -> ``[rows, length, hidden]`` with zeros at padding."""
        return torch.cat([x.squeeze(0), x.new_zeros(1, self.hidden)])[self.out_slots]


class _PackedSelfAttention(nn.Module):
    """Self-attention over packed states: unpack, attend as the original module does, pack."""

    def __init__(self, inner: nn.Module, tokens: _Tokens) -> None:
        super().__init__()
        self.inner = inner
        self.tokens = tokens

    def forward(self, hidden_states, *args, **kwargs):
        out = self.inner(self.tokens.unpack(hidden_states), *args, **kwargs)
        return (self.tokens.pack(out[0]), *out[1:])


def _stack(encoder: nn.Module):
    """The layer stack (``encoder.encoder``) of a BERT-family encoder, or None."""
    stack = getattr(encoder, "encoder", None)
    layers = getattr(stack, "layer", None)
    if not isinstance(layers, nn.ModuleList) or not len(layers):
        return None
    if any(not hasattr(getattr(layer, "attention", None), "self") for layer in layers):
        return None
    if getattr(getattr(encoder, "config", None), "is_decoder", False):
        return None
    return stack


def packable(encoder: nn.Module) -> bool:
    """Whether :func:`packed_tokens` can pack ``encoder`` (a BERT-family encoder, not a decoder)."""
    return _stack(encoder) is not None


@contextmanager
def packed_tokens(encoder: nn.Module):
    """While active, ``encoder`` computes its layers on packed real tokens (see the module); the
    modules and hooks are put back afterwards, also when the body raises."""
    stack = _stack(encoder)
    if stack is None:
        raise ValueError(f"{type(encoder).__name__}: not a BERT-family encoder, its tokens cannot be packed")
    tokens = _Tokens(int(encoder.config.hidden_size))
    originals = [layer.attention.self for layer in stack.layer]
    hooks = [encoder.register_forward_pre_hook(_read_mask(tokens), with_kwargs=True),
             stack.register_forward_pre_hook(_pack_input(tokens), with_kwargs=True),
             stack.register_forward_hook(_unpack_output(tokens))]
    try:
        for layer, inner in zip(stack.layer, originals):
            layer.attention.self = _PackedSelfAttention(inner, tokens)
        yield encoder
    finally:
        for layer, inner in zip(stack.layer, originals):
            layer.attention.self = inner
        for hook in hooks:
            hook.remove()


def _read_mask(tokens: _Tokens):
    def hook(_module, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        mask = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)
        tokens.set(torch.ones_like(ids) if mask is None else mask)
    return hook


def _pack_input(tokens: _Tokens):
    def hook(_module, args, kwargs):
        if args:
            return (tokens.pack(args[0]), *args[1:]), kwargs
        return args, {**kwargs, "hidden_states": tokens.pack(kwargs["hidden_states"])}
    return hook


def _unpack_output(tokens: _Tokens):
    def hook(_module, _args, output):
        output.last_hidden_state = tokens.unpack_output(output.last_hidden_state)
        return output
    return hook
