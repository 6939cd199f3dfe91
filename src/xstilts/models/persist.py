"""Compact model directories: only what differs from the base encoder, in bf16.

A trained xstilts model is stored as its heads plus the encoder parameters that
training could change. Frozen word embeddings (96 M of the default encoder's
117.5 M parameters) are not stored: they are reloaded from the base encoder,
whose fingerprint is recorded and checked, so a model can never silently be
rebuilt on different base weights. Weights are stored in bf16 by default (half of
fp32); scores of a stored model are always computed on the reloaded weights.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import torch

from xstilts.errors import XstiltsError
from xstilts.models.multitask import HeadSpec, XstiltsModel

FORMAT_VERSION = 1
MANIFEST = "xstilts_model.json"
WEIGHTS = "weights.safetensors"
WORD_EMBEDDINGS = "encoder.embeddings.word_embeddings.weight"
DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32}


def tensor_fingerprint(t: torch.Tensor) -> str:
    """sha256 of a tensor's fp32 bytes (identifies the base word embeddings)."""
    return _fingerprint_cached(t.data_ptr(), tuple(t.shape), t._version, t)


@functools.lru_cache(maxsize=4)
def _fingerprint_cached(ptr, shape, version, t) -> str:  # keyed on identity: the hash is ~0.5 s
    return hashlib.sha256(t.detach().float().contiguous().numpy().tobytes()).hexdigest()[:32]


def save_model(model: XstiltsModel, out_dir: str | os.PathLike[str], *, base_model: str,
               frozen_word_embeddings: bool, store_dtype: str = "bfloat16", extra: dict | None = None) -> Path:
    """Write ``model`` to ``out_dir`` atomically (temp dir, then rename)."""
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    dtype = DTYPES[store_dtype]
    state = {k: v.detach() for k, v in model.state_dict().items()}
    omitted = [WORD_EMBEDDINGS] if frozen_word_embeddings else []
    tensors = {k: v.to(dtype).contiguous() if v.is_floating_point() else v.contiguous()
               for k, v in state.items() if k not in omitted}
    manifest = {
        "format_version": FORMAT_VERSION,
        "base_model": base_model,
        "num_hidden_layers": model.config.num_hidden_layers,
        "heads": [h.to_dict() for h in model.head_specs.values()],
        "store_dtype": store_dtype,
        "omitted": omitted,
        "base_word_embeddings": tensor_fingerprint(state[WORD_EMBEDDINGS]) if omitted else None,
        **(extra or {}),
    }
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        save_file(tensors, str(tmp / WEIGHTS))
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def read_manifest(model_dir: str | os.PathLike[str]) -> dict:
    path = Path(model_dir) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise XstiltsError(f"{model_dir}: not an xstilts model directory (no {MANIFEST})") from None
    except ValueError as exc:
        raise XstiltsError(f"{path}: invalid JSON ({exc})") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise XstiltsError(f"{path}: format_version {manifest.get('format_version')}, "
                           f"this xstilts reads {FORMAT_VERSION}")
    return manifest


def load_model(model_dir: str | os.PathLike[str], *, keep_heads: bool = True) -> XstiltsModel:
    """Rebuild a saved model on its base encoder (fp32 in memory)."""
    from safetensors.torch import load_file

    from xstilts.encoders.loading import load_encoder

    manifest = read_manifest(model_dir)
    encoder = load_encoder(manifest["base_model"], num_hidden_layers=manifest["num_hidden_layers"])
    heads = [HeadSpec(**h) for h in manifest["heads"]]
    model = XstiltsModel(encoder, heads)
    if manifest["omitted"]:
        found = tensor_fingerprint(model.state_dict()[WORD_EMBEDDINGS])
        if found != manifest["base_word_embeddings"]:
            raise XstiltsError(f"{model_dir}: base model {manifest['base_model']} has different word embeddings "
                               f"(fingerprint {found}, expected {manifest['base_word_embeddings']})")
    stored = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(Path(model_dir) / WEIGHTS)).items()}
    missing, unexpected = model.load_state_dict(stored, strict=False)
    missing = [k for k in missing if k not in manifest["omitted"]]
    if missing or unexpected:
        raise XstiltsError(f"{model_dir}: weights do not match the model (missing {missing[:3]}, "
                           f"unexpected {unexpected[:3]})")
    if not keep_heads:
        model.drop_heads()
    return model
