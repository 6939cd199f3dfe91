"""Datasets declared in a config, without code: checked, then registered as tasks.

A grid or phase config may carry ``datasets:``, a list of declarations. Each one is
either a new dataset::

    - name: wolof-pos                 # the task name it registers under
      family: tagging                 # a family object's name (xstilts.families)
      format: conllu                  # tsv, csv, jsonl, text, conll, conllu, squad
      fields: {tag: UPOS}             # where each record field sits (see the family)
      labels: udpos                   # a list, or a registered task whose labels to reuse
      languages:
        wo: {test: data/declared/wolof-wtb/wo_wtb-ud-test.conllu}   # split -> file(s)
      license: CC BY-SA 4.0
      train_task: udpos               # target: what the English training data is
      metric: xtreme_pos_f1

or more languages for a registered task (``extends: xnli``; the task's own languages
and files stay, the declared ones are added under the new name). A dataset can instead
name a Hub source (``hub: {path, name, splits: {test: validation}}``, ``{lang}`` in
``name`` is replaced); without internet its loading fails with the usual message.

Everything is checked before anything is registered, and every declared file is read
once through its reader, so an unknown family, a missing field, a missing file or a
label outside the set is one error naming the declaration (and file:line), before any
training. Each declared language needs a Joshi et al. class: from the shipped mapping
(:mod:`xstilts.analysis.resource_groups`) or the declaration's ``resource_classes``.
Registration goes through :func:`~xstilts.tasks.registry.register_task`, like the
built-in tasks; declaring the same dataset again is a no-op, declaring another one
under a taken name is an error. The normalized declaration (absolute paths, each file's
sha256) is what configs record, and its :func:`fingerprint` (content, not paths) is
what run keys and evaluation keys include.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from xstilts.errors import XstiltsError
from xstilts.families import TASK_FAMILIES, TaskFamily
from xstilts.tasks._families import SentenceTask, SpanQATask, TaggingTask
from xstilts.tasks.registry import HubRef, Task, get_task, register_task, task_names

KEYS = ("name", "family", "format", "fields", "labels", "label_map", "languages", "splits", "license",
        "kind", "metric", "parallel", "train_task", "resource_classes", "extends", "hub", "header",
        "delimiter", "description", "tag_alignment")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")  # also a head (torch module) name: no dots
_TASK_BASES = (SentenceTask, TaggingTask, SpanQATask)

_DECLARED: dict[str, tuple[str, dict[str, Any]]] = {}  # name -> (fingerprint, normalized declaration)


class DeclarationError(XstiltsError):
    """A dataset declaration is invalid; the message names the declaration and the field."""


def _declarable() -> dict[str, TaskFamily]:
    return {f.name: f for f in TASK_FAMILIES if f.declared_formats}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _files(where: str, value: Any, base_dir: Path) -> list[dict[str, str]]:
    paths = value if isinstance(value, list) else [value]
    recorded = [p.get("sha256") if isinstance(p, dict) else None for p in paths]  # a config's recorded form
    paths = [p.get("path") if isinstance(p, dict) else p for p in paths]
    if not paths or not all(isinstance(p, str) and p for p in paths):
        raise DeclarationError(f"{where}: expected a file path or a list of paths, got {value!r}")
    out = []
    for p, sha in zip(paths, recorded):
        path = (base_dir / p).resolve()
        if not path.is_file():
            raise DeclarationError(f"{where}: file not found: {path}")
        digest = _sha256(path)
        if sha is not None and sha != digest:
            raise DeclarationError(f"{where}: {path} changed since the config recorded it (sha256 {sha[:12]}...)")
        out.append({"path": str(path), "sha256": digest})
    return out


def _languages(where: str, raw: Any, base_dir: Path, has_hub: bool) -> dict[str, dict[str, list]]:
    """``{lang: {split: [{path, sha256}]}}``; with a Hub source a plain list of languages is enough."""
    if has_hub and isinstance(raw, list):
        raw = {lang: {} for lang in raw}
    if not isinstance(raw, dict) or not raw:
        raise DeclarationError(f"{where}: expected a mapping language -> {{split: file(s)}}, got {raw!r}")
    out: dict[str, dict[str, list]] = {}
    for lang, splits in raw.items():
        if not isinstance(lang, str) or not _NAME.match(lang):
            raise DeclarationError(f"{where}: language code {lang!r}: use lower-case letters, digits, _ and -")
        if not isinstance(splits, dict) or (not splits and not has_hub):
            raise DeclarationError(f"{where}.{lang}: expected a mapping split -> file(s), got {splits!r}")
        out[lang] = {str(s): _files(f"{where}.{lang}.{s}", v, base_dir) for s, v in splits.items()}
    return out


def _labels(where: str, raw: Any) -> list[str] | None:
    if raw is None:
        return None
    if isinstance(raw, str):
        labels = get_task(raw).labels  # UnknownNameError lists the tasks
        if not labels:
            raise DeclarationError(f"{where}: task {raw} has no label set to reuse")
        return list(labels)
    if not isinstance(raw, list) or not raw or len(set(map(str, raw))) != len(raw):
        raise DeclarationError(f"{where}: expected a list of distinct labels or a task name, got {raw!r}")
    return [str(x) for x in raw]


def _family(where: str, raw: dict[str, Any], base: Task | None) -> TaskFamily:
    if base is not None:
        if "family" in raw and _declarable().get(raw["family"]) is not base.family:
            raise DeclarationError(f"{where}.family: {raw['family']!r}, but {base.name} is {base.family.name}")
        return base.family
    if "family" not in raw:
        raise DeclarationError(f"{where}: missing field 'family' (one of {', '.join(_declarable())})")
    families = _declarable()
    if raw["family"] not in families:
        raise DeclarationError(f"{where}.family: unknown family {raw['family']!r}; declarable families: "
                               f"{', '.join(families)}")
    return families[raw["family"]]


def _fields(where: str, family: TaskFamily, fmt: str, raw: Any, labelled: bool) -> dict[str, Any]:
    fields = dict(raw or {})
    required, optional = family.declared_formats[fmt]
    needed = list(required) + (["label"] if labelled and "label" in optional else [])
    missing = [f for f in needed if f not in fields]
    if missing:
        raise DeclarationError(f"{where}.fields: missing field {', '.join(missing)}: a {family.name} dataset "
                               f"in {fmt} format needs {', '.join(needed)}"
                               + (f" (optional: {', '.join(o for o in optional if o not in needed)})" if optional else ""))
    unknown = sorted(set(fields) - set(required) - set(optional))
    if unknown:
        raise DeclarationError(f"{where}.fields: unknown field(s) {', '.join(unknown)} for {family.name}/{fmt}; "
                               f"valid: {', '.join((*required, *optional)) or 'none'}")
    return fields


def _format(where: str, raw: dict[str, Any], family: TaskFamily, needed: bool) -> str | None:
    fmt = raw.get("format")
    if fmt is None:
        if needed:
            raise DeclarationError(f"{where}: missing field 'format' (for {family.name}: "
                                   f"{', '.join(family.declared_formats)})")
        return None
    if fmt not in family.declared_formats:
        raise DeclarationError(f"{where}.format: {fmt!r} is not a {family.name} format; valid: "
                               f"{', '.join(family.declared_formats)}")
    return str(fmt)


def _hub(where: str, raw: Any) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict) or "path" not in raw or not isinstance(raw.get("splits"), dict):
        raise DeclarationError(f"{where}.hub: expected {{path: ID, name: CONFIG (may use {{lang}}), "
                               f"splits: {{split: hub split}}}}, got {raw!r}")
    return {"path": str(raw["path"]), "name": raw.get("name"), "splits": {str(k): str(v) for k, v in raw["splits"].items()}}


def _resource_classes(where: str, raw: Any, languages: Iterable[str]) -> dict[str, int]:
    """The declaration's classes, and a check that every declared language has one somewhere."""
    from xstilts.analysis.resource_groups import known_class

    given = dict(raw or {})
    for lang, cls in given.items():
        if not isinstance(cls, int) or not 0 <= cls <= 5:
            raise DeclarationError(f"{where}.resource_classes.{lang}: a Joshi et al. class 0-5, got {cls!r}")
    for lang in languages:
        if lang not in given and known_class(lang) is None:
            raise DeclarationError(
                f"{where}: language {lang!r} has no Joshi et al. (2020) class in the shipped mapping "
                f"(xstilts.analysis.resource_groups); give it: resource_classes: {{{lang}: N}} with N in 0-5")
    return given


def normalize(raw: Mapping[str, Any], *, base_dir: Path, where: str) -> dict[str, Any]:
    """One declaration checked and in its recorded form (see the module docstring)."""
    if not isinstance(raw, Mapping):
        raise DeclarationError(f"{where}: expected a mapping of declaration fields, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(KEYS))
    if unknown:
        raise DeclarationError(f"{where}: unknown field(s) {', '.join(unknown)}; valid: {', '.join(KEYS)}")
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise DeclarationError(f"{where}: field 'name' must be a task name (lower-case letters, digits, _ and -), "
                               f"got {name!r}")
    where = f"{where} ({name})"
    base = get_task(raw["extends"]) if raw.get("extends") else None
    if base is not None and raw["extends"] in _DECLARED:
        raise DeclarationError(f"{where}.extends: {raw['extends']} is itself declared; extend a built-in task")
    family = _family(where, raw, base)
    hub = _hub(where, raw.get("hub"))
    # an extension may only change how its base is used (tag_alignment) and declare no language
    languages = {} if base is not None and raw.get("languages") is None else _languages(
        f"{where}.languages", raw.get("languages"), base_dir, hub is not None)
    has_files = any(files for splits in languages.values() for files in splits.values())
    fmt = _format(where, raw, family, needed=has_files)
    labels = _labels(f"{where}.labels", raw["labels"]) if "labels" in raw else (
        list(base.labels) if base is not None and base.labels else None)
    if labels is None and fmt is not None and _takes_labels(family, fmt, raw.get("fields") or {}):
        raise DeclarationError(f"{where}: missing field 'labels' (a list, or a task whose labels to reuse)")
    fields = _fields(where, family, fmt, raw.get("fields"), labels is not None) if fmt else {}
    new_langs = [lang for lang in languages if base is None or lang not in base.languages]
    return {"name": name, "family": family.name, "format": fmt, "extends": base.name if base else None,
            "fields": fields, "labels": labels, "label_map": dict(raw.get("label_map") or {}),
            "languages": languages, "hub": hub, "splits": _splits(where, raw, languages, hub, base),
            "license": str(raw.get("license") or "not stated"), "kind": _kind(where, raw, base),
            "metric": _metric(where, raw, family, base), "parallel": bool(raw.get("parallel", base.parallel if base else False)),
            "train_task": raw.get("train_task", base.train_task if base else None),
            "resource_classes": _resource_classes(where, raw.get("resource_classes"), new_langs),
            "header": bool(raw.get("header", True)), "delimiter": raw.get("delimiter"),
            "description": str(raw.get("description") or ""), "tag_alignment": _alignment(where, raw, family, base)}


def _takes_labels(family: TaskFamily, fmt: str, fields: Mapping[str, Any]) -> bool:
    """Whether the records carry tags, or a mapped label, to check against a label set
    (sentences without a label field are unlabelled text, e.g. for masked LM)."""
    tagged = any(f in ("tag", "tags") for group in family.declared_formats[fmt] for f in group)
    return tagged or "label" in fields


def _splits(where: str, raw, languages, hub, base: Task | None) -> list[str]:
    named = {s for splits in languages.values() for s in splits} | set((hub or {}).get("splits", {}))
    splits = [str(s) for s in raw.get("splits") or sorted(named | set(base.splits if base else ()))]
    missing = sorted(named - set(splits))
    if missing:
        raise DeclarationError(f"{where}.splits: files are declared for split(s) {', '.join(missing)} "
                               f"not among {', '.join(splits)}")
    return splits


def _kind(where: str, raw, base: Task | None) -> str:
    kind = raw.get("kind", base.kind if base else "target")
    if kind not in ("target", "intermediate"):
        raise DeclarationError(f"{where}.kind: {kind!r}; valid: target, intermediate")
    return str(kind)


def _metric(where: str, raw, family: TaskFamily, base: Task | None) -> str:
    from xstilts.evaluation.metrics.registry import metric_names

    metric = raw.get("metric", base.metric if base else family.default_metric)
    if metric not in metric_names():
        raise DeclarationError(f"{where}.metric: unknown metric {metric!r}; valid: {', '.join(metric_names())}")
    return str(metric)


def _alignment(where: str, raw, family: TaskFamily, base: Task | None) -> str | None:
    from xstilts.data.featurize.tagging import TAG_ALIGNMENTS

    if raw.get("tag_alignment") is None:
        return getattr(base, "tag_alignment", None)
    if raw["tag_alignment"] not in TAG_ALIGNMENTS or not hasattr(_task_base(family), "tag_alignment"):
        raise DeclarationError(f"{where}.tag_alignment: {raw['tag_alignment']!r}; a tagging dataset takes one of "
                               f"{', '.join(TAG_ALIGNMENTS)}")
    return str(raw["tag_alignment"])


# ---- the registered task ------------------------------------------------------------------------
def _task_base(family: TaskFamily) -> type[Task]:
    for base in _TASK_BASES:
        if base.family is family:
            return base
    raise DeclarationError(f"family {family.name} has no declarable task base")


class DeclaredTask(Task):
    """Mixed in before the family's (or the extended task's) class: declared files first."""

    declaration: ClassVar[dict[str, Any]]
    data_of: ClassVar[str | None] = None  # the registered task whose data an extension reuses

    def _declared(self, lang: str, split: str) -> list[Path]:
        return [Path(f["path"]) for f in self.declaration["languages"].get(lang, {}).get(split, [])]

    def local_patterns(self, lang: str, split: str) -> list[str]:
        declared = [str(p) for p in self._declared(lang, split)]
        if declared or self.data_of is None:
            return declared
        return super().local_patterns(lang, split)

    def resolve_local(self, root: Path, lang: str, split: str) -> list[Path]:
        declared = self._declared(lang, split)
        if declared or self.data_of is None or lang in self.declaration["languages"]:
            return declared
        return super().resolve_local(root, lang, split)

    def read_files(self, files: Sequence[Path], lang: str, split: str):
        if list(files) != self._declared(lang, split):
            return super().read_files(files, lang, split)
        d = self.declaration
        options = {"header": d["header"], "delimiter": d["delimiter"]}
        return [ex for f in files for ex in self.family.read_declared(
            d["format"], f, lang, fields=d["fields"], labels=self.labels, label_map=d["label_map"], options=options)]

    def hub_refs(self, lang: str, split: str) -> list[HubRef]:
        hub = self.declaration["hub"]
        if hub is None:
            if self.data_of is not None and lang not in self.declaration["languages"]:
                return super().hub_refs(lang, split)
            raise XstiltsError(f"task {self.name}: no file declared for {lang}/{split} and no Hub source")
        if split not in hub["splits"]:
            raise XstiltsError(f"task {self.name}: the Hub source names no split for {split!r}")
        name = hub["name"].format(lang=lang) if hub["name"] else None
        return [HubRef(hub["path"], name, hub["splits"][split])]


def _task_class(d: dict[str, Any]) -> type[Task]:
    base = type(get_task(d["extends"])) if d["extends"] else _task_base(_declarable()[d["family"]])
    inherited = tuple(get_task(d["extends"]).languages) if d["extends"] else ()
    languages = tuple(dict.fromkeys((*inherited, *d["languages"])))
    train_langs = tuple(lang for lang, splits in d["languages"].items() if "train" in splits)
    attrs: dict[str, Any] = {
        "name": d["name"], "kind": d["kind"], "languages": languages, "splits": tuple(d["splits"]),
        "labels": tuple(d["labels"]) if d["labels"] else None, "metric": d["metric"],
        "hub_id": d["hub"]["path"] if d["hub"] else (base.hub_id if d["extends"] else ""),
        "license": d["license"], "description": d["description"] or f"declared dataset ({d['format']})",
        "parallel": d["parallel"], "train_task": d["train_task"], "declaration": d, "data_of": d["extends"],
        "train_languages": tuple(dict.fromkeys((*(base.train_languages if d["extends"] else ()), *train_langs))),
        "__module__": __name__}
    if d["tag_alignment"] is not None:
        attrs["tag_alignment"] = d["tag_alignment"]
    for field, attr in (("text_a", "hub_text_a"), ("text_b", "hub_text_b"), ("label", "hub_label_field"),
                        ("guid", "hub_guid_field"), ("tags", "hub_tags_field")):
        if isinstance(d["fields"].get(field), str):
            attrs[attr] = d["fields"][field]
    return type(f"Declared[{d['name']}]", (DeclaredTask, base), attrs)


# ---- declaring ------------------------------------------------------------------------------------
def fingerprint(declaration: Mapping[str, Any]) -> str:
    """Hash of what a declaration means: its fields and its files' contents, not where they are."""
    d = dict(declaration)
    d["languages"] = {lang: {s: [f["sha256"] for f in files] for s, files in splits.items()}
                      for lang, splits in declaration["languages"].items()}
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _check_reads(task: Task) -> None:
    """Read every declared file once: format and label errors surface now, with file:line."""
    for lang, splits in task.declaration["languages"].items():
        for split, files in splits.items():
            records = task.read_files([Path(f["path"]) for f in files], lang, split)
            if not records:
                raise DeclarationError(f"dataset {task.name}: {lang}/{split} holds no records ({files[0]['path']})")


def declare_datasets(items: Iterable[Any] | None, *, base_dir: str | Path = ".",
                     source: str = "config datasets") -> list[dict[str, Any]]:
    """Check every declaration, then register each as a task; returns the normalized declarations.

    Relative paths are resolved against ``base_dir`` (the config file's folder). Nothing is
    registered unless every declaration is valid and every declared file reads cleanly.
    """
    if items is None:
        return []
    if not isinstance(items, list):
        raise DeclarationError(f"{source}: expected a list of dataset declarations, got {type(items).__name__}")
    normalized, names = [], set()
    for i, raw in enumerate(items):
        d = _already_declared(raw) or normalize(raw, base_dir=Path(base_dir), where=f"{source}[{i}]")
        if d["name"] in names:
            raise DeclarationError(f"{source}[{i}]: dataset {d['name']!r} is declared twice")
        names.add(d["name"])
        known = _DECLARED.get(d["name"])
        if known is None and d["name"] in task_names():
            raise DeclarationError(f"{source}[{i}]: {d['name']!r} is a built-in task; declare a new name "
                                   f"(extends: {d['name']} adds languages to it)")
        if known is not None and known[0] != fingerprint(d):
            raise DeclarationError(f"{source}[{i}]: a different dataset {d['name']!r} is already declared "
                                   "in this process; give this one another name")
        normalized.append(d)
    pending = [(d, _task_class(d)) for d in normalized if d["name"] not in _DECLARED]
    for _, cls in pending:
        _check_reads(cls())
    _register(pending)
    return normalized


def _already_declared(raw: Any) -> dict[str, Any] | None:
    """A recorded declaration this process has declared already (same fingerprint): no re-reading."""
    try:
        entry = _DECLARED.get(raw["name"])
        return entry[1] if entry is not None and fingerprint(raw) == entry[0] else None
    except (TypeError, KeyError, AttributeError):
        return None


def _register(pending: Sequence[tuple[dict[str, Any], type[Task]]]) -> None:
    from xstilts.analysis.resource_groups import declare_classes

    for d, _ in pending:
        declare_classes(d["resource_classes"], source=f"dataset {d['name']}")
    for d, cls in pending:
        register_task(cls)
        _DECLARED[d["name"]] = (fingerprint(d), d)


def declaration_of(task: str) -> dict[str, Any] | None:
    """The normalized declaration of a declared task (None for a built-in one)."""
    entry = _DECLARED.get(task)
    return entry[1] if entry else None


def declaration_fingerprint(task: str) -> str | None:
    """The fingerprint of a declared task (None for a built-in one): what evaluation keys include."""
    entry = _DECLARED.get(task)
    return entry[0] if entry else None


def declarations_for(tasks: Iterable[str | None]) -> list[dict[str, Any]]:
    """The declarations among ``tasks`` (and the tasks they train on), for a config to record."""
    out: dict[str, dict[str, Any]] = {}
    for name in tasks:
        d = declaration_of(name) if name else None
        if d is not None:
            out[d["name"]] = d
            train = declaration_of(d["train_task"]) if d["train_task"] else None
            if train is not None:
                out[train["name"]] = train
    return list(out.values())



def _forget_all() -> None:
    """Unregister every declared dataset (tests: each test starts from the built-in tasks)."""
    from xstilts.analysis import resource_groups
    from xstilts.tasks import registry

    for name in list(_DECLARED):
        registry._REGISTRY.pop(name, None)
        del _DECLARED[name]
    resource_groups._DECLARED_CLASS.clear()
