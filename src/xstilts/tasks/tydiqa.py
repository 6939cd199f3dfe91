"""TyDiQA-GoldP (Clark et al. 2020): gold-passage extractive QA in 9 languages (XTREME subset)."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from xstilts.data.examples import SpanQAExample
from xstilts.data.readers import read_squad_json
from xstilts.tasks._families import SpanQATask
from xstilts.tasks.registry import HubRef, register_task

# TyDiQA ids start with the language's English name ("english-...", "arabic--123-0").
ID_PREFIX = {"en": "english", "ar": "arabic", "bn": "bengali", "fi": "finnish", "id": "indonesian",
             "ko": "korean", "ru": "russian", "sw": "swahili", "te": "telugu"}


@register_task
class TyDiQA(SpanQATask):
    name = "tydiqa"
    kind = "target"
    languages = tuple(ID_PREFIX)
    splits = ("train", "dev")
    hub_id = "google-research-datasets/tydiqa"
    license = "Apache 2.0"
    description = ("Gold-passage QA. XTREME's per-language dev files blank the gold answers "
                   "(answers=() after loading); the Hub validation split has them.")

    def local_patterns(self, lang: str, split: str) -> list[str]:
        return [f"tydiqa/tydiqa-goldp-v1.1-{split}/tydiqa.goldp.{lang}.{split}.json"]

    def read_files(self, files: Sequence[Path], lang: str, split: str) -> list[SpanQAExample]:
        return [ex for f in files for ex in read_squad_json(f, lang)]

    def hub_refs(self, lang: str, split: str) -> list[HubRef]:
        return [HubRef(self.hub_id, "secondary_task", {"train": "train", "dev": "validation"}[split])]

    def from_hub_rows(self, rows: Iterable[Mapping[str, Any]], lang: str, split: str,
                      label_names: Sequence[str] | None = None) -> list[SpanQAExample]:
        # The Hub config holds all 11 TyDi languages in one split; keep this language's rows.
        prefix = ID_PREFIX[lang] + "-"
        return super().from_hub_rows((r for r in rows if str(r["id"]).startswith(prefix)), lang, split)
