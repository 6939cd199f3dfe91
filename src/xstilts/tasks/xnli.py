"""XNLI (Conneau et al. 2018): NLI in 15 languages; dev/test are translations of the same items."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from xstilts.data.examples import SentenceExample
from xstilts.data.readers import read_header_tsv, read_headerless_pair_tsv
from xstilts.tasks._families import SentenceTask
from xstilts.tasks.registry import HubRef, register_task

NLI_LABELS = ("entailment", "neutral", "contradiction")  # Hub ClassLabel order (facebook/xnli, glue/mnli, anli)
# XNLI-MT 1.0 spells the contradiction label "contradictory".
XNLI_LABEL_MAP = {"contradictory": "contradiction"}


@register_task
class XNLI(SentenceTask):
    name = "xnli"
    kind = "target"
    languages = ("ar", "bg", "de", "el", "en", "es", "fr", "hi", "ru", "sw", "th", "tr", "ur", "vi", "zh")
    splits = ("train", "dev", "test")
    labels = NLI_LABELS
    metric = "accuracy"
    hub_id = "facebook/xnli"
    license = "CC BY-NC 4.0 (non-commercial)"
    description = "Cross-lingual NLI; train = MultiNLI (en) or its machine translation (XNLI-MT, translate-train)."
    train_languages = languages  # translate-train exists for every language
    parallel = True

    def local_patterns(self, lang: str, split: str) -> list[str]:
        if split == "train":
            return [f"xnli/train-{lang}.tsv", f"XNLI-MT-1.0/multinli/multinli.train.{lang}.tsv",
                    f"hf_dummy_samples/xnli/XNLI-MT-1.0/multinli/multinli.train.{lang}.tsv"]
        return [f"xnli/{split}-{lang}.tsv", f"XNLI-1.0/xnli.{split}.tsv",
                f"hf_dummy_samples/xnli/XNLI-1.0/xnli.{split}.tsv"]

    def read_files(self, files: Sequence[Path], lang: str, split: str) -> list[SentenceExample]:
        out: list[SentenceExample] = []
        for f in files:
            name = f.name.removesuffix(".gz")
            if name.startswith("multinli.train"):
                out += read_header_tsv(f, lang, text_a="premise", text_b="hypo", label="label", labels=self.labels,
                                       label_map=XNLI_LABEL_MAP)
            elif name.startswith("xnli."):
                out += read_header_tsv(f, lang, text_a="sentence1", text_b="sentence2", label="gold_label",
                                       labels=self.labels, lang_column="language", guid="pairID")
            else:
                out += read_headerless_pair_tsv(f, lang, labels=self.labels, label_map=XNLI_LABEL_MAP)
        return out

    def hub_refs(self, lang: str, split: str) -> list[HubRef]:
        return [HubRef(self.hub_id, lang, {"train": "train", "dev": "validation", "test": "test"}[split])]
