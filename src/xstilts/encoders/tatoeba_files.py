"""The vendored Tatoeba (LASER v1) files the encoder check reads."""
from __future__ import annotations

from pathlib import Path

from xstilts.data.examples import ParallelCorpus
from xstilts.errors import DataFormatError, UnknownNameError
from xstilts.paths import data_root

# XTREME's 36 Tatoeba languages and the LASER file codes (xtreme utils_preprocess.py, lang3_dict).
TATOEBA_LANGS: dict[str, str] = {
    "af": "afr", "ar": "ara", "bg": "bul", "bn": "ben", "de": "deu", "el": "ell", "es": "spa", "et": "est",
    "eu": "eus", "fa": "pes", "fi": "fin", "fr": "fra", "he": "heb", "hi": "hin", "hu": "hun", "id": "ind",
    "it": "ita", "ja": "jpn", "jv": "jav", "ka": "kat", "kk": "kaz", "ko": "kor", "ml": "mal", "mr": "mar",
    "nl": "nld", "pt": "por", "ru": "rus", "sw": "swh", "ta": "tam", "te": "tel", "th": "tha", "tl": "tgl",
    "tr": "tur", "ur": "urd", "vi": "vie", "zh": "cmn",
}


def _lines(path: Path) -> list[str]:
    try:
        text = path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise DataFormatError(path, "a Tatoeba file (is the vendored data/ folder present?)") from None
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[:exc.start].count(b"\n") + 1
        raise DataFormatError(path, "UTF-8 text", line=line, got="invalid UTF-8") from None
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return lines


def read_tatoeba(lang: str, root: Path | None = None) -> ParallelCorpus:
    """Line-aligned pairs ``tatoeba.{xxx}-eng.{xxx}`` / ``.eng`` for an XTREME language code."""
    if lang not in TATOEBA_LANGS:
        raise UnknownNameError("Tatoeba language", lang, list(TATOEBA_LANGS))
    code = TATOEBA_LANGS[lang]
    folder = (root or data_root()) / "tatoeba"
    src_path, tgt_path = folder / f"tatoeba.{code}-eng.{code}", folder / f"tatoeba.{code}-eng.eng"
    src, tgt = _lines(src_path), _lines(tgt_path)
    if len(src) != len(tgt):
        raise DataFormatError(tgt_path, f"{len(src)} lines, aligned with {src_path.name}", got=f"{len(tgt)} lines")
    ids = tuple(str(i) for i in range(len(src)))
    return ParallelCorpus(lang=lang, source_ids=ids, source=tuple(src), target_ids=ids, target=tuple(tgt),
                          gold=tuple((i, i) for i in ids))
