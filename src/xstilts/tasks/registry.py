"""Task registry (allennlp-style decorator) and the :class:`Task` base class.

A task module declares one :class:`Task` subclass and decorates it with
:func:`register_task`; importing :mod:`xstilts.tasks` imports every task module so the
registry is complete. A task knows its family object (:mod:`xstilts.families`), XTREME language list, splits, label set
and metric name, where its files live locally (patterns relative to a data directory,
original formats) and which Hugging Face ``datasets`` id/config/split a user with
internet would load instead; both sources are mapped into the same example records.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal, TypeVar

from xstilts.data.examples import Example, ParallelCorpus
from xstilts.errors import UnknownNameError, XstiltsError
from xstilts.families import TASK_FAMILIES, TaskFamily


Kind = Literal["target", "intermediate"]

Loaded = list[Example] | ParallelCorpus


@dataclass(frozen=True)
class HubRef:
    """One ``datasets.load_dataset(path, name, split=split)`` call."""

    path: str
    name: str | None
    split: str


class Task:
    """Base class: class attributes describe the task, methods locate and map its data."""

    name: ClassVar[str]
    kind: ClassVar[Kind]
    family: ClassVar[TaskFamily]  # the object that featurizes, predicts and scores (xstilts.families)
    languages: ClassVar[tuple[str, ...]]
    splits: ClassVar[tuple[str, ...]]
    labels: ClassVar[tuple[str, ...] | None] = None
    metric: ClassVar[str]
    hub_id: ClassVar[str]
    license: ClassVar[str]
    description: ClassVar[str] = ""
    train_languages: ClassVar[tuple[str, ...]] = ("en",)
    # XQuAD/MLQA have no training data of their own: XTREME trains on SQuAD v1.1.
    train_task: ClassVar[str | None] = None
    # Languages whose data is a translation of the same items (XNLI dev/test, XQuAD, ...).
    parallel: ClassVar[bool] = False
    # Languages share items without being one-to-one parallel (MLQA: an item is in several,
    # not all, languages): leakage counts across languages, sampling stays per language.
    shares_items: ClassVar[bool] = False

    @property
    def items_shared_across_languages(self) -> bool:
        """Whether training on one language's split leaks the same split of another language."""
        return self.parallel or self.shares_items

    # ---- lookup helpers -------------------------------------------------------------
    def check_language(self, lang: str) -> str:
        if lang not in self.languages:
            raise UnknownNameError(f"language for task {self.name}", lang, self.languages)
        return lang

    def check_split(self, split: str) -> str:
        if split not in self.splits:
            raise UnknownNameError(f"split for task {self.name}", split, self.splits)
        return split

    # ---- local files ----------------------------------------------------------------
    def local_patterns(self, lang: str, split: str) -> list[str]:
        """Glob patterns relative to a data directory, most preferred first; ``.gz`` is implied."""
        raise NotImplementedError

    def resolve_local(self, root: Path, lang: str, split: str) -> list[Path]:
        """Files of the first pattern that matches anything under ``root`` (several files are
        concatenated, e.g. all UD treebanks of a language); empty if none matches."""
        for pattern in self.local_patterns(lang, split):
            found = sorted({*root.glob(pattern), *root.glob(pattern + ".gz")})
            found = [p for p in found if p.is_file()]
            if found:
                return found
        return []

    def read_files(self, files: Sequence[Path], lang: str, split: str) -> Loaded:
        """Parse the resolved local files into example records."""
        raise NotImplementedError

    # ---- Hugging Face Hub -----------------------------------------------------------
    def hub_refs(self, lang: str, split: str) -> list[HubRef]:
        """The ``load_dataset`` calls whose rows make up (lang, split); concatenated in order."""
        raise NotImplementedError

    def from_hub_rows(self, rows: Iterable[Mapping[str, Any]], lang: str, split: str,
                      label_names: Sequence[str] | None = None) -> Loaded:
        """Map Hub rows (their real field names) to example records.

        ``label_names`` are the ``ClassLabel`` names of the label column when it is one;
        integer labels are translated through them (and -1, the Hub's "no label", to None).
        """
        raise NotImplementedError

    # ---- listing --------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "family": self.family.name, "languages": list(self.languages),
                "splits": list(self.splits), "labels": list(self.labels) if self.labels else None,
                "metric": self.metric, "hub_id": self.hub_id, "license": self.license,
                "train_languages": list(self.train_languages), "train_task": self.train_task,
                "description": self.description}


_REGISTRY: dict[str, type[Task]] = {}
T = TypeVar("T", bound=type[Task])


def register_task(cls: T) -> T:
    """Class decorator adding a :class:`Task` subclass to the registry under ``cls.name``."""
    name = cls.name
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise XstiltsError(f"task {name!r} registered twice ({_REGISTRY[name].__module__} and {cls.__module__})")
    if not any(cls.family is f for f in TASK_FAMILIES):
        raise XstiltsError(f"task {name!r}: family {cls.family!r} is not one of xstilts.families.TASK_FAMILIES")
    _REGISTRY[name] = cls
    return cls


def task_names(kind: Kind | None = None) -> list[str]:
    return [n for n, c in _REGISTRY.items() if kind is None or c.kind == kind]


def get_task(name: str) -> Task:
    """The registered task ``name``; :class:`UnknownNameError` lists the valid names."""
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise UnknownNameError("task", name, list(_REGISTRY)) from None


def list_tasks(kind: Kind | None = None) -> list[Task]:
    """All registered tasks, targets first, each group in registration order."""
    order = {"target": 0, "intermediate": 1}
    return sorted((c() for c in _REGISTRY.values() if kind is None or c.kind == kind),
                  key=lambda t: order[t.kind])


def hub_label(value: Any, label_names: Sequence[str] | None, labels: Sequence[str] | None,
              convert: Callable[[str], str] | None = None) -> str | None:
    """A Hub label value as one of the task's label strings (None for unlabeled rows)."""
    if value is None or value == -1 or value == "":
        return None
    if isinstance(value, int) and label_names is not None:
        value = label_names[value]
    text = str(value)
    if convert is not None:
        text = convert(text)
    if labels is not None and text not in labels:
        raise XstiltsError(f"Hub label {value!r} is not one of {', '.join(labels)}")
    return text
