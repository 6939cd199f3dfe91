"""SST-2 (Socher et al. 2013, GLUE version): binary sentiment of movie-review sentences."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from xstilts.data.examples import SentenceExample
from xstilts.data.readers import read_header_tsv
from xstilts.tasks._families import SentenceTask
from xstilts.tasks.registry import HubRef, register_task

_HUB_NAMES = {"negative": "0", "positive": "1"}


@register_task
class SST2(SentenceTask):
    name = "sst2"
    kind = "intermediate"
    languages = ("en",)
    splits = ("train", "dev")
    labels = ("0", "1")
    metric = "accuracy"
    hub_id = "nyu-mll/glue"
    license = "no licence stated (GLUE/SST, research use)"
    hub_text_a = "sentence"
    hub_text_b = None
    hub_guid_field = "idx"

    def hub_convert_label(self, text: str) -> str:
        return _HUB_NAMES.get(text, text)

    def local_patterns(self, lang: str, split: str) -> list[str]:
        return [f"sst2/{split}.tsv", f"glue/SST-2/{split}.tsv", f"SST-2/{split}.tsv"]

    def read_files(self, files: Sequence[Path], lang: str, split: str) -> list[SentenceExample]:
        return [ex for f in files for ex in read_header_tsv(
            f, lang, text_a="sentence", text_b=None, label="label", labels=self.labels)]

    def hub_refs(self, lang: str, split: str) -> list[HubRef]:
        return [HubRef(self.hub_id, "sst2", {"train": "train", "dev": "validation"}[split])]
