"""Sentence embeddings from an encoder: mean pooling over the attention mask."""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def embed_sentences(model, tokenizer, sentences: Sequence[str], *, batch_size: int = 64, max_length: int = 128,
                    layer: int = -1, bf16: bool = False, progress: str | None = None) -> np.ndarray:
    """Embed ``sentences`` (returned in input order, float32, not normalised).

    ``layer`` indexes ``hidden_states`` (-1 = last layer, 0 = embeddings). Batches are
    formed over length-sorted sentences so padding stays small; this changes no
    result because every sentence is pooled over its own mask. Runs on ``model``'s
    device (bf16: autocast there); the embeddings come back to the CPU.
    """
    import torch
    from tqdm.auto import tqdm

    from xstilts.runtime.device import autocast, model_device, to_device

    if len(sentences) == 0:
        return np.zeros((0, model.config.hidden_size), dtype=np.float32)
    enc = tokenizer(list(sentences), truncation=True, max_length=max_length, add_special_tokens=True)
    ids = enc["input_ids"]
    order = np.argsort([len(x) for x in ids], kind="stable")
    out = np.empty((len(ids), model.config.hidden_size), dtype=np.float32)
    pad = tokenizer.pad_token_id
    model.eval()
    device = model_device(model)
    cast = autocast(device, bf16)
    batches = range(0, len(order), batch_size)
    with torch.inference_mode(), cast:
        for start in tqdm(batches, desc=progress, disable=progress is None, leave=False):
            idx = order[start:start + batch_size]
            width = max(len(ids[i]) for i in idx)
            input_ids = torch.full((len(idx), width), pad, dtype=torch.long)
            mask = torch.zeros((len(idx), width), dtype=torch.long)
            for row, i in enumerate(idx):
                input_ids[row, :len(ids[i])] = torch.tensor(ids[i])
                mask[row, :len(ids[i])] = 1
            moved = to_device({"input_ids": input_ids, "attention_mask": mask}, device)
            input_ids, mask = moved["input_ids"], moved["attention_mask"]
            if layer == -1:
                hidden = model(input_ids=input_ids, attention_mask=mask).last_hidden_state
            else:
                hidden = model(input_ids=input_ids, attention_mask=mask, output_hidden_states=True).hidden_states[layer]
            m = mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1)
            out[idx] = pooled.float().cpu().numpy()
    return out
