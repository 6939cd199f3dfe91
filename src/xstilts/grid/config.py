"""The grid config: one YAML file describes the whole comparison.

Conditions: ``none`` (no intermediate training), ``en`` (English intermediate
data), ``multi`` (the same number of items in the languages the spec draws; with
parallel data the same items), ``en+mlm`` (English intermediate data plus masked
LM on multilingual text, when ``mlm`` is configured). Seeds are paired: seed s of
every condition uses the same items and the same initial head.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from xstilts.config import CONDITIONS, MLMConfig, TrainingArgs, load_yaml_mapping
from xstilts.errors import XstiltsError
from xstilts.tuning.config import TuningConfig


@dataclass
class IntermediateGrid:
    task: str = "xnli"
    split: str = "dev"
    size: int = 500  # items; the multilingual condition gets exactly as many
    source_kind: str = "human_translated_parallel"  # XNLI dev: the same items translated
    languages: list[str] = field(default_factory=list)  # multi: languages drawn per item (empty = all of the task's)
    include_english: bool = True  # whether English is among the multi languages
    selection: str = "last"  # no held-out intermediate dev data in the default grid
    training: TrainingArgs = field(default_factory=TrainingArgs)


@dataclass
class TargetGrid:
    task: str
    train_task: str | None = None  # default: the task itself, or its registered train_task (xquad -> squad)
    max_train_examples: int | None = 1000
    max_dev_examples: int = 300  # English dev for model selection
    eval_split: str | None = None  # None: the split with local data
    eval_langs: list[str] | None = None  # None: every language with data
    max_eval_examples: int | None = 200
    selection: str = "english_dev"
    training: TrainingArgs = field(default_factory=TrainingArgs)


@dataclass
class GridConfig:
    name: str = "grid"
    base_model: str = "default"
    num_hidden_layers: int | None = None
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    conditions: list[str] = field(default_factory=lambda: ["none", "en", "multi"])
    intermediate: IntermediateGrid = field(default_factory=IntermediateGrid)
    targets: list[TargetGrid] = field(default_factory=list)
    mlm: MLMConfig | None = None
    experiment: str = "xstilts-grid"
    output_dir: str = "grid-output"
    resource_groups: str | None = None  # CSV language,class overriding the Joshi et al. classes
    threads: int = 0
    tuning: TuningConfig | None = None  # Optuna tuning of each target before its cells train (off by default)
    datasets: list[dict] = field(default_factory=list)  # declared datasets (xstilts.tasks.declared)

    def __post_init__(self) -> None:
        if isinstance(self.intermediate, dict):
            data = dict(self.intermediate)
            data["training"] = TrainingArgs(**data.get("training", {}))
            self.intermediate = IntermediateGrid(**data)
        targets = []
        for t in self.targets:
            if isinstance(t, dict):
                t = dict(t)
                t["training"] = TrainingArgs(**t.get("training", {}))
                t = TargetGrid(**t)
            targets.append(t)
        self.targets = targets
        if isinstance(self.mlm, dict):
            self.mlm = MLMConfig(**self.mlm)
        if isinstance(self.tuning, dict):
            self.tuning = TuningConfig.from_dict(self.tuning, source="grid config tuning")

    @property
    def tunes(self) -> bool:
        """Whether the grid tunes its targets' hyperparameters before training them."""
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
            return cls(**data).validate(source=str(path))
        except TypeError as exc:
            raise XstiltsError(f"{path}: {exc}") from None

    def validate(self, source: str = "grid config") -> GridConfig:
        from xstilts.tasks import get_task
        from xstilts.tasks.declared import declare_datasets

        self.datasets = declare_datasets(self.datasets, source=f"{source}: datasets")

        for c in self.conditions:
            if c not in CONDITIONS:
                raise XstiltsError(f"{source}: condition {c!r}; valid: {', '.join(CONDITIONS)}")
        if "en+mlm" in self.conditions and self.mlm is None:
            raise XstiltsError(f"{source}: condition en+mlm needs an mlm section")
        if not self.seeds:
            raise XstiltsError(f"{source}: seeds: at least one seed is needed")
        if not self.targets:
            raise XstiltsError(f"{source}: targets: at least one target task is needed")
        inter = get_task(self.intermediate.task)
        for lang in self.intermediate.languages:
            inter.check_language(lang)
        for t in self.targets:
            task = get_task(t.task)
            if task.kind != "target":
                raise XstiltsError(f"{source}: targets: {t.task} is not a target task")
            for lang in t.eval_langs or []:
                task.check_language(lang)
        if self.tuning is not None:
            self.tuning.validate(source=f"{source}: tuning")
            for task in self.tuning.spaces:
                if task not in {train_task_name(t) for t in self.targets}:
                    raise XstiltsError(f"{source}: tuning.spaces.{task}: not a trained target task of this grid")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def grid_hash(self) -> str:
        d = self.to_dict()
        for k in ("output_dir", "threads", "experiment"):
            d.pop(k)
        if d["tuning"] is None:
            d.pop("tuning")  # grids without tuning keep the hash they had
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
