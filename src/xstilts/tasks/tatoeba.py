"""Tatoeba (Artetxe & Schwenk 2019, LASER v1 test sets): sentence retrieval against English."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from xstilts.data.examples import ParallelCorpus
from xstilts.data.readers import read_tatoeba
from xstilts.data.readers.retrieval import parallel_from_hub_rows
from xstilts.families import TATOEBA
from xstilts.tasks.registry import HubRef, Task, register_task

# google-research/xtreme utils_preprocess.py (tatoeba lang3_dict), ISO 639-1 -> LASER code.
ISO3 = {"af": "afr", "ar": "ara", "bg": "bul", "bn": "ben", "de": "deu", "el": "ell", "es": "spa", "et": "est",
        "eu": "eus", "fa": "pes", "fi": "fin", "fr": "fra", "he": "heb", "hi": "hin", "hu": "hun", "id": "ind",
        "it": "ita", "ja": "jpn", "jv": "jav", "ka": "kat", "kk": "kaz", "ko": "kor", "ml": "mal", "mr": "mar",
        "nl": "nld", "pt": "por", "ru": "rus", "sw": "swh", "ta": "tam", "te": "tel", "th": "tha", "tl": "tgl",
        "tr": "tur", "ur": "urd", "vi": "vie", "zh": "cmn"}


@register_task
class Tatoeba(Task):
    name = "tatoeba"
    kind = "target"
    family = TATOEBA
    languages = tuple(ISO3)
    splits = ("test",)
    metric = "tatoeba_accuracy"
    hub_id = "google/xtreme"
    license = "Tatoeba terms of use (CC BY 2.0 FR)"
    description = "Nearest-neighbour translation retrieval (up to 1,000 pairs per language); no training data."
    train_languages = ()

    def local_patterns(self, lang: str, split: str) -> list[str]:
        code = ISO3[lang]
        return [f"tatoeba/tatoeba.{code}-eng.{code}"]

    def read_files(self, files: Sequence[Path], lang: str, split: str) -> ParallelCorpus:
        src = files[0]
        eng = src.with_name(f"tatoeba.{ISO3[lang]}-eng.eng" + (".gz" if src.name.endswith(".gz") else ""))
        return read_tatoeba(src, eng, lang)

    def hub_refs(self, lang: str, split: str) -> list[HubRef]:
        return [HubRef(self.hub_id, f"tatoeba.{ISO3[lang]}", "validation")]

    def from_hub_rows(self, rows: Iterable[Mapping[str, Any]], lang: str, split: str,
                      label_names: Sequence[str] | None = None) -> ParallelCorpus:
        return parallel_from_hub_rows(rows, lang)
