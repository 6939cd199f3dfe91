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


def _refuse(task, lang: str, split: str, problem: str) -> XstiltsError:
    return XstiltsError(f"task {task.name}, language {lang}, split {split} ({data_source(task, lang, split)}): "
                        f"{problem}; refusing to score it")


def _constant(values: Sequence[Any]) -> Any | None:
    """The one value of ``values`` if there are enough of them and all are equal."""
    counts = Counter(values)
    if len(values) >= MIN_ITEMS_FOR_PLACEHOLDER and len(counts) == 1:
        return next(iter(counts))
    return None


def require_gold(task, lang: str, split: str, data: Sequence[Any] | ParallelCorpus) -> None:
    """Raise :class:`XstiltsError` unless every item of ``data`` carries a real gold label.

    ``data`` is the whole split as loaded (check it before keeping only the
    first N examples, so that a short prefix cannot look like a placeholder).
    """
    family = task.family
    if family == "retrieval":
        _require_parallel_gold(task, lang, split, data)
        return
    if not data:
        raise _refuse(task, lang, split, "the split is empty")
    n = len(data)
    if family in ("sentence_classification", "multiple_choice"):
        missing = sum(ex.label is None for ex in data)
        if missing:
            raise _refuse(task, lang, split, f"{missing} of {n} examples have no gold label")
        only = _constant([ex.label for ex in data])
        if only is not None and (task.labels is None or len(task.labels) > 1):
            raise _refuse(task, lang, split, f"all {n} examples carry the same label {only!r}, "
                                             "a placeholder for held-out gold labels")
    elif family == "tagging":
        missing = sum(ex.tags is None for ex in data)
        if missing:
            raise _refuse(task, lang, split, f"{missing} of {n} sentences have no gold tags")
        only = _constant([tag for ex in data for tag in ex.tags])
        if only is not None and n >= MIN_ITEMS_FOR_PLACEHOLDER:
            raise _refuse(task, lang, split, f"every word of all {n} sentences is tagged {only!r}, "
                                             "a placeholder for held-out gold tags")
    elif family == "span_qa":
        missing = sum(not ex.answers and not ex.is_impossible for ex in data)
        if missing:
            raise _refuse(task, lang, split, f"{missing} of {n} questions have no gold answer "
                                             "(the file ships without answers)")
    else:
        raise XstiltsError(f"task {task.name}: no gold check for family {family}")


def _require_parallel_gold(task, lang: str, split: str, corpus: ParallelCorpus) -> None:
    if not corpus.source or not corpus.target:
        raise _refuse(task, lang, split, "the corpus is empty")
    if task.name == "tatoeba":
        # Gold is the line alignment itself: line i translates line i.
        if len(corpus.source) != len(corpus.target):
            raise _refuse(task, lang, split, f"{len(corpus.source)} source lines but {len(corpus.target)} "
                                             "English lines; Tatoeba gold is the line alignment")
        return
    if not corpus.gold:
        raise _refuse(task, lang, split, "no gold sentence pairs (the .gold file is missing or empty)")
