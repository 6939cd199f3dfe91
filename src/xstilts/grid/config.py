"""The grid config: one YAML file describes the whole comparison.

Conditions: ``none`` (no intermediate training), ``en`` (English intermediate
data), ``multi`` (the same number of items in the languages the spec draws; with
parallel data the same items), ``en+mlm`` (English intermediate data plus masked
LM on multilingual text, when ``mlm`` is configured). Seeds are paired: seed s of
every condition uses the same items and the same initial head.

Intermediate settings are an axis: ``intermediate:`` is one mapping (the single
intermediate task of older grids, i.e. a one-element list) or a list of them, each a
task (or a mixture of tasks, ``mixed_with``) with its English and multilingual data
specs. The grid crosses intermediate x condition x seed x target; ``none`` does not
depend on the intermediate and is planned once per seed when the grid lists it.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from xstilts.config import (CONDITIONS, MLMConfig, TrainingArgs, as_section, as_sections, check_types,
                            load_yaml_mapping)
from xstilts.errors import XstiltsError
from xstilts.tuning.config import TuningConfig


@dataclass
class IntermediateData:
    """One intermediate task's data: the English spec (``task``/``split``/``size``) and the
    size-matched multilingual one (``languages``, read from ``multi_split``/``multi_source``
    when they differ from the English data's, e.g. translate-train sets on the Hub)."""

    task: str = "xnli"
    split: str = "dev"
    size: int | None = 500  # items (None: the full English split); the multilingual condition gets as many
    source_kind: str = "human_translated_parallel"  # XNLI dev: the same items translated
    languages: list[str] = field(default_factory=list)  # multi: languages drawn per item (empty = all of the task's)
    include_english: bool = True  # whether English is among the multi languages
    source: str | None = None  # English data: None (vendored, else Hub), "local", "hub" or a directory
    multi_split: str | None = None  # multi: another split (None: ``split``)
    multi_source: str | None = None  # multi: another source (None: ``source``)


#: IntermediateGrid fields newer than the single-intermediate grid; left at these
#: defaults they are not hashed, so older grids keep their grid_hash.
_NEW_INTERMEDIATE_DEFAULTS = {"name": "", "source": None, "multi_split": None, "multi_source": None,
                              "mixed_with": [], "mixture": "proportional", "temperature": 2.0, "conditions": None}


@dataclass
class IntermediateGrid(IntermediateData):
    """One value of the intermediate axis: a task, or a mixture of tasks (``mixed_with``)
    trained together, with its own selection, training values and conditions."""

    name: str = ""  # label in the table and report; default: the task names joined by '+'
    mixed_with: list[IntermediateData] = field(default_factory=list)  # further tasks of a mixture
    mixture: str = "proportional"  # how a mixture samples its tasks (or "temperature")
    temperature: float = 2.0
    conditions: list[str] | None = None  # which of the grid's conditions it takes (None: all; none is shared)
    selection: str = "last"  # no held-out intermediate dev data in the default grid
    training: TrainingArgs = field(default_factory=TrainingArgs)

    def __post_init__(self) -> None:
        self.training = as_section(TrainingArgs, self.training, "intermediate.training")
        self.mixed_with = as_sections(IntermediateData, self.mixed_with, "intermediate.mixed_with")

    @property
    def label(self) -> str:
        return self.name or "+".join(d.task for d in self.data)

    @property
    def data(self) -> list[IntermediateData]:
        """The task data of this intermediate model, the first task first."""
        own = IntermediateData(**{f.name: getattr(self, f.name) for f in fields(IntermediateData)})
        return [own, *self.mixed_with]

    def hash_view(self) -> dict[str, Any]:
        d = asdict(self)
        d["training"].pop("device")  # where it trains is no part of the grid (see runtime.device)
        return {k: v for k, v in d.items() if k not in _NEW_INTERMEDIATE_DEFAULTS or v != _NEW_INTERMEDIATE_DEFAULTS[k]}


@dataclass
class TargetGrid:
    task: str
    train_task: str | None = None  # default: the task itself, or its registered train_task (xquad -> squad)
    max_train_examples: int | None = 1000
    max_dev_examples: int | None = 300  # English dev for model selection (None: all of it)
    eval_split: str | None = None  # None: the split with local data
    eval_langs: list[str] | None = None  # None: every language with data
    max_eval_examples: int | None = 200
    selection: str = "english_dev"
    training: TrainingArgs = field(default_factory=TrainingArgs)
    source: str | None = None  # training data: None (vendored, else Hub), "local", "hub" or a directory

    def __post_init__(self) -> None:
        self.training = as_section(TrainingArgs, self.training, f"targets ({self.task}).training")


@dataclass
class GridConfig:
    name: str = "grid"
    base_model: str = "default"
    num_hidden_layers: int | None = None
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    conditions: list[str] = field(default_factory=lambda: ["none", "en", "multi"])
    intermediate: IntermediateGrid | list[IntermediateGrid] = field(default_factory=IntermediateGrid)
    targets: list[TargetGrid] = field(default_factory=list)
    mlm: MLMConfig | None = None
    experiment: str = ""  # the MLflow experiment; empty: xstilts-NAME (named after the grid)
    output_dir: str = "grid-output"
    resource_groups: str | None = None  # CSV language,class overriding the Joshi et al. classes
    threads: int = 0
    device: str = "auto"  # auto, cpu, cuda or cuda:N: every job's, like threads (xstilts.runtime.device)
    tuning: TuningConfig | None = None  # Optuna tuning of each target before its cells train (off by default)
    datasets: list[dict] = field(default_factory=list)  # declared datasets (xstilts.tasks.declared)

    def __post_init__(self) -> None:
        self.experiment = self.experiment or f"xstilts-{self.name}"
        if isinstance(self.intermediate, list):
            self.intermediate = as_sections(IntermediateGrid, self.intermediate, "intermediate")
        else:
            self.intermediate = as_section(IntermediateGrid, self.intermediate, "intermediate")
        self.targets = as_sections(TargetGrid, self.targets, "targets")
        if self.mlm is not None:
            self.mlm = as_section(MLMConfig, self.mlm, "mlm")
        if isinstance(self.tuning, dict):
            self.tuning = TuningConfig.from_dict(self.tuning, source="grid config tuning")
        elif self.tuning is not None:
            self.tuning = as_section(TuningConfig, self.tuning, "tuning")

    @property
    def intermediates(self) -> list[IntermediateGrid]:
        """The intermediate axis (a single ``intermediate:`` mapping is a one-element list)."""
        return self.intermediate if isinstance(self.intermediate, list) else [self.intermediate]

    def conditions_of(self, inter: IntermediateGrid) -> list[str]:
        """The grid's conditions that ``inter`` takes, in the grid's order."""
        return [c for c in self.conditions if inter.conditions is None or c in inter.conditions]

    @property
    def tunes(self) -> bool:
        """Whether the grid tunes its targets' (and, with ``tuning.intermediate``, its intermediate
        phase's) hyperparameters before training them."""
        return self.tuning is not None and self.tuning.enabled

    @classmethod
    def from_file(cls, path: str | Path) -> GridConfig:
        data = load_yaml_mapping(path, "grid config")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise XstiltsError(f"{path}: unknown field(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
        if data.get("datasets"):  # declared before the task names below are checked; paths relative to the file
            from xstilts.tasks.declared import declare_datasets

            data["datasets"] = declare_datasets(data["datasets"], base_dir=Path(path).parent,
                                                source=f"{path}: datasets")
        try:
            cfg = cls(**data)
        except (TypeError, XstiltsError) as exc:  # a section of the wrong shape (see _as)
            raise XstiltsError(f"{path}: {exc}") from None
        return cfg.validate(source=str(path))

    def validate(self, source: str = "grid config") -> GridConfig:
        from xstilts.tasks import get_task
        from xstilts.tasks.declared import declare_datasets

        check_types(self, source)
        self.datasets = declare_datasets(self.datasets, source=f"{source}: datasets")

        for c in self.conditions:
            if c not in CONDITIONS:
                raise XstiltsError(f"{source}: condition {c!r}; valid: {', '.join(CONDITIONS)}")
        from xstilts.runtime.device import check_device_setting

        check_device_setting(self.device, f"{source}: device")
        if "en+mlm" in self.conditions and self.mlm is None:
            raise XstiltsError(f"{source}: condition en+mlm needs an mlm section")
        if not self.seeds:
            raise XstiltsError(f"{source}: seeds: at least one seed is needed")
        if not self.targets:
            raise XstiltsError(f"{source}: targets: at least one target task is needed")
        _validate_intermediates(self, source)
        for i, t in enumerate(self.targets):
            task = get_task(t.task)
            if task.kind != "target":
                raise XstiltsError(f"{source}: targets: {t.task} is not a target task")
            _check_selection(t.selection, f"{source}: targets[{i}].selection")
            t.training.check(f"{source}: targets[{i}].training")
            for lang in t.eval_langs or []:
                task.check_language(lang)
        if self.tuning is not None:
            self.tuning.validate(source=f"{source}: tuning")
            trained = {train_task_name(t) for t in self.targets}
            if self.tuning.intermediate:
                trained |= {d.task for inter in self.intermediates for d in inter.data}
            owners = trained | {get_task(name).family.name for name in trained}
            for name in self.tuning.spaces:
                if name not in owners:
                    raise XstiltsError(f"{source}: tuning.spaces.{name}: neither a tuned task of this grid "
                                       f"nor the family of one ({', '.join(sorted(owners))})")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def grid_hash(self) -> str:
        d = self.to_dict()
        views = [i.hash_view() for i in self.intermediates]
        d["intermediate"] = views[0] if len(views) == 1 else views  # [x] and x are the same grid
        for k in ("output_dir", "threads", "device", "experiment"):  # execution settings, not the study
            d.pop(k)
        if d["tuning"] is None:
            d.pop("tuning")  # grids without tuning keep the hash they had
        elif not d["tuning"]["intermediate"]:
            d["tuning"].pop("intermediate")  # and so do grids that tune only their targets
        for t in d["targets"]:
            t["training"].pop("device")
            if t["source"] is None:
                t.pop("source")  # and so do targets that read the default source
        if not d["datasets"]:
            d.pop("datasets")  # likewise grids without declared datasets
        else:
            from xstilts.tasks.declared import fingerprint

            d["datasets"] = sorted(fingerprint(x) for x in d["datasets"])
        return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:12]


def train_task_name(target: TargetGrid) -> str:
    """The task a target trains on (the task itself, or its registered train_task: xquad -> squad)."""
    from xstilts.tasks import get_task

    return target.train_task or get_task(target.task).train_task or target.task


def _validate_intermediates(cfg: GridConfig, source: str) -> None:
    """Names unique, conditions known, tasks and languages valid, and a ``multi`` condition
    only where the multilingual data differs from the English data."""
    from xstilts.tasks import get_task

    inters = cfg.intermediates
    if not inters:
        raise XstiltsError(f"{source}: intermediate: at least one intermediate setting is needed")
    labels = [i.label for i in inters]
    for k, inter in enumerate(inters):
        where = f"{source}: intermediate[{k}] ({inter.label})"
        if inter.label == "none" or labels.count(inter.label) > 1:
            raise XstiltsError(f"{where}: name {inter.label!r} is reserved or used twice; give each a distinct `name`")
        for c in inter.conditions or []:
            if c not in cfg.conditions:
                raise XstiltsError(f"{where}: conditions: {c!r} is not among the grid's conditions {cfg.conditions}")
        if inter.mixture not in ("proportional", "temperature"):
            raise XstiltsError(f"{where}: mixture: {inter.mixture!r}; valid: proportional, temperature")
        _check_selection(inter.selection, f"{where}: selection")
        inter.training.check(f"{where}: training")
        for d in inter.data:
            task = get_task(d.task)
            for lang in d.languages:
                task.check_language(lang)
            task.check_split(d.split)
            if d.multi_split:
                task.check_split(d.multi_split)
        if "multi" in cfg.conditions_of(inter) and all(multi_is_english(d) for d in inter.data):
            raise XstiltsError(f"{where}: condition multi needs multilingual data (with these settings "
                               f"{', '.join(d.task for d in inter.data)} have only English); set `languages` "
                               f"or `multi_split`, or `conditions` without multi")


def multi_is_english(d: IntermediateData) -> bool:
    """Whether ``d``'s multilingual spec would be its English one (an English-only task):
    in a mixture's ``multi`` condition such a task keeps its English data."""
    from xstilts.tasks import get_task

    langs = set(d.languages or get_task(d.task).languages)
    return langs <= {"en"} and (d.multi_split or d.split) == d.split and d.multi_source == d.source


def _check_selection(policy: str, where: str) -> None:
    from xstilts.config import SELECTION_POLICIES

    if policy not in SELECTION_POLICIES:
        raise XstiltsError(f"{where}: {policy!r}; valid: {', '.join(SELECTION_POLICIES)}")
