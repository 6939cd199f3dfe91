"""PAWS-X (Yang et al. 2019): paraphrase identification in 7 languages."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from xstilts.data.examples import SentenceExample
from xstilts.data.readers import read_header_tsv, read_headerless_pair_tsv
from xstilts.tasks._families import SentenceTask
from xstilts.tasks.registry import HubRef, register_task

_ORIGINAL_NAME = {"dev": "dev_2k", "test": "test_2k"}


@register_task
class PAWSX(SentenceTask):
    name = "pawsx"
    kind = "target"
    languages = ("de", "en", "es", "fr", "ja", "ko", "zh")
    splits = ("train", "dev", "test")
    labels = ("0", "1")
    metric = "accuracy"
    hub_id = "google-research-datasets/paws-x"
    license = "PAWS-X terms: free for any purpose, attribution appreciated"
    description = "Adversarial paraphrase identification; label 1 = paraphrase."
    parallel = True
    train_languages = languages  # x-final's translated_train (and the Hub's train split) for every language
    hub_text_a = "sentence1"
    hub_text_b = "sentence2"
    hub_guid_field = "id"

    def local_patterns(self, lang: str, split: str) -> list[str]:
        original = _ORIGINAL_NAME.get(split, "train" if lang == "en" else "translated_train")
        return [f"pawsx/{split}-{lang}.tsv", f"pawsx/x-final/{lang}/{original}.tsv"]

    def read_files(self, files: Sequence[Path], lang: str, split: str) -> list[SentenceExample]:
        out: list[SentenceExample] = []
        for f in files:
            if "x-final" in f.parts:
                out += read_header_tsv(f, lang, text_a="sentence1", text_b="sentence2", label="label",
                                       labels=self.labels, guid="id")
            else:
                out += read_headerless_pair_tsv(f, lang, labels=self.labels)
        return out

    def hub_refs(self, lang: str, split: str) -> list[HubRef]:
        return [HubRef(self.hub_id, lang, {"train": "train", "dev": "validation", "test": "test"}[split])]
