"""Quora Question Pairs (GLUE): duplicate-question detection."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from xstilts.data.examples import SentenceExample
from xstilts.data.readers import read_header_tsv
from xstilts.tasks._families import SentenceTask
from xstilts.tasks.registry import HubRef, register_task

_HUB_NAMES = {"not_duplicate": "0", "duplicate": "1"}


@register_task
class QQP(SentenceTask):
    name = "qqp"
    kind = "intermediate"
    languages = ("en",)
    splits = ("train", "dev")
    labels = ("0", "1")
    metric = "acc_and_f1"
    hub_id = "nyu-mll/glue"
    license = "Quora terms of service (non-commercial research use)"
    hub_text_a = "question1"
    hub_text_b = "question2"
    hub_guid_field = "idx"

    def hub_convert_label(self, text: str) -> str:
        return _HUB_NAMES.get(text, text)

    def local_patterns(self, lang: str, split: str) -> list[str]:
        return [f"glue/QQP/{split}.tsv", f"QQP/{split}.tsv", f"hf_dummy_samples/glue/QQP/{split}.tsv"]

    def read_files(self, files: Sequence[Path], lang: str, split: str) -> list[SentenceExample]:
        return [ex for f in files for ex in read_header_tsv(
            f, lang, text_a="question1", text_b="question2", label="is_duplicate", labels=self.labels, guid="id")]

    def hub_refs(self, lang: str, split: str) -> list[HubRef]:
        return [HubRef(self.hub_id, "qqp", {"train": "train", "dev": "validation"}[split])]
