"""Load a task split from the Hugging Face Hub and map it to the example records.

Uses the ids/configs each task declares (:meth:`xstilts.tasks.Task.hub_refs`); the field
mapping itself lives on the task (:meth:`Task.from_hub_rows`) so that it can be tested on
``datasets.Dataset`` objects built offline from the same real files.
"""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from xstilts.errors import XstiltsError
from xstilts.tasks.registry import Loaded, Task


def label_names_of(dataset: Any, task: Task) -> list[str] | None:
    """``ClassLabel`` names of the task's label column (also inside a ``Sequence``), if any."""
    features = getattr(dataset, "features", None)
    if not features:
        return None
    for column in ("label", "gold_label", "ner_tags", "pos_tags"):
        feat = features.get(column)
        if feat is None:
            continue
        inner = getattr(feat, "feature", feat)  # Sequence(ClassLabel) for tags
        if isinstance(inner, list) and inner:  # List(ClassLabel) in datasets >= 4
            inner = inner[0]
        names = getattr(inner, "names", None)
        if names:
            return list(names)
    return None


def examples_from_dataset(task: Task, datasets_: Sequence[Any], lang: str, split: str) -> Loaded:
    """Map already loaded ``datasets.Dataset`` objects (concatenated in order) to records."""
    return task.family.map_hub_datasets(task, datasets_, lang, split)


def load_from_hub(task: Task, lang: str, split: str) -> Loaded:
    """Download (or read from the ``datasets`` cache) and map one task split."""
    try:
        import datasets
    except ImportError as exc:  # pragma: no cover - datasets is a hard dependency
        raise XstiltsError("loading from the Hub needs the `datasets` package") from exc
    loaded = []
    for ref in task.hub_refs(lang, split):
        try:
            loaded.append(datasets.load_dataset(ref.path, ref.name, split=ref.split))
        except Exception as exc:  # network, offline mode, unknown config: all user-fixable
            raise XstiltsError(
                f"could not load {ref.path}"
                f"{f' (config {ref.name})' if ref.name else ''} split {ref.split} for task {task.name}/{lang}: "
                f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}; "
                "without internet put the original files under the data directory instead") from None
    return examples_from_dataset(task, loaded, lang, split)
