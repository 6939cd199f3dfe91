"""BUCC 2018 (Zweigenbaum et al. 2018): mining parallel sentences from comparable corpora."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from xstilts.data.examples import ParallelCorpus
from xstilts.data.readers import read_bucc
from xstilts.data.readers.retrieval import parallel_from_hub_rows
from xstilts.families import BUCC
from xstilts.tasks.registry import HubRef, Task, register_task


@register_task
class BUCC2018(Task):
    name = "bucc2018"
    kind = "target"
    family = BUCC
    languages = ("de", "fr", "ru", "zh")
    splits = ("dev", "test")
    metric = "bucc_f1"
    hub_id = "google/xtreme"
    license = "BUCC 2018 shared task data (research use)"
    description = "Bitext mining against English; no training data (zero-shot from the encoder)."
    train_languages = ()

    def local_patterns(self, lang: str, split: str) -> list[str]:
        return [f"bucc2018/{lang}-en.{split}.{lang}"]

    def read_files(self, files: Sequence[Path], lang: str, split: str) -> ParallelCorpus:
        src = files[0]
        stem = src.name.removesuffix(".gz")[: -len(lang)]  # "{lang}-en.{split}."

        def sibling(suffix: str) -> Path:
            for name in (stem + suffix, stem + suffix + ".gz"):
                if (src.parent / name).is_file():
                    return src.parent / name
            return src.parent / (stem + suffix)  # read_bucc then reports the missing file

        return read_bucc(src, sibling("en"), sibling("gold"), lang)

    def hub_refs(self, lang: str, split: str) -> list[HubRef]:
        return [HubRef(self.hub_id, f"bucc18.{lang}", {"dev": "validation", "test": "test"}[split])]

    def from_hub_rows(self, rows: Iterable[Mapping[str, Any]], lang: str, split: str,
                      label_names: Sequence[str] | None = None) -> ParallelCorpus:
        # The Hub config holds only the gold pairs, not the full mining pool: the candidate
        # sets are the gold sentences, which makes mining easier than on the files.
        return parallel_from_hub_rows(rows, lang)
