"""The search space: which training arguments a study tunes, and over which values.

A space maps :class:`~xstilts.config.TrainingArgs` field names to one
:class:`ParamSpec` each. It is validated before any training (unknown names,
empty or inverted ranges, log ranges that touch zero), because a typo found after
an hour of trials wastes the hour; each problem is one :class:`XstiltsError`
naming the field.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from xstilts.config import TrainingArgs
from xstilts.errors import XstiltsError

KINDS = ("float", "int", "categorical")
#: Training arguments a study may tune: those that change the fitted model, not how it is run.
TUNABLE = ("learning_rate", "batch_size", "epochs", "max_steps", "warmup_ratio", "weight_decay", "max_grad_norm")


@dataclass(frozen=True)
class ParamSpec:
    """One tuned parameter: a float/int range (``log`` for log-uniform) or categorical ``choices``."""

    kind: str = "float"
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple | None = None

    def validate(self, where: str) -> ParamSpec:
        """This spec, or one clear error naming ``where`` (e.g. ``tuning.space.learning_rate``)."""
        from xstilts.config import check_types

        check_types(self, where)  # low: "1e-4" (a string) is one error here, not a TypeError at low > high
        if self.kind not in KINDS:
            raise XstiltsError(f"{where}.kind: {self.kind!r}; valid: {', '.join(KINDS)}")
        if self.kind == "categorical":
            if not self.choices:
                raise XstiltsError(f"{where}.choices: a categorical parameter needs at least one choice")
            return self
        if self.low is None or self.high is None:
            raise XstiltsError(f"{where}: a {self.kind} range needs both low and high")
        if self.low > self.high:
            raise XstiltsError(f"{where}: inverted range, low {self.low} > high {self.high}")
        if self.low == self.high:
            raise XstiltsError(f"{where}: empty range, low = high = {self.low} (fix the value in training instead)")
        if self.log and self.low <= 0:
            raise XstiltsError(f"{where}: a log range needs low > 0, got {self.low}")
        if self.log and self.step is not None:
            raise XstiltsError(f"{where}: step and log cannot be combined")
        return self

    def suggest(self, trial, name: str) -> Any:
        """The trial's value for ``name`` (Optuna's ``suggest_*``)."""
        if self.kind == "categorical":
            return trial.suggest_categorical(name, list(self.choices))
        if self.kind == "int":
            return trial.suggest_int(name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log)
        return trial.suggest_float(name, float(self.low), float(self.high), step=self.step, log=self.log)


def default_space() -> dict[str, ParamSpec]:
    """Encoder fine-tuning's usual ranges (around XTREME's 2e-5..5e-5 for XLM-R; the small
    default encoder needs the upper end, see configs/default.yaml)."""
    return {
        "learning_rate": ParamSpec("float", 1e-5, 3e-4, log=True),
        "batch_size": ParamSpec("categorical", choices=(8, 16, 32)),
        "epochs": ParamSpec("int", 1, 4),
        "warmup_ratio": ParamSpec("float", 0.0, 0.2),
        "weight_decay": ParamSpec("float", 0.0, 0.1),
    }


def parse_space(data: dict[str, Any] | None, where: str = "tuning.space") -> dict[str, ParamSpec]:
    """A validated space from YAML-style ``{name: {kind, low, high, log, choices}}``; None = the default."""
    if data is None:
        return default_space()
    if not isinstance(data, dict) or not data:
        raise XstiltsError(f"{where}: expected a non-empty mapping of parameter name to range")
    out = {}
    known = {f.name for f in fields(ParamSpec)}
    for name, spec in data.items():
        if name not in TUNABLE:
            raise XstiltsError(f"{where}.{name}: unknown parameter; tunable: {', '.join(TUNABLE)}")
        if isinstance(spec, ParamSpec):
            out[name] = spec.validate(f"{where}.{name}")
            continue
        if isinstance(spec, list):  # shorthand: a list of choices
            spec = {"kind": "categorical", "choices": spec}
        if not isinstance(spec, dict):
            raise XstiltsError(f"{where}.{name}: expected a mapping (kind, low, high, log) or a list of choices")
        unknown = sorted(set(spec) - known)
        if unknown:
            raise XstiltsError(f"{where}.{name}: unknown field(s) {', '.join(unknown)}; valid: {', '.join(sorted(known))}")
        if spec.get("choices") is not None:
            spec = {**spec, "choices": tuple(spec["choices"])}
        out[name] = ParamSpec(**spec).validate(f"{where}.{name}")
    return out


def space_to_dict(space: dict[str, ParamSpec]) -> dict[str, dict]:
    return {name: {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(spec).items() if v is not None}
            for name, spec in sorted(space.items())}


def apply_params(training: TrainingArgs, params: dict[str, Any]) -> TrainingArgs:
    """``training`` with the tuned values (types as TrainingArgs declares them)."""
    from dataclasses import replace

    cast = {"batch_size": int, "max_steps": int}
    return replace(training, **{k: cast.get(k, float)(v) for k, v in params.items()})
