"""MLQA (Lewis et al. 2020): extractive QA, XTREME uses context and question in the same language."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from xstilts.data.examples import SpanQAExample
from xstilts.data.readers import read_squad_json
from xstilts.tasks._families import SpanQATask
from xstilts.tasks.registry import HubRef, register_task


@register_task
class MLQA(SpanQATask):
    name = "mlqa"
    kind = "target"
    metric = "mlqa_em_f1"  # language-aware normalisation, not SQuAD's
    languages = ("en", "ar", "de", "es", "hi", "vi", "zh")
    splits = ("dev", "test")
    hub_id = "facebook/mlqa"
    license = "CC BY-SA 3.0"
    description = "Extractive QA; trained on SQuAD v1.1 (task squad), evaluated zero-shot."
    train_task = "squad"
    shares_items = True  # MLQA's items are 4-way parallel on average: training on de dev leaks en dev

    def local_patterns(self, lang: str, split: str) -> list[str]:
        return [f"mlqa/MLQA_V1/{split}/{split}-context-{lang}-question-{lang}.json"]

    def read_files(self, files: Sequence[Path], lang: str, split: str) -> list[SpanQAExample]:
        return [ex for f in files for ex in read_squad_json(f, lang)]

    def hub_refs(self, lang: str, split: str) -> list[HubRef]:
        return [HubRef(self.hub_id, f"mlqa.{lang}.{lang}", {"dev": "validation", "test": "test"}[split])]
