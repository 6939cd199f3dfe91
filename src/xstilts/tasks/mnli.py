"""MultiNLI (Williams et al. 2018) as distributed in GLUE."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from xstilts.data.examples import SentenceExample
from xstilts.data.readers import read_header_tsv
from xstilts.tasks._families import SentenceTask
from xstilts.tasks.registry import HubRef, register_task
from xstilts.tasks.xnli import NLI_LABELS

_FILE = {"train": "train", "dev": "dev_matched", "dev_mismatched": "dev_mismatched"}


@register_task
class MNLI(SentenceTask):
    name = "mnli"
    kind = "intermediate"
    languages = ("en",)
    splits = ("train", "dev", "dev_mismatched")
    labels = NLI_LABELS
    metric = "accuracy"
    hub_id = "nyu-mll/glue"
    license = "OANC / CC BY-SA 3.0 mix (see the MultiNLI paper)"
    hub_guid_field = "idx"

    def local_patterns(self, lang: str, split: str) -> list[str]:
        f = _FILE[split]
        return [f"glue/MNLI/{f}.tsv", f"MNLI/{f}.tsv", f"hf_dummy_samples/glue/MNLI/{f}.tsv"]

    def read_files(self, files: Sequence[Path], lang: str, split: str) -> list[SentenceExample]:
        return [ex for f in files for ex in read_header_tsv(
            f, lang, text_a="sentence1", text_b="sentence2", label="gold_label", labels=self.labels, guid="pairID")]

    def hub_refs(self, lang: str, split: str) -> list[HubRef]:
        return [HubRef(self.hub_id, "mnli", {"train": "train", "dev": "validation_matched",
                                             "dev_mismatched": "validation_mismatched"}[split])]
