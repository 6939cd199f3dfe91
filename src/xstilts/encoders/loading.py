"""Resolve a model reference (default, local path, Hub id) and load encoder + tokenizer.

Everywhere xstilts takes a model it accepts:
- ``None``/``"default"``/``"multilingual-e5-small-q4"``: the converted offline default,
  prepared on first use;
- a local directory in Hugging Face layout;
- a Hub id such as ``xlm-roberta-large`` (needs internet or a warm HF cache).
"""
from __future__ import annotations

import os
from pathlib import Path

from xstilts.encoders.default_encoder import NAME as DEFAULT_NAME
from xstilts.encoders.default_encoder import prepare_default_encoder
from xstilts.errors import XstiltsError

DEFAULT_ALIASES = {None, "", "default", DEFAULT_NAME}


def resolve_model(ref: str | os.PathLike[str] | None) -> str:
    """Return what ``from_pretrained`` should receive for ``ref``."""
    if ref is None or str(ref) in DEFAULT_ALIASES:
        return str(prepare_default_encoder())
    path = Path(ref).expanduser()
    if path.exists():
        if not (path / "config.json").is_file():
            raise XstiltsError(f"{path}: not a model directory (no config.json)")
        return str(path)
    if str(ref).startswith((".", "/", "~")):
        raise XstiltsError(f"model path {ref} does not exist")
    return str(ref)


def _hub_error(ref: str, exc: Exception) -> XstiltsError:
    offline = os.environ.get("HF_HUB_OFFLINE") == "1"
    why = "HF_HUB_OFFLINE=1 is set and it is not in the local HF cache" if offline else f"{exc}"
    return XstiltsError(f"cannot load model {ref!r} from the Hugging Face Hub: {why}. "
                        f"Use the offline default (omit --model) or a local model directory.")


def load_tokenizer(ref: str | os.PathLike[str] | None = None):
    from transformers import AutoTokenizer

    from xstilts.encoders.cache import cached_tokenizer

    resolved = resolve_model(ref)
    try:
        return cached_tokenizer(resolved, lambda: AutoTokenizer.from_pretrained(resolved))
    except OSError as exc:
        raise _hub_error(resolved, exc) from None


def load_encoder(ref: str | os.PathLike[str] | None = None, *, num_hidden_layers: int | None = None,
                 random_init: bool = False, seed: int = 0):
    """Load the bare encoder (no pooler: X-STILTs heads pool themselves).

    ``num_hidden_layers`` keeps only the first layers (fast test models);
    ``random_init`` builds the same architecture with fresh weights (a control).
    """
    import torch
    from transformers import AutoConfig, AutoModel

    from xstilts.encoders.cache import cached_encoder

    resolved = resolve_model(ref)
    overrides = {} if num_hidden_layers is None else {"num_hidden_layers": num_hidden_layers}
    try:
        config = AutoConfig.from_pretrained(resolved, **overrides)
        if random_init:
            torch.manual_seed(seed)
            return AutoModel.from_config(config, add_pooling_layer=False)
        return cached_encoder(resolved, num_hidden_layers, lambda: _from_pretrained(resolved, config))
    except OSError as exc:
        raise _hub_error(resolved, exc) from None


def _from_pretrained(resolved: str, config):
    from transformers import AutoModel
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()  # dropped layers are expected, not worth a warning wall
    try:
        return AutoModel.from_pretrained(resolved, config=config, add_pooling_layer=False)
    finally:
        hf_logging.set_verbosity(verbosity)
