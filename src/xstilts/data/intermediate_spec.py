"""Intermediate-task datasets as specs: which task, which languages with what weight, how many
examples, and where each language's data comes from.

Size matching: :func:`matched_multilingual` gives the multilingual condition exactly the
English condition's size. For parallel data (XNLI dev/test: the same 2,490/5,010 items in
15 languages) :func:`build_examples` picks the *same items* for both conditions (the item
draw depends only on the seed) and then draws one language per item from the spec's
weights, so the conditions differ only in language.
"""
from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Literal

import numpy as np

from xstilts.data.examples import Example
from xstilts.errors import XstiltsError
from xstilts.tasks import get_task

SourceKind = Literal["english_original", "machine_translated_train", "native", "human_translated_parallel"]
SOURCE_KINDS: tuple[str, ...] = ("english_original", "machine_translated_train", "native", "human_translated_parallel")


@dataclass(frozen=True)
class LanguageSource:
    """One language of an intermediate dataset."""

    lang: str
    weight: float = 1.0
    kind: SourceKind = "english_original"
    split: str = "train"
    source: str | None = None  # passed to load_examples: None, "local", "hub" or a directory


@dataclass(frozen=True)
class IntermediateSpec:
    """Task + languages (with sampling weights and sources) + size + seed."""

    task: str
    languages: tuple[LanguageSource, ...]
    size: int | None  # None: as many items as the English source has (its full split)
    seed: int = 0
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        task = get_task(self.task)
        if not self.languages:
            raise XstiltsError(f"intermediate spec for {self.task}: at least one language is needed")
        seen = set()
        for src in self.languages:
            task.check_language(src.lang)
            task.check_split(src.split)
            if src.kind not in SOURCE_KINDS:
                raise XstiltsError(f"intermediate spec for {self.task}: unknown source kind {src.kind!r}; "
                                   f"valid: {', '.join(SOURCE_KINDS)}")
            if not src.weight > 0:
                raise XstiltsError(f"intermediate spec for {self.task}: weight of {src.lang} must be > 0")
            if src.lang in seen:
                raise XstiltsError(f"intermediate spec for {self.task}: language {src.lang} listed twice")
            seen.add(src.lang)
        if self.size is not None and self.size <= 0:
            raise XstiltsError(f"intermediate spec for {self.task}: size must be positive, got {self.size}")

    @property
    def includes_english(self) -> bool:
        return any(s.lang == "en" for s in self.languages)

    @property
    def is_parallel(self) -> bool:
        """Every language reads the same split of a task whose languages are translations."""
        return get_task(self.task).parallel and len({s.split for s in self.languages}) == 1 and all(
            s.kind == "human_translated_parallel" for s in self.languages)

    def probabilities(self) -> dict[str, float]:
        total = sum(s.weight for s in self.languages)
        return {s.lang: s.weight / total for s in self.languages}

    def to_dict(self) -> dict:
        d = asdict(self)
        d.pop("name")
        return d

    def stable_hash(self) -> str:
        """16 hex digits of sha256 over the canonical JSON (order of languages kept: it fixes the draw)."""
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:16]


def english_spec(task: str, size: int, *, split: str = "train", seed: int = 0,
                 kind: SourceKind = "english_original", source: str | None = None) -> IntermediateSpec:
    """The English-only condition."""
    return IntermediateSpec(task, (LanguageSource("en", 1.0, kind, split, source),), size, seed, name=f"{task}-en")


def matched_multilingual(english: IntermediateSpec, weights: Mapping[str, float], *, kind: SourceKind,
                         include_english: bool = True, split: str | None = None,
                         source: str | None = None) -> IntermediateSpec:
    """The multilingual condition with the English condition's size and seed.

    ``include_english`` decides whether English stays among the languages (it is a spec
    value, not implied): when False any ``"en"`` key in ``weights`` is dropped.
    """
    base = english.languages[0]
    langs = tuple(
        LanguageSource(lang, w, "english_original" if lang == "en" and kind != "human_translated_parallel" else kind,
                       split or base.split, source if source is not None else base.source)
        for lang, w in weights.items() if include_english or lang != "en")
    return IntermediateSpec(english.task, langs, english.size, english.seed, name=f"{english.task}-multi")


def allocate(size: int, probabilities: Mapping[str, float]) -> dict[str, int]:
    """Largest-remainder split of ``size`` into per-language counts (sums to ``size``)."""
    langs = list(probabilities)
    raw = np.array([probabilities[lang] * size for lang in langs])
    counts = np.floor(raw).astype(int)
    for i in np.argsort(-(raw - counts), kind="stable")[: size - int(counts.sum())]:
        counts[i] += 1
    return {lang: int(c) for lang, c in zip(langs, counts)}


def _load(spec: IntermediateSpec, src: LanguageSource) -> list[Example]:
    from xstilts.data.loading import load_examples
    return load_examples(spec.task, src.lang, src.split, source=src.source)


def item_indices(n_items: int, size: int | None, seed: int) -> np.ndarray:
    """Which items of an ``n_items`` parallel set a spec of ``size`` uses (seed-determined only;
    ``None``: all of them)."""
    if size is None:
        return np.arange(n_items)
    if size > n_items:
        raise XstiltsError(f"intermediate size {size} exceeds the {n_items} parallel items available")
    return np.sort(np.random.default_rng([seed, 0]).permutation(n_items)[:size])


def draw_languages(spec: IntermediateSpec, n: int) -> list[str]:
    """One language per item, drawn i.i.d. from the spec's weights (seeded, separate stream)."""
    probs = spec.probabilities()
    langs = list(probs)
    picks = np.random.default_rng([spec.seed, 1]).choice(len(langs), size=n, p=[probs[lang] for lang in langs])
    return [langs[i] for i in picks]


def build_examples(spec: IntermediateSpec,
                   loaded: Mapping[str, Sequence[Example]] | None = None) -> list[Example]:
    """The spec's training examples.

    ``loaded`` maps language -> examples (for tests or callers that already hold them);
    missing languages are read with :func:`xstilts.data.loading.load_examples`.
    Parallel specs: items chosen by :func:`item_indices`, language per item by
    :func:`draw_languages`. Otherwise: per-language counts by :func:`allocate`, each a
    seeded sample without replacement from that language's data.
    """
    data = {s.lang: list(loaded[s.lang]) if loaded and s.lang in loaded else _load(spec, s) for s in spec.languages}
    if spec.is_parallel or len(spec.languages) == 1 and get_task(spec.task).parallel:
        sizes = {lang: len(v) for lang, v in data.items()}
        if len(set(sizes.values())) != 1:
            raise XstiltsError(f"parallel data of {spec.task} has different sizes per language: {sizes}")
        n_items = next(iter(sizes.values()))
        idx = item_indices(n_items, spec.size, spec.seed)
        chosen = draw_languages(spec, len(idx))
        return [data[lang][i] for i, lang in zip(idx, chosen)]
    out: list[Example] = []
    for k, (lang, count) in enumerate(allocate(_resolved_size(spec, data), spec.probabilities()).items()):
        pool = data[lang]
        if count > len(pool):
            raise XstiltsError(f"{spec.task}/{lang}: spec needs {count} examples, the data has {len(pool)}")
        pick = np.sort(np.random.default_rng([spec.seed, 2, k]).permutation(len(pool))[:count])
        out.extend(pool[i] for i in pick)
    return out


def _resolved_size(spec: IntermediateSpec, data: Mapping[str, Sequence[Example]]) -> int:
    """The spec's size; for ``size=None`` the English source's full size (so a multilingual
    spec derived from a full English one still matches it in size)."""
    if spec.size is not None:
        return spec.size
    if "en" in data:
        return len(data["en"])
    first = spec.languages[0]
    from xstilts.data.loading import load_examples

    return len(load_examples(spec.task, "en", first.split, source=first.source))


def spec_from_dict(data: Mapping) -> IntermediateSpec:
    """Inverse of :meth:`IntermediateSpec.to_dict` (as stored in a run config)."""
    langs = tuple(LanguageSource(**dict(s)) for s in data["languages"])
    size = None if data["size"] is None else int(data["size"])
    return IntermediateSpec(data["task"], langs, size, int(data.get("seed", 0)), name=data.get("name", ""))
