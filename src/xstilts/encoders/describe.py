"""What a report says about the encoder: its name and how it was pretrained.

Phang et al. (2020) fine-tune XLM-R, pretrained with masked language modelling only. An
encoder trained otherwise (multilingual-e5 is trained contrastively for sentence
embeddings) already has sentence-level cross-lingual
alignment, so its retrieval scores (Tatoeba, BUCC) answer a different question and are
not comparable with the paper's; the report says so in its first paragraph.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from xstilts.encoders.default_encoder import DISPLAY_NAME
from xstilts.encoders.loading import DEFAULT_ALIASES

_MLM = "masked language modelling only (MLM on CC-100, as in Conneau et al. 2020)"
_E5 = ("contrastive sentence-embedding training (weakly supervised text pairs, then supervised fine-tuning; "
       "Wang et al. 2024), starting from a pretrained multilingual encoder")


@dataclass(frozen=True)
class EncoderInfo:
    name: str
    objective: str
    mlm_only: bool | None  # None: not known

    def sentence(self, has_retrieval: bool) -> str:
        """The report's sentence about this encoder (and, for retrieval, about comparability)."""
        text = f"Encoder: {self.name}, pretrained with {self.objective}."
        if self.mlm_only is False and has_retrieval:
            text += (" Because this encoder was trained for sentence embeddings and not with masked LM only like "
                     "XLM-R, its retrieval results (Tatoeba, BUCC) are not comparable with Phang et al.'s (2020).")
        elif self.mlm_only is None and has_retrieval:
            text += (" Whether its retrieval results are comparable with Phang et al.'s (2020, XLM-R: masked LM "
                     "only) depends on that objective.")
        return text


#: Hub ids (lower case, without an organisation prefix) and what they were pretrained with.
KNOWN: dict[str, tuple[str, str, bool]] = {
    "xlm-roberta-base": ("XLM-R base (xlm-roberta-base)", _MLM, True),
    "xlm-roberta-large": ("XLM-R large (xlm-roberta-large)", _MLM, True),
    "multilingual-e5-small": ("multilingual-e5-small", _E5, False),
    "multilingual-e5-base": ("multilingual-e5-base", _E5, False),
    "multilingual-e5-large": ("multilingual-e5-large", _E5, False),
    "bert-base-multilingual-cased": ("mBERT (bert-base-multilingual-cased)",
                                     "masked language modelling and next-sentence prediction on Wikipedia", True),
}


def describe_encoder(ref: str | None) -> EncoderInfo:
    """The encoder behind a ``base_model`` reference: the offline default, a Hub id, or a directory."""
    if ref is None or str(ref) in DEFAULT_ALIASES:
        return EncoderInfo(DISPLAY_NAME, _E5, False)
    key = str(ref).rstrip("/").split("/")[-1].lower()
    if key in KNOWN and not Path(str(ref)).expanduser().is_dir():
        return EncoderInfo(*KNOWN[key])
    return _describe_directory(Path(str(ref)).expanduser())


def _describe_directory(path: Path) -> EncoderInfo:
    """A local model directory: its architecture from config.json; the objective is not recorded there."""
    try:
        config = json.loads((path / "config.json").read_text())
    except (OSError, ValueError):
        config = {}
    known = KNOWN.get(str(config.get("_name_or_path", "")).rstrip("/").split("/")[-1].lower())
    if known:
        return EncoderInfo(f"{known[0]} from {path}", known[1], known[2])
    arch = config.get("model_type", "unknown architecture")
    layers = config.get("num_hidden_layers")
    shape = f", {layers} layers, hidden {config.get('hidden_size')}" if layers else ""
    return EncoderInfo(f"the model directory {path} ({arch}{shape})", "an objective this directory does not record",
                       None)
