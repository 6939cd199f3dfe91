"""Multiple-choice intermediate tasks: HellaSwag, CommonsenseQA, CosmosQA."""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from xstilts.data.examples import MultipleChoiceExample
from xstilts.data.readers import read_commonsenseqa_jsonl, read_cosmosqa_csv, read_hellaswag_jsonl
from xstilts.families import MULTIPLE_CHOICE
from xstilts.tasks.registry import HubRef, Task, register_task


def _int_or_none(value: Any) -> int | None:
    if value is None or value == "" or value == -1:
        return None
    return int(value)


class _MultipleChoiceTask(Task):
    family = MULTIPLE_CHOICE
    kind = "intermediate"
    languages = ("en",)
    splits = ("train", "dev")
    metric = "accuracy"


@register_task
class HellaSwag(_MultipleChoiceTask):
    name = "hellaswag"
    hub_id = "Rowan/hellaswag"
    license = "MIT"
    description = "Commonsense sentence completion, 4 endings; context = ctx_a, question = ctx_b."

    def local_patterns(self, lang: str, split: str) -> list[str]:
        f = {"train": "train", "dev": "val"}[split]
        return [f"hellaswag/hellaswag_{f}.jsonl", f"hellaswag_{f}.jsonl", f"hf_dummy_samples/hellaswag/hellaswag_{f}.jsonl"]

    def read_files(self, files: Sequence[Path], lang: str, split: str) -> list[MultipleChoiceExample]:
        return [ex for f in files for ex in read_hellaswag_jsonl(f, lang)]

    def hub_refs(self, lang: str, split: str) -> list[HubRef]:
        return [HubRef(self.hub_id, None, {"train": "train", "dev": "validation"}[split])]

    def from_hub_rows(self, rows: Iterable[Mapping[str, Any]], lang: str, split: str,
                      label_names: Sequence[str] | None = None) -> list[MultipleChoiceExample]:
        # The Hub stores the label as a string ("3"; "" on the test split).
        return [MultipleChoiceExample(str(r["ind"]), lang, r["ctx_a"], r["ctx_b"], tuple(r["endings"]),
                                      _int_or_none(r["label"])) for r in rows]


@register_task
class CommonsenseQA(_MultipleChoiceTask):
    name = "commonsenseqa"
    hub_id = "tau/commonsense_qa"
    license = "MIT (per the Hub card; no licence file in the vendored source)"
    description = "5-way commonsense multiple-choice QA (no context passage)."

    def local_patterns(self, lang: str, split: str) -> list[str]:
        return [f"commonsenseqa/{split}_rand_split.jsonl", f"hf_dummy_samples/commonsenseqa/{split}_rand_split.jsonl"]

    def read_files(self, files: Sequence[Path], lang: str, split: str) -> list[MultipleChoiceExample]:
        return [ex for f in files for ex in read_commonsenseqa_jsonl(f, lang)]

    def hub_refs(self, lang: str, split: str) -> list[HubRef]:
        return [HubRef(self.hub_id, None, {"train": "train", "dev": "validation"}[split])]

    def from_hub_rows(self, rows: Iterable[Mapping[str, Any]], lang: str, split: str,
                      label_names: Sequence[str] | None = None) -> list[MultipleChoiceExample]:
        out = []
        for r in rows:
            keys = list(r["choices"]["label"])
            label = keys.index(r["answerKey"]) if r["answerKey"] else None
            out.append(MultipleChoiceExample(str(r["id"]), lang, "", r["question"], tuple(r["choices"]["text"]), label))
        return out


@register_task
class CosmosQA(_MultipleChoiceTask):
    name = "cosmosqa"
    hub_id = "allenai/cosmos_qa"
    license = "CC BY 4.0"
    description = "Reading comprehension requiring commonsense, 4 answers."

    def local_patterns(self, lang: str, split: str) -> list[str]:
        f = {"train": "train", "dev": "valid"}[split]
        return [f"cosmosqa/{f}.csv", f"hf_dummy_samples/cosmosqa/{f}.csv"]

    def read_files(self, files: Sequence[Path], lang: str, split: str) -> list[MultipleChoiceExample]:
        return [ex for f in files for ex in read_cosmosqa_csv(f, lang)]

    def hub_refs(self, lang: str, split: str) -> list[HubRef]:
        return [HubRef(self.hub_id, None, {"train": "train", "dev": "validation"}[split])]

    def from_hub_rows(self, rows: Iterable[Mapping[str, Any]], lang: str, split: str,
                      label_names: Sequence[str] | None = None) -> list[MultipleChoiceExample]:
        return [MultipleChoiceExample(str(r["id"]), lang, r["context"], r["question"],
                                      tuple(r[f"answer{i}"] for i in range(4)), _int_or_none(r["label"]))
                for r in rows]
