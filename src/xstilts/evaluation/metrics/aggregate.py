"""Averages over languages, tasks and task groups, as XTREME's ``evaluate.py``.

XTREME averages every metric of a task over its languages (``avg_{metric}``),
then takes one headline number per task (``avg_metric``): the mean of
``exact_match`` and ``f1`` for QA tasks, ``f1`` for tagging and BUCC,
``accuracy`` for classification and Tatoeba. A group score is the plain mean of
its tasks' headline numbers and is only reported when every task of the group
is present; ``all_task`` likewise needs all nine tasks. English is part of
XTREME's averages; since zero-shot transfer is about the other languages, each
average is also given without English.
"""
from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

from xstilts.evaluation.metrics.validation import MetricInputError

ENGLISH = "en"

#: XTREME's task groups (``GROUP2TASK`` in ``evaluate.py``), with its task names.
XTREME_GROUPS: Mapping[str, tuple[str, ...]] = {
    "classification": ("pawsx", "xnli"),
    "tagging": ("udpos", "panx"),
    "qa": ("xquad", "mlqa", "tydiqa"),
    "retrieval": ("bucc2018", "tatoeba"),
}


def language_average(per_language: Mapping[str, Mapping[str, float]], *,
                     exclude: Collection[str] = ()) -> dict[str, float]:
    """Mean of each metric over languages (XTREME ``avg_{metric}``).

    Args:
        per_language: language -> metric name -> value.
        exclude: languages left out (e.g. ``{"en"}``).

    Raises:
        MetricInputError: no language is left, or languages report different
            metrics (an average over a subset would be silently biased).
    """
    langs = [lang for lang in per_language if lang not in exclude]
    if not langs:
        raise MetricInputError(
            f"no languages to average over (given {sorted(per_language)}, excluded {sorted(exclude)})")
    names = set(per_language[langs[0]])
    for lang in langs[1:]:
        if set(per_language[lang]) != names:
            raise MetricInputError(
                f"language {lang!r} reports metrics {sorted(per_language[lang])}, "
                f"{langs[0]!r} reports {sorted(names)}")
    return {m: sum(per_language[lang][m] for lang in langs) / len(langs) for m in sorted(names)}


def headline_score(averages: Mapping[str, float], headline: Sequence[str]) -> float:
    """Mean of the headline metrics' averages: (EM + F1) / 2 for QA, else the one metric."""
    missing = [m for m in headline if m not in averages]
    if not headline or missing:
        raise MetricInputError(
            f"headline metrics {list(headline)} not all among {sorted(averages)}")
    return sum(averages[m] for m in headline) / len(headline)


@dataclass(frozen=True)
class TaskSummary:
    """One task's averages over its languages, with and without English."""

    task: str
    languages: tuple[str, ...]
    averages: dict[str, float]
    score: float
    averages_without_en: dict[str, float] | None  # None when English is the only language
    score_without_en: float | None

    def as_metrics(self) -> dict[str, float]:
        """Flat names: ``{task}.{metric}.avg``, ``{task}.score`` and ``*.no_en`` variants."""
        out = {f"{self.task}.{m}.avg": v for m, v in self.averages.items()}
        out[f"{self.task}.score"] = self.score
        if self.averages_without_en is not None and self.score_without_en is not None:
            out.update({f"{self.task}.{m}.avg_no_en": v for m, v in self.averages_without_en.items()})
            out[f"{self.task}.score_no_en"] = self.score_without_en
        return out


def summarize_task(task: str, per_language: Mapping[str, Mapping[str, float]],
                   headline: Sequence[str]) -> TaskSummary:
    """Averages and headline score of one task, as XTREME, plus the same without English.

    Args:
        task: task name.
        per_language: language -> metric name -> value (percent).
        headline: metrics whose averages make the task score, e.g.
            ``("exact_match", "f1")`` (see :attr:`MetricSpec.headline`).
    """
    averages = language_average(per_language)
    score = headline_score(averages, headline)
    others = [lang for lang in per_language if lang != ENGLISH]
    if others:
        no_en = language_average(per_language, exclude={ENGLISH})
        no_en_score: float | None = headline_score(no_en, headline)
    else:
        no_en, no_en_score = None, None
    return TaskSummary(task=task, languages=tuple(per_language), averages=averages, score=score,
                       averages_without_en=no_en, score_without_en=no_en_score)


def group_scores(task_scores: Mapping[str, float],
                 groups: Mapping[str, Sequence[str]] = XTREME_GROUPS) -> dict[str, float]:
    """Group means of task scores, for complete groups only, plus ``all_task``.

    ``all_task`` (XTREME's overall score) is the mean over every task of every
    group and appears only when all of them are present.
    """
    out: dict[str, float] = {}
    for group, tasks in groups.items():
        if tasks and all(t in task_scores for t in tasks):
            out[group] = sum(task_scores[t] for t in tasks) / len(tasks)
    all_tasks = [t for tasks in groups.values() for t in tasks]
    if all_tasks and all(t in task_scores for t in all_tasks):
        out["all_task"] = sum(task_scores[t] for t in all_tasks) / len(all_tasks)
    return out
