"""ANLI (Nie et al. 2020): adversarial NLI, rounds R1-R3 concatenated per split."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from xstilts.data.examples import SentenceExample
from xstilts.data.readers import read_anli_jsonl
from xstilts.tasks._families import SentenceTask
from xstilts.tasks.registry import HubRef, register_task
from xstilts.tasks.xnli import NLI_LABELS


@register_task
class ANLI(SentenceTask):
    name = "anli"
    kind = "intermediate"
    languages = ("en",)
    splits = ("train", "dev", "test")
    labels = NLI_LABELS
    metric = "accuracy"
    hub_id = "facebook/anli"
    license = "CC BY-NC 4.0 (non-commercial)"
    hub_guid_field = "uid"

    def local_patterns(self, lang: str, split: str) -> list[str]:
        return [f"anli/anli_v1.0/R[123]/{split}.jsonl", f"anli_v1.0/R[123]/{split}.jsonl",
                f"hf_dummy_samples/anli/anli_v0.1/R[123]/{split}.jsonl"]

    def read_files(self, files: Sequence[Path], lang: str, split: str) -> list[SentenceExample]:
        return [ex for f in files for ex in read_anli_jsonl(f, lang, labels=self.labels)]

    def hub_refs(self, lang: str, split: str) -> list[HubRef]:
        return [HubRef(self.hub_id, None, f"{split}_r{r}") for r in (1, 2, 3)]
