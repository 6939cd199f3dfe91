"""The intermediate axis: intermediate settings compared per target task.

Phang et al. (2020) train one model per intermediate task and report, per target, the
best intermediate model. Here, per target x intermediate x condition (``none`` being the
shared baseline): the mean over the target languages (English excluded) with its seed
spread, the gain over ``none`` per resource group (paired seeds, t interval, exact
sign-flip test), and which intermediate is best per target when chosen as a strict
zero-shot user would: on the English dev score that selected each target model
(``selection_score``), never on target-language scores. Everything comes from the table.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from xstilts.analysis.schema import NO_INTERMEDIATE
from xstilts.analysis.seeds import group_gain_ci
from xstilts.analysis.small_sample import chi2_std_ci, t_mean_ci
from xstilts.errors import XstiltsError

BASELINE = "none"


def intermediate_names(results: pd.DataFrame) -> list[str]:
    """The table's intermediate settings (``none`` excluded), in order of first appearance."""
    names = results.loc[results["intermediate"] != NO_INTERMEDIATE, "intermediate"]
    return list(dict.fromkeys(names))


def slice_intermediate(results: pd.DataFrame, name: str) -> pd.DataFrame:
    """The rows of one intermediate setting plus the shared ``none`` rows: a one-intermediate table."""
    keep = results["intermediate"].isin([name, NO_INTERMEDIATE])
    return results.loc[keep].reset_index(drop=True)


def _target_rows(table: pd.DataFrame, task: str) -> pd.DataFrame:
    rows = table[table["task"] == task]
    non_en = rows[rows["language"] != "en"]
    return non_en if not non_en.empty else rows


def compare_intermediates(table: pd.DataFrame, *, n_resamples: int = 10_000, seed: int = 0) -> pd.DataFrame:
    """One row per task x intermediate x condition (one metric per task, ``none`` first).

    ``mean``: mean over target languages of the seed means, with the 95% t interval over
    seeds of the per-seed language mean (``ci_low``/``ci_high``); ``seed_std``: the std
    (ddof=1) of those per-seed means with its chi-square interval; ``dev_score``: the mean
    English dev score that selected the models (NaN where none did, e.g. retrieval);
    ``gain_<group>``: gain over ``none`` on that group's languages (``all``, ``low``, ...)."""
    rows = []
    for task, rows_t in table.groupby("task", sort=True):
        target = _target_rows(table, task)
        groups = [("all", sorted(target["language"].unique()))] + [
            (g, sorted(m["language"].unique())) for g, m in target.groupby("resource_group", sort=True)]
        cells = target.drop_duplicates(["intermediate", "condition"])[["intermediate", "condition"]]
        cells = sorted(cells.itertuples(index=False), key=lambda c: (c.condition != BASELINE, c.intermediate))
        for cell in cells:
            part = target[(target["intermediate"] == cell.intermediate) & (target["condition"] == cell.condition)]
            row = {"task": task, "metric": part["metric"].iloc[0], "intermediate": cell.intermediate,
                   "condition": cell.condition, **_spread(part), **_dev_score(rows_t, cell)}
            for group, langs in groups:
                row |= _gain(table, task, row["metric"], cell, group, langs, n_resamples, seed)
            rows.append(row)
    return pd.DataFrame(rows)


def _spread(part: pd.DataFrame) -> dict:
    """Mean over languages per seed, then its mean, t interval, std and chi-square interval over seeds."""
    per_seed = part.groupby("seed")["value"].mean().to_numpy(dtype=float)
    nan = float("nan")
    low, high = t_mean_ci(per_seed) if per_seed.size > 1 else (nan, nan)
    s_low, s_high = chi2_std_ci(per_seed) if per_seed.size > 1 else (nan, nan)
    return {"n_seeds": int(per_seed.size), "n_languages": int(part["language"].nunique()),
            "mean": float(per_seed.mean()), "ci_low": low, "ci_high": high,
            "seed_std": float(per_seed.std(ddof=1)) if per_seed.size > 1 else nan,
            "std_ci_low": s_low, "std_ci_high": s_high}


def _dev_score(rows: pd.DataFrame, cell) -> dict:
    part = rows[(rows["intermediate"] == cell.intermediate) & (rows["condition"] == cell.condition)]
    per_seed = part.drop_duplicates("seed")["selection_score"].to_numpy(dtype=float)
    finite = per_seed[np.isfinite(per_seed)]
    return {"dev_score": float(finite.mean()) if finite.size else float("nan")}


def _gain(table: pd.DataFrame, task: str, metric: str, cell, group: str, langs: list[str],
          n_resamples: int, seed: int) -> dict:
    """Gain of the cell over ``none`` on ``langs`` (NaN for the baseline itself or without ``none`` rows)."""
    nan = {f"gain_{group}": float("nan"), f"gain_{group}_ci_low": float("nan"),
           f"gain_{group}_ci_high": float("nan"), f"gain_{group}_p": float("nan")}
    if cell.condition == BASELINE:
        return nan
    try:
        g = group_gain_ci(slice_intermediate(table, cell.intermediate), task, metric, langs,
                          treatment=cell.condition, control=BASELINE, n_resamples=n_resamples, seed=seed)
    except (XstiltsError, KeyError, ValueError):
        return nan
    return {f"gain_{group}": g["gain"], f"gain_{group}_ci_low": g["ci_low"],
            f"gain_{group}_ci_high": g["ci_high"], f"gain_{group}_p": g["p_sign_flip"]}


def best_intermediates(comparison: pd.DataFrame) -> pd.DataFrame:
    """Per task x condition (``none`` excluded): the intermediate with the highest English dev
    score (the paper's best per-task intermediate model, chosen without target-language data),
    its target-language mean, and the intermediate whose target-language mean is highest
    (an oracle choice, for contrast). ``best`` is empty where no model was selected on dev."""
    rows = []
    for (task, condition), part in comparison[comparison["condition"] != BASELINE].groupby(["task", "condition"],
                                                                                          sort=True):
        scored = part[np.isfinite(part["dev_score"].to_numpy(dtype=float))]
        best = scored.loc[scored["dev_score"].idxmax()] if not scored.empty else None
        oracle = part.loc[part["mean"].idxmax()]
        rows.append({"task": task, "condition": condition, "candidates": len(part),
                     "best": "" if best is None else best["intermediate"],
                     "best_dev_score": float("nan") if best is None else float(best["dev_score"]),
                     "best_mean": float("nan") if best is None else float(best["mean"]),
                     "oracle": oracle["intermediate"], "oracle_mean": float(oracle["mean"])})
    return pd.DataFrame(rows)
