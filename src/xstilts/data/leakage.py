"""No leakage: a split used for training in an experiment is never evaluated on in it.

Every use of data in an experiment is a :class:`SplitUse` (task, split, languages, role).
:func:`check_no_leakage` refuses any pair where one use trains (intermediate or target
training) and the other evaluates (evaluation or model selection) on the same task and
split, and any pair where one use tunes hyperparameters (``tuning``: a study's objective is
scored on that split) and the other evaluates on it. Tuning and model selection may share
English dev: both choose, neither reports. For tasks whose languages are translations of the same items (XNLI, PAWS-X, XQuAD)
the languages do not matter: training on XNLI dev in Swahili leaks the English items; so for
MLQA, whose items are shared by several languages.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from xstilts.errors import XstiltsError
from xstilts.tasks import get_task

Role = Literal["intermediate_train", "target_train", "model_selection", "tuning", "evaluation"]
TRAIN_ROLES = ("intermediate_train", "target_train")
EVAL_ROLES = ("model_selection", "tuning", "evaluation")
#: (fitting role, scoring role) pairs beyond training x evaluation that must not share data.
FIT_SCORE_PAIRS = [(tr, ev) for tr in TRAIN_ROLES for ev in EVAL_ROLES] + [("tuning", "evaluation")]


class LeakageError(XstiltsError):
    """Training data would be evaluated on in the same experiment."""


@dataclass(frozen=True)
class SplitUse:
    task: str
    split: str
    languages: tuple[str, ...]
    role: Role

    def describe(self) -> str:
        return f"{self.task}/{self.split} [{','.join(self.languages)}] as {self.role.replace('_', ' ')}"


def uses_from_spec(spec: object) -> list[SplitUse]:
    """The training uses of an :class:`~xstilts.data.intermediate_spec.IntermediateSpec`."""
    from xstilts.data.intermediate_spec import IntermediateSpec
    assert isinstance(spec, IntermediateSpec)
    by_split: dict[str, list[str]] = {}
    for s in spec.languages:
        by_split.setdefault(s.split, []).append(s.lang)
    return [SplitUse(spec.task, split, tuple(langs), "intermediate_train") for split, langs in by_split.items()]


def _data_task(name: str) -> str:
    """The task whose data a use reads: a declared extension (``extends: xnli``) reads its base's."""
    return getattr(get_task(name), "data_of", None) or name


def find_leaks(uses: Iterable[SplitUse]) -> list[tuple[SplitUse, SplitUse]]:
    """(training or tuning use, evaluation use) pairs that share data."""
    uses = list(uses)
    leaks = []
    for fit_role, score_role in FIT_SCORE_PAIRS:
        for tr, ev in ((a, b) for a in uses if a.role == fit_role for b in uses if b.role == score_role):
            if _data_task(tr.task) != _data_task(ev.task) or tr.split != ev.split:
                continue
            if get_task(tr.task).items_shared_across_languages or set(tr.languages) & set(ev.languages):
                leaks.append((tr, ev))
    return leaks


def check_no_leakage(uses: Iterable[SplitUse]) -> None:
    """Raise :class:`LeakageError` naming every conflicting pair; return None if clean."""
    leaks = find_leaks(uses)
    if not leaks:
        return
    lines = [f"{ev.describe()} is also used {'for' if tr.role in TRAIN_ROLES else 'as'} {tr.describe()}"
             for tr, ev in leaks]
    hint = ("; the items of parallel tasks are translations of each other, so any language counts"
            if any(get_task(tr.task).items_shared_across_languages for tr, _ in leaks) else "")
    fix = ("; evaluate on another split (e.g. test) or languages than the study tunes on (English dev)"
           if any(tr.role == "tuning" for tr, _ in leaks) else "")
    raise LeakageError("data leakage: " + "; ".join(lines) + hint + fix +
                       "; evaluate on another split (e.g. test) or train on another one")
