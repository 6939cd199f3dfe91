"""Entry point for task data: local original-format files or the Hugging Face Hub.

``load_examples("xnli", "sw", "dev")`` reads the vendored copy (``paths.data_root()``)
when it has the files and otherwise the task's Hub id; ``source`` forces one or points at
another local directory laid out like the original releases.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path

from xstilts.data.examples import Example, ParallelCorpus
from xstilts.errors import XstiltsError
from xstilts.paths import data_root
from xstilts.tasks import get_task
from xstilts.tasks.registry import Loaded, Task

logger = logging.getLogger(__name__)

LOCAL = "local"
HUB = "hub"


def local_files(task: str | Task, lang: str, split: str, *, root: str | os.PathLike[str] | None = None) -> list[Path]:
    """The local files that hold (task, lang, split) under ``root`` (default: vendored data)."""
    t = get_task(task) if isinstance(task, str) else task
    t.check_language(lang)
    t.check_split(split)
    return t.resolve_local(Path(root) if root is not None else data_root(), lang, split)


def _load(task: str, lang: str, split: str, source: str | os.PathLike[str] | None) -> Loaded:
    t = get_task(task)
    t.check_language(lang)
    t.check_split(split)
    if source == HUB:
        from xstilts.data.hub import load_from_hub
        return load_from_hub(t, lang, split)
    root = data_root() if source in (None, LOCAL) else Path(source)
    files = t.resolve_local(root, lang, split)
    if files:
        if any("hf_dummy_samples" in p.parts for p in files):
            logger.warning("%s/%s/%s: only the few-example HF dummy sample is available locally (%s)",
                           task, lang, split, files[0])
        return _read_once(t, tuple(files), lang, split)
    if source is None:
        from xstilts.data.hub import load_from_hub
        return load_from_hub(t, lang, split)
    raise XstiltsError(f"no local file for task {task}, language {lang}, split {split} under {root} "
                       f"(looked for {', '.join(t.local_patterns(lang, split))}, optionally .gz)")


_read: dict[tuple, Loaded] = {}
_READ_MAX = 256  # (task, language, split) entries kept; a grid uses a few dozen


def _read_once(t: Task, files: tuple[Path, ...], lang: str, split: str) -> Loaded:
    """``t.read_files`` once per process for the same files (same paths and bytes).

    A grid evaluates every model on the same languages: parsing each file again per model
    was a measurable part of its time (hashing the bytes costs far less than parsing them).
    Examples and corpora are frozen; lists are copied."""
    key = (t.name, lang, split, tuple((str(f), hashlib.sha256(f.read_bytes()).hexdigest()) for f in files))
    if key not in _read:
        if len(_read) >= _READ_MAX:
            _read.pop(next(iter(_read)))
        _read[key] = t.read_files(list(files), lang, split)
    found = _read[key]
    return list(found) if isinstance(found, list) else found


def load_examples(task: str, lang: str, split: str, *, source: str | os.PathLike[str] | None = None,
                  max_examples: int | None = None) -> list[Example]:
    """Examples of one task split in one language.

    ``source``: None = vendored files if present, else the Hub; ``"local"`` = vendored
    files only; ``"hub"`` = the Hub only; any other value = a local directory.
    ``max_examples`` keeps the first N (file order), for quick runs.
    """
    out = _load(task, lang, split, source)
    if isinstance(out, ParallelCorpus):
        raise XstiltsError(f"task {task} is a retrieval task; use load_parallel() for its sentence pairs")
    return out[:max_examples] if max_examples is not None else out


def load_parallel(task: str, lang: str, split: str, *, source: str | os.PathLike[str] | None = None) -> ParallelCorpus:
    """The parallel corpus of a retrieval task (Tatoeba, BUCC) for ``lang``-English."""
    out = _load(task, lang, split, source)
    if not isinstance(out, ParallelCorpus):
        raise XstiltsError(f"task {task} is not a retrieval task; use load_examples()")
    return out


def available_local(task: str | Task, *, root: str | os.PathLike[str] | None = None) -> list[tuple[str, str]]:
    """(lang, split) pairs with local files under ``root`` (default: vendored data)."""
    t = get_task(task) if isinstance(task, str) else task
    base = Path(root) if root is not None else data_root()
    return [(lang, split) for lang in t.languages for split in t.splits if t.resolve_local(base, lang, split)]
