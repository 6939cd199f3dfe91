"""Dispersion across languages of the per-language mean scores."""
from __future__ import annotations

import numpy as np
import pandas as pd

ALL_GROUPS = "all"


def gap_to_reference(summary: pd.DataFrame, *, reference_language: str = "en") -> pd.DataFrame:
    """Add ``gap_to_<ref>`` = mean(reference) - mean(language) per task x metric x condition.

    The XTREME "cross-lingual transfer gap" (Hu et al. 2020, sec. 5): how far each
    language's zero-shot score falls below the English score of the same model.
    Rows whose task has no reference-language score get NaN.
    """
    ref = (summary[summary["language"] == reference_language]
           .set_index(["task", "metric", "condition"])["mean"].rename("_ref"))
    out = summary.join(ref, on=["task", "metric", "condition"])
    out[f"gap_to_{reference_language}"] = out["_ref"] - out["mean"]
    return out.drop(columns="_ref")


def language_dispersion(summary: pd.DataFrame, *, reference_language: str = "en") -> pd.DataFrame:
    """Spread of per-language means, per task x metric x condition x resource group.

    ``summary`` is :func:`xstilts.analysis.seeds.seed_summary` output. The
    reference language is left out of every group (it is the source language,
    not a zero-shot target); group ``"all"`` pools the other languages. Columns:
    n_languages, mean_of_means, std_of_means (ddof=1), min, max, range, and
    ``gap_to_<ref>`` = reference mean - mean_of_means.
    """
    targets = summary[summary["language"] != reference_language]
    ref = (summary[summary["language"] == reference_language]
           .set_index(["task", "metric", "condition"])["mean"])
    rows = []
    for (task, metric, condition), cell in targets.groupby(["task", "metric", "condition"], sort=True):
        groups = [(ALL_GROUPS, cell)] + list(cell.groupby("resource_group", sort=True))
        for group, part in groups:
            means = part["mean"].to_numpy(dtype=float)
            ref_mean = ref.get((task, metric, condition), np.nan)
            rows.append({
                "task": task, "metric": metric, "condition": condition, "resource_group": group,
                "n_languages": int(means.size), "mean_of_means": float(means.mean()),
                "std_of_means": float(means.std(ddof=1)) if means.size > 1 else float("nan"),
                "min": float(means.min()), "max": float(means.max()),
                "range": float(means.max() - means.min()),
                f"gap_to_{reference_language}": float(ref_mean - means.mean()),
            })
    return pd.DataFrame(rows)
