"""Compact, portable model directories: only what differs from the base encoder, in bf16.

A trained xstilts model is stored as its heads plus the encoder parameters that
training could change. Frozen word embeddings (96 M of the default encoder's
117.5 M parameters) are not stored: they are reloaded from the base encoder,
whose fingerprint is recorded and checked, so a model can never silently be
rebuilt on different base weights. Weights are stored in bf16 by default (half of
fp32); scores of a stored model are always computed on the reloaded weights.

A model directory loads wherever xstilts is installed (format 2):

- the base encoder is named **logically** (``default``, a Hub id, or an absolute
  local path), not by where the converted default happened to sit in the cache of
  the machine that trained it; :func:`load_model` resolves the name at load time
  (``default`` through the current ``XSTILTS_CACHE``, converted on first use), and
  ``base_model=`` overrides it with a path given by the caller;
- ``base_word_embeddings`` is the fingerprint of the only base tensor the
  directory does not hold: the first 32 hex digits of the sha256 of the base's
  word-embedding matrix as fp32 bytes. It identifies the base weights the model
  needs (any base whose word embeddings differ is refused); it is ``None`` when
  the embeddings were trained and stored, since then no base tensor is used;
- the tokenizer's files are copied into ``tokenizer/``, so tokenization never
  depends on the base encoder's location (or on the Hub being reachable);
- ``max_length`` and ``doc_stride`` are the lengths the model was trained with,
  the lengths consumers use by default.

Format 1 directories (base as an absolute path, tokenizer read from the base) are
still read: the path is used as given (or ``base_model=`` overrides it) and the
lengths come from the stored run config.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, NamedTuple

import torch

from xstilts.errors import XstiltsError
from xstilts.models.multitask import HeadSpec, XstiltsModel

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
MANIFEST = "xstilts_model.json"
WEIGHTS = "weights.safetensors"
TOKENIZER_DIR = "tokenizer"
WORD_EMBEDDINGS = "encoder.embeddings.word_embeddings.weight"
DTYPES = {"bfloat16": torch.bfloat16, "float32": torch.float32}
#: Files a Hugging Face tokenizer directory may hold (copied byte for byte when present).
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "sentencepiece.bpe.model", "spiece.model", "vocab.txt", "vocab.json", "merges.txt")


def tensor_fingerprint(t: torch.Tensor) -> str:
    """sha256 of a tensor's fp32 bytes (identifies the base word embeddings).

    Hashing the default's word embeddings takes about a second; every model a grid
    saves or loads holds a bit-identical copy of them (they are frozen), so a tensor
    bitwise equal to one hashed before (a comparison costs a few milliseconds) gets
    that one's fingerprint."""
    for known, version, fingerprint in _recent:
        if known._version == version and known.shape == t.shape and known.dtype == t.dtype \
                and _bitwise_equal(known, t):
            return fingerprint
    fingerprint = hashlib.sha256(t.detach().float().contiguous().numpy().tobytes()).hexdigest()[:32]
    _recent[:] = [(t, t._version, fingerprint)]  # the version tells when it was changed in place since
    return fingerprint


# (the tensor last hashed, its version then, its fingerprint): one tensor only, since each holds its model's
# word embeddings (366 MiB for the default) alive
_recent: list[tuple[torch.Tensor, int, str]] = []


def _bitwise_equal(a: torch.Tensor, b: torch.Tensor) -> bool:
    """Same bits (unlike ``torch.equal``, which calls 0.0 and -0.0 equal, or NaN unequal)."""
    a, b = a.detach().contiguous(), b.detach().contiguous()
    if a.element_size() not in (1, 2, 4, 8):
        return False
    view = {1: torch.uint8, 2: torch.int16, 4: torch.int32, 8: torch.int64}[a.element_size()]
    return torch.equal(a.view(view), b.view(view))


def store_tokenizer(tokenizer: Any, dest: Path) -> None:
    """Write ``tokenizer`` to ``dest`` so that loading ``dest`` tokenizes exactly like it.

    A fast tokenizer read from a local directory (the converted default, a local
    encoder) has its files copied byte for byte: the model then carries the very
    files training tokenized with (``tokenizer.json`` defines a fast tokenizer
    completely; the configs beside it are copied too). Any other tokenizer (a Hub
    id) is written by ``save_pretrained`` and checked by reloading it, which costs
    seconds, so the common local case is not reloaded.
    """
    from transformers import AutoTokenizer

    from xstilts.data.feature_cache import tokenizer_fingerprint

    src = Path(str(getattr(tokenizer, "name_or_path", "") or "")).expanduser()
    dest.mkdir(parents=True)
    if getattr(tokenizer, "is_fast", False) and (src / "tokenizer.json").is_file():
        for name in TOKENIZER_FILES:
            if (src / name).is_file():
                shutil.copyfile(src / name, dest / name)
        return
    tokenizer.save_pretrained(str(dest))
    if tokenizer_fingerprint(AutoTokenizer.from_pretrained(str(dest))) != tokenizer_fingerprint(tokenizer):
        raise XstiltsError(f"the tokenizer {src} does not reload identically from {dest}; cannot store it")


def save_model(model: XstiltsModel, out_dir: str | os.PathLike[str], *, base_model: str,
               frozen_word_embeddings: bool, store_dtype: str = "bfloat16", tokenizer: Any | None = None,
               max_length: int | None = None, doc_stride: int | None = None,
               extra: dict | None = None) -> Path:
    """Write ``model`` to ``out_dir`` atomically (temp dir, then rename).

    ``base_model`` is the logical name (``default``, a Hub id, an absolute path):
    what :func:`load_model` resolves on the loading machine. ``tokenizer`` (copied
    into the directory) and the training ``max_length``/``doc_stride`` make the
    directory self-sufficient for consumers; without a tokenizer, loading falls
    back to the base encoder's.
    """
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
        "base_word_embeddings": tensor_fingerprint(state[WORD_EMBEDDINGS]) if omitted else None,
        "num_hidden_layers": model.config.num_hidden_layers,
        "heads": [h.to_dict() for h in model.head_specs.values()],
        "tokenizer": TOKENIZER_DIR if tokenizer is not None else None,
        "max_length": max_length,
        "doc_stride": doc_stride,
        "store_dtype": store_dtype,
        "omitted": omitted,
        **(extra or {}),
    }
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    try:
        save_file(tensors, str(tmp / WEIGHTS))
        if tokenizer is not None:
            store_tokenizer(tokenizer, tmp / TOKENIZER_DIR)
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _upgrade_v1(manifest: dict) -> dict:
    """Format 1 in format 2's terms: no stored tokenizer, lengths from the stored run config."""
    training = (manifest.get("config") or {}).get("training") or {}
    return {"tokenizer": None, "max_length": training.get("max_length"),
            "doc_stride": training.get("doc_stride")} | manifest


def read_manifest(model_dir: str | os.PathLike[str]) -> dict:
    """The manifest of ``model_dir`` (format 1 is upgraded in memory; ``format_version`` kept)."""
    path = Path(model_dir) / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise XstiltsError(f"{model_dir}: not an xstilts model directory (no {MANIFEST})") from None
    except ValueError as exc:
        raise XstiltsError(f"{path}: invalid JSON ({exc})") from None
    version = manifest.get("format_version")
    if version not in READABLE_VERSIONS:
        raise XstiltsError(f"{path}: format_version {version}, this xstilts reads "
                           f"{', '.join(map(str, READABLE_VERSIONS))}; load it with the xstilts that wrote it "
                           f"(its code_version tag) or retrain it with this one")
    return _upgrade_v1(manifest) if version == 1 else manifest


def resolve_base(model_dir: str | os.PathLike[str], manifest: dict, base_model: str | None = None) -> str:
    """What ``from_pretrained`` gets for the model's base: ``base_model`` if given, else the
    manifest's logical name resolved here and now (``default``: the current cache)."""
    from xstilts.encoders.loading import resolve_model

    ref = base_model if base_model is not None else manifest["base_model"]
    try:
        return resolve_model(ref)
    except XstiltsError as exc:
        raise XstiltsError(f"{model_dir}: cannot find its base encoder {ref!r}: {exc}. Pass base_model=<the "
                           f"encoder directory> to load it on another base location") from None


def _check_base(model_dir, manifest: dict, model: XstiltsModel, resolved: str) -> None:
    """Refuse base weights other than those the model was trained on (see the module doc)."""
    if not manifest["omitted"]:
        return
    found = tensor_fingerprint(model.state_dict()[WORD_EMBEDDINGS])
    expected = manifest["base_word_embeddings"]
    if found != expected:
        raise XstiltsError(f"{model_dir}: base encoder {manifest['base_model']!r} (loaded from {resolved}) has "
                           f"different word embeddings: expected fingerprint {expected}, found {found}. "
                           f"The model was trained on other base weights; pass base_model=<the encoder it was "
                           f"trained on>")


def load_model(model_dir: str | os.PathLike[str], *, keep_heads: bool = True,
               base_model: str | None = None) -> XstiltsModel:
    """Rebuild a saved model on its base encoder (fp32 in memory).

    ``base_model`` (a path or Hub id given at load time) wins over the manifest's
    logical name; either way the base's word embeddings must match the fingerprint.
    """
    from safetensors.torch import load_file

    from xstilts.encoders.loading import load_encoder

    manifest = read_manifest(model_dir)
    resolved = resolve_base(model_dir, manifest, base_model)
    try:
        encoder = load_encoder(resolved, num_hidden_layers=manifest["num_hidden_layers"])
    except XstiltsError as exc:
        raise XstiltsError(f"{model_dir}: {exc}") from None
    heads = [HeadSpec(**h) for h in manifest["heads"]]
    model = XstiltsModel(encoder, heads)
    _check_base(model_dir, manifest, model, resolved)
    stored = {k: v.float() if v.is_floating_point() else v for k, v in load_file(str(Path(model_dir) / WEIGHTS)).items()}
    missing, unexpected = model.load_state_dict(stored, strict=False)
    missing = [k for k in missing if k not in manifest["omitted"]]
    if missing or unexpected:
        raise XstiltsError(f"{model_dir}: weights do not match the model (missing {missing[:3]}, "
                           f"unexpected {unexpected[:3]})")
    if not keep_heads:
        model.drop_heads()
    return model


def load_model_tokenizer(model_dir: str | os.PathLike[str], manifest: dict | None = None,
                         base_model: str | None = None):
    """The tokenizer stored in ``model_dir`` (format 1: the base encoder's, resolved as for the weights)."""
    from transformers import AutoTokenizer

    from xstilts.encoders.loading import load_tokenizer

    manifest = manifest or read_manifest(model_dir)
    if manifest.get("tokenizer"):
        from xstilts.encoders.cache import cached_tokenizer

        folder = str(Path(model_dir) / manifest["tokenizer"])
        return cached_tokenizer(folder, lambda: AutoTokenizer.from_pretrained(folder))
    return load_tokenizer(resolve_base(model_dir, manifest, base_model))


class LoadedModel(NamedTuple):
    """A model directory ready to predict with: what every consumer needs, loaded once."""

    model: XstiltsModel          # fp32, in eval mode
    tokenizer: Any               # from the model directory
    manifest: dict               # read_manifest's, lengths included
    base_model: str              # the base as resolved here (directory or Hub id)


def load_for_inference(model_dir: str | os.PathLike[str], *, base_model: str | None = None) -> LoadedModel:
    """(model, tokenizer, manifest, resolved base) of ``model_dir``, the model in eval mode."""
    manifest = read_manifest(model_dir)
    model = load_model(model_dir, base_model=base_model).eval()
    tokenizer = load_model_tokenizer(model_dir, manifest, base_model)
    return LoadedModel(model, tokenizer, manifest, resolve_base(model_dir, manifest, base_model))
