"""SQuAD v1.1 and v2.0 (Rajpurkar et al. 2016, 2018)."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from xstilts.data.examples import SpanQAExample
from xstilts.data.readers import read_squad_json
from xstilts.tasks._families import SpanQATask
from xstilts.tasks.registry import HubRef, register_task


@register_task
class SQuAD(SpanQATask):
    name = "squad"
    kind = "intermediate"
    languages = ("en",)
    splits = ("train", "dev")
    hub_id = "rajpurkar/squad"
    license = "CC BY-SA 4.0"
    description = "SQuAD v1.1; also the training data of the XQuAD and MLQA targets."

    def local_patterns(self, lang: str, split: str) -> list[str]:
        return [f"squad/{split}-v1.1.json", f"{split}-v1.1.json"]

    def read_files(self, files: Sequence[Path], lang: str, split: str) -> list[SpanQAExample]:
        return [ex for f in files for ex in read_squad_json(f, lang)]

    def hub_refs(self, lang: str, split: str) -> list[HubRef]:
        return [HubRef(self.hub_id, None, {"train": "train", "dev": "validation"}[split])]


@register_task
class SQuADv2(SpanQATask):
    name = "squad_v2"
    kind = "intermediate"
    languages = ("en",)
    splits = ("train", "dev")
    hub_id = "rajpurkar/squad_v2"
    license = "CC BY-SA 4.0"
    description = "SQuAD 2.0: adds unanswerable questions (is_impossible)."
    empty_answers_mean_impossible = True

    def local_patterns(self, lang: str, split: str) -> list[str]:
        return [f"squad_v2/{split}-v2.0.json", f"{split}-v2.0.json", f"hf_dummy_samples/squad_v2/{split}-v2.0.json"]

    def read_files(self, files: Sequence[Path], lang: str, split: str) -> list[SpanQAExample]:
        return [ex for f in files for ex in read_squad_json(f, lang)]

    def hub_refs(self, lang: str, split: str) -> list[HubRef]:
        return [HubRef(self.hub_id, None, {"train": "train", "dev": "validation"}[split])]
