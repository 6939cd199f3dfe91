"""XQuAD (Artetxe et al. 2020): SQuAD v1.1 dev subset translated into 10 languages (test only)."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from xstilts.data.examples import SpanQAExample
from xstilts.data.readers import read_squad_json
from xstilts.tasks._families import SpanQATask
from xstilts.tasks.registry import HubRef, register_task


@register_task
class XQuAD(SpanQATask):
    name = "xquad"
    kind = "target"
    languages = ("ar", "de", "el", "en", "es", "hi", "ru", "th", "tr", "vi", "zh")
    splits = ("test",)
    hub_id = "google/xtreme"
    license = "CC BY-SA 4.0"
    description = "Extractive QA; trained on SQuAD v1.1 (task squad), evaluated zero-shot."
    train_task = "squad"
    parallel = True

    def local_patterns(self, lang: str, split: str) -> list[str]:
        return [f"xquad/xquad.{lang}.json"]

    def read_files(self, files: Sequence[Path], lang: str, split: str) -> list[SpanQAExample]:
        return [ex for f in files for ex in read_squad_json(f, lang)]

    def hub_refs(self, lang: str, split: str) -> list[HubRef]:
        return [HubRef(self.hub_id, f"XQuAD.{lang}", "validation")]
