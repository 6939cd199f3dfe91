"""What a tuning request is: budget, pruner, scope, storage, sampler seed and space.

A :class:`TuningConfig` is the ``tuning:`` section of a grid config (or built by
``xstilts tune``). Together with the trial's base training config it is hashed
into a study key (:func:`study_key`), like a run config's ``run_key``: the same
request names the same study, so a rerun continues it (or finds it finished and
runs nothing) instead of starting over. The budget (``n_trials``, ``timeout``)
and where the study lives are not part of the key: asking for more trials of the
same study continues it.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from xstilts.errors import XstiltsError
from xstilts.tuning.space import ParamSpec, parse_space, space_to_dict

PRUNERS = ("median", "successive_halving", "hyperband", "none")
SCOPES = ("per_task", "per_condition")
TUNING_VERSION = 1  # bump when the objective changes what a trial measures


def default_storage() -> str:
    return f"sqlite:///{Path.cwd() / 'optuna.db'}"


@dataclass
class TuningConfig:
    """One tuning request (see the module docstring for what identifies its study)."""

    enabled: bool = False
    n_trials: int = 20                      # finished (complete or pruned) trials the study ends with
    timeout: float | None = None            # seconds this invocation may spend starting trials
    pruner: str = "median"
    scope: str = "per_task"                 # per_task: from the bare encoder; per_condition: each condition's
    intermediate: bool = False              # also tune the intermediate phase (on its task's English dev)
    storage: str | None = None              # any SQLAlchemy URL; None = sqlite:///./optuna.db
    study_name: str | None = None           # None = derived from the study key
    sampler_seed: int = 0
    space: dict[str, Any] | None = None     # None = default_space()
    spaces: dict[str, dict[str, Any]] = field(default_factory=dict)  # per task or family name: overrides space
    heartbeat_interval: int = 60            # seconds between a running trial's heartbeats
    grace_period: int = 120                 # a trial silent this long is FAILED and retried
    max_retry: int = 2                      # retries of a killed trial
    n_startup_trials: int = 2               # median pruner: trials before any pruning

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None, source: str = "tuning") -> TuningConfig:
        if data is None:
            return cls()
        if isinstance(data, TuningConfig):
            return data
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise XstiltsError(f"{source}: unknown field(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
        return cls(**data)

    def validate(self, source: str = "tuning") -> TuningConfig:
        """Every field checked (and every space parsed) before any trial trains."""
        if self.pruner not in PRUNERS:
            raise XstiltsError(f"{source}.pruner: {self.pruner!r}; valid: {', '.join(PRUNERS)}")
        if self.scope not in SCOPES:
            raise XstiltsError(f"{source}.scope: {self.scope!r}; valid: {', '.join(SCOPES)}")
        if not isinstance(self.n_trials, int) or self.n_trials < 1:
            raise XstiltsError(f"{source}.n_trials: at least 1 trial is needed, got {self.n_trials!r}")
        if self.timeout is not None and self.timeout <= 0:
            raise XstiltsError(f"{source}.timeout: must be positive seconds, got {self.timeout}")
        for name in ("heartbeat_interval", "grace_period"):
            if getattr(self, name) < 1:
                raise XstiltsError(f"{source}.{name}: must be at least 1 second")
        parse_space(self.space, f"{source}.space")
        for name, space in self.spaces.items():
            _check_space_owner(name, f"{source}.spaces")
            parse_space(space, f"{source}.spaces.{name}")
        return self

    def space_for(self, task: str) -> dict[str, ParamSpec]:
        """The space of target task ``task``: its own entry in ``spaces``, else its family's
        (e.g. ``tagging`` for PAN-X and UD-POS), else ``space``."""
        from xstilts.tasks import get_task

        for name in (task, get_task(task).family.name):
            if name in self.spaces:
                return parse_space(self.spaces[name], f"tuning.spaces.{name}")
        return parse_space(self.space, "tuning.space")

    def storage_url(self) -> str:
        return self.storage or default_storage()

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _check_space_owner(name: str, where: str) -> None:
    """A ``spaces`` key must name a task or a task family (one error naming both lists)."""
    from xstilts.families import FAMILY_NAMES
    from xstilts.tasks import task_names

    if name not in FAMILY_NAMES and name not in task_names():
        raise XstiltsError(f"{where}.{name}: neither a task nor a task family; families: "
                           f"{', '.join(FAMILY_NAMES)}; tasks: {', '.join(task_names())}")


def study_key(tuning: TuningConfig, task: str, base_run_key: str) -> str:
    """Hash of what determines the study's trials: the trial config (by its ``run_key``
    before tuning), the space, pruner and sampler seed; not budget, names or storage."""
    d = {"task": task, "base": base_run_key, "space": space_to_dict(tuning.space_for(task)),
         "pruner": tuning.pruner, "n_startup_trials": tuning.n_startup_trials, "seed": tuning.sampler_seed,
         "version": TUNING_VERSION}
    return hashlib.sha256(json.dumps(d, sort_keys=True, default=str).encode()).hexdigest()[:12]


def study_name_for(tuning: TuningConfig, task: str, condition: str, key: str) -> str:
    """``tuning.study_name`` as given (with ``-{condition}`` per condition), else derived from the key."""
    if tuning.study_name:
        return tuning.study_name if tuning.scope == "per_task" else f"{tuning.study_name}-{condition}"
    return f"xstilts-tune-{task}-{condition}-{key}"


__all__ = ["TuningConfig", "ParamSpec", "PRUNERS", "SCOPES", "study_key", "study_name_for", "default_storage"]
