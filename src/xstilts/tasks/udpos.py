"""UD-POS (Universal Dependencies v2.5 as in XTREME): UPOS tagging in 33 languages."""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from xstilts.data.examples import TaggingExample
from xstilts.data.readers import UPOS_TAGS, read_conllu, read_token_tsv
from xstilts.tasks._families import TaggingTask
from xstilts.tasks.registry import HubRef, register_task

# google/xtreme config names are ``udpos.{English name}`` (sic "Afrikans").
HUB_LANGUAGE_NAMES = {
    "af": "Afrikans", "ar": "Arabic", "bg": "Bulgarian", "de": "German", "el": "Greek", "en": "English",
    "es": "Spanish", "et": "Estonian", "eu": "Basque", "fa": "Persian", "fi": "Finnish", "fr": "French",
    "he": "Hebrew", "hi": "Hindi", "hu": "Hungarian", "id": "Indonesian", "it": "Italian", "ja": "Japanese",
    "kk": "Kazakh", "ko": "Korean", "mr": "Marathi", "nl": "Dutch", "pt": "Portuguese", "ru": "Russian",
    "ta": "Tamil", "te": "Telugu", "th": "Thai", "tl": "Tagalog", "tr": "Turkish", "ur": "Urdu",
    "vi": "Vietnamese", "yo": "Yoruba", "zh": "Chinese",
}


@register_task
class UDPOS(TaggingTask):
    name = "udpos"
    kind = "target"
    languages = tuple(HUB_LANGUAGE_NAMES)
    splits = ("train", "dev", "test")
    labels = UPOS_TAGS
    metric = "xtreme_pos_f1"  # seqeval 0.0.12 chunk F1 + accuracy, see metrics.tagging
    hub_id = "google/xtreme"
    license = "per treebank (CC BY-SA / CC BY-NC-SA, see each LICENSE.txt)"
    description = "POS tagging; XTREME concatenates all UD v2.5 treebanks of a language per split."
    hub_tags_field = "pos_tags"

    def local_patterns(self, lang: str, split: str) -> list[str]:
        return [f"udpos/*/{lang}_*-ud-{split}.conllu", f"udpos/{split}-{lang}.tsv"]

    def read_files(self, files: Sequence[Path], lang: str, split: str) -> list[TaggingExample]:
        out: list[TaggingExample] = []
        for f in files:
            if f.name.removesuffix(".gz").endswith(".conllu"):
                out += read_conllu(f, lang, labels=self.labels)
            else:
                out += read_token_tsv(f, lang, labels=self.labels)
        return out

    def hub_refs(self, lang: str, split: str) -> list[HubRef]:
        return [HubRef(self.hub_id, f"udpos.{HUB_LANGUAGE_NAMES[lang]}",
                       {"train": "train", "dev": "validation", "test": "test"}[split])]
