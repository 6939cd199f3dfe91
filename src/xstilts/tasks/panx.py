"""PAN-X / WikiANN NER (Pan et al. 2017, Rahimi et al. 2019 splits) in XTREME's 40 languages."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from xstilts.data.examples import TaggingExample
from xstilts.data.readers import read_token_tsv
from xstilts.tasks._families import TaggingTask
from xstilts.tasks.registry import HubRef, register_task

PANX_TAGS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC")  # Hub ClassLabel order


@register_task
class PANX(TaggingTask):
    name = "panx"
    kind = "target"
    # google-research/xtreme scripts/train_panx.sh, XTREME's 40 (XTREME-R additions left out).
    languages = ("ar", "he", "vi", "id", "jv", "ms", "tl", "eu", "ml", "ta", "te", "af", "nl", "en", "de", "el",
                 "bn", "hi", "mr", "ur", "fa", "fr", "it", "pt", "es", "bg", "ru", "ja", "ka", "ko", "th", "sw",
                 "yo", "my", "zh", "kk", "tr", "et", "fi", "hu")
    splits = ("train", "dev", "test")
    labels = PANX_TAGS
    metric = "seqeval_f1"
    hub_id = "google/xtreme"
    license = "WikiANN: no licence file (ODC-BY per the Hub card of unimelb-nlp/wikiann)"
    description = "Named-entity recognition (PER, ORG, LOC; IOB2)."
    hub_tags_field = "ner_tags"

    def local_patterns(self, lang: str, split: str) -> list[str]:
        return [f"panx/{split}-{lang}.tsv"]

    def read_files(self, files: Sequence[Path], lang: str, split: str) -> list[TaggingExample]:
        return [ex for f in files for ex in read_token_tsv(f, lang, labels=self.labels)]

    def hub_refs(self, lang: str, split: str) -> list[HubRef]:
        # unimelb-nlp/wikiann (config = lang) holds the same Rahimi et al. splits.
        return [HubRef(self.hub_id, f"PAN-X.{lang}", {"train": "train", "dev": "validation", "test": "test"}[split])]
