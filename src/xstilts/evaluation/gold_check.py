"""Refuse to score a split whose gold labels are missing or placeholders.

Some public copies of XTREME's evaluation data carry no real labels: the
TyDiQA-GoldP dev files that XTREME redistributes have an empty answer list for
every question, and XTREME-processed XNLI/PAWS-X test files put one constant
label on every row because the real ones are held out. Scoring against those
would print a number that means nothing, so evaluation stops with an error that
names the task, language, split and file.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

from xstilts.data.examples import ParallelCorpus
from xstilts.errors import XstiltsError

#: Below this many labelled items a single label value can occur by chance.
MIN_ITEMS_FOR_PLACEHOLDER = 20


def data_source(task, lang: str, split: str) -> str:
    """The local file(s) holding ``(task, lang, split)``, else the Hub dataset, for messages."""
    from xstilts.data.loading import local_files

    files = local_files(task, lang, split)
    if files:
        return ", ".join(str(f) for f in files)
    return f"the Hugging Face dataset {task.hub_id}"


def refuse(task, lang: str, split: str, problem: str) -> XstiltsError:
    """The error that stops scoring ``(task, lang, split)``, naming its data source."""
    return XstiltsError(f"task {task.name}, language {lang}, split {split} ({data_source(task, lang, split)}): "
                        f"{problem}; refusing to score it")


def constant_value(values: Sequence[Any]) -> Any | None:
    """The one value of ``values`` if there are enough of them and all are equal."""
    counts = Counter(values)
    if len(values) >= MIN_ITEMS_FOR_PLACEHOLDER and len(counts) == 1:
        return next(iter(counts))
    return None


def require_gold(task, lang: str, split: str, data: Sequence[Any] | ParallelCorpus) -> None:
    """Raise :class:`XstiltsError` unless every item of ``data`` carries a real gold label.

    ``data`` is the whole split as loaded (check it before keeping only the
    first N examples, so that a short prefix cannot look like a placeholder).
    What "real" means depends on the task's family (``task.family.require_gold``).
    """
    task.family.require_gold(task, lang, split, data)


def require_labels(task, lang: str, split: str, data: Sequence[Any]) -> None:
    """One gold ``label`` per example, not one constant label on every example
    (classification and multiple choice)."""
    if not data:
        raise refuse(task, lang, split, "the split is empty")
    n = len(data)
    missing = sum(ex.label is None for ex in data)
    if missing:
        raise refuse(task, lang, split, f"{missing} of {n} examples have no gold label")
    only = constant_value([ex.label for ex in data])
    if only is not None and (task.labels is None or len(task.labels) > 1):
        raise refuse(task, lang, split, f"all {n} examples carry the same label {only!r}, "
                                        "a placeholder for held-out gold labels")
