"""What a user filters, groups and charts a grid's runs by in the MLflow UI.

Every run of a grid carries the tags of its cell (``grid``, ``condition``, ``seed``,
``task``, ``intermediate``; :func:`xstilts.grid.plan.cell_tags`). An evaluation run
holds ``{task}.{metric}.{lang}`` per language and, added here, the mean of each
metric per language group (``{task}.{metric}.avg_low``, ``.avg_high_no_en``: the
Joshi et al. resource groups of the analysis, English left out of the high group
because it is the training language) with the groups' languages as tags
(``languages.low``, ``languages.high``), so the UI's chart view can plot a
low-resource mean against seed or condition without the report.
"""
from __future__ import annotations

from collections.abc import Mapping

from xstilts.analysis.resource_groups import HIGH, LOW, resource_group

#: The ML view of MLflow 3's UI: an experiment opens on its runs table, not the GenAI overview.
UI_QUERY = "workflowType=machine_learning"


def group_metrics(task: str, languages: Mapping[str, Mapping[str, float]],
                  mapping: Mapping[str, int] | None = None) -> tuple[dict[str, float], dict[str, str]]:
    """(metrics, tags) of one evaluation record's per-language scores, by resource group."""
    groups: dict[str, list[str]] = {LOW: [], HIGH: []}
    for lang in languages:
        group = resource_group(lang, mapping=mapping)
        if not (group == HIGH and lang == "en"):
            groups[group].append(lang)
    metrics: dict[str, float] = {}
    for group, suffix in ((LOW, "avg_low"), (HIGH, "avg_high_no_en")):
        langs = groups[group]
        for metric in sorted({m for lang in langs for m in languages[lang]}):
            values = [float(languages[lang][metric]) for lang in langs if metric in languages[lang]]
            metrics[f"{task}.{metric}.{suffix}"] = sum(values) / len(values)
    tags = {f"languages.{g}": ",".join(sorted(langs)) for g, langs in groups.items() if langs}
    return metrics, tags


def ui_url(tracking_uri: str, experiment_id: str, run_id: str | None = None) -> str:
    """Where the grid's runs table (or one run) is in the MLflow UI.

    A SQLite or file store is browsed with ``mlflow ui`` in the working directory
    (its default address); a tracking server is its own UI.
    """
    base = tracking_uri.rstrip("/") if tracking_uri.startswith(("http://", "https://")) else "http://127.0.0.1:5000"
    page = f"runs/{run_id}" if run_id else "runs"
    return f"{base}/#/experiments/{experiment_id}/{page}?{UI_QUERY}"
