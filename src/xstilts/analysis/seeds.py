"""Seed-level summaries: mean, std and a bootstrap CI of the mean per language x condition."""
from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from xstilts.errors import XstiltsError

DEFAULT_RESAMPLES = 2000
"""Bootstrap resamples; enough for stable 2.5/97.5 % percentiles at report precision."""


def _as_1d(values: ArrayLike, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float).ravel()
    if arr.size == 0:
        raise XstiltsError(f"{name}: need at least one value, got none")
    if not np.all(np.isfinite(arr)):
        raise XstiltsError(f"{name}: values must be finite, got {arr.tolist()}")
    return arr


def bootstrap_mean_ci(values: ArrayLike, *, confidence: float = 0.95,
                      n_resamples: int = DEFAULT_RESAMPLES,
                      rng: np.random.Generator | int | None = 0) -> tuple[float, float]:
    """Percentile bootstrap confidence interval of the mean (Efron & Tibshirani 1993, ch. 13).

    Resamples ``values`` with replacement ``n_resamples`` times and returns the
    ``(1-confidence)/2`` and ``(1+confidence)/2`` percentiles of the resampled means.
    With one value the interval collapses to that value. With very few values
    (e.g. 3 seeds) the percentile interval is too narrow: it can never extend
    beyond the observed min and max, so its real coverage is well below nominal.
    """
    arr = _as_1d(values, "bootstrap_mean_ci")
    if not 0 < confidence < 1:
        raise XstiltsError(f"bootstrap_mean_ci: confidence must be in (0, 1), got {confidence}")
    if arr.size == 1:
        return float(arr[0]), float(arr[0])
    gen = np.random.default_rng(rng)
    idx = gen.integers(0, arr.size, size=(n_resamples, arr.size))
    means = arr[idx].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def seed_summary(results: pd.DataFrame, *, confidence: float = 0.95,
                 n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> pd.DataFrame:
    """Per task x metric x language x condition: seeds, mean, std (ddof=1) and bootstrap CI.

    ``results`` is a validated results table. Each cell gets its own RNG stream
    derived from ``seed`` so adding a language does not change other cells' CIs.
    """
    rows = []
    keys = ["task", "metric", "language", "resource_group", "condition"]
    for i, (key, cell) in enumerate(results.groupby(keys, sort=True)):
        vals = cell["value"].to_numpy(dtype=float)
        low, high = bootstrap_mean_ci(vals, confidence=confidence, n_resamples=n_resamples,
                                      rng=np.random.default_rng([seed, i]))
        rows.append({**dict(zip(keys, key)), "n_seeds": int(vals.size), "mean": float(vals.mean()),
                     "std": float(vals.std(ddof=1)) if vals.size > 1 else float("nan"),
                     "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows, columns=[*keys, "n_seeds", "mean", "std", "ci_low", "ci_high"])


def seed_matrix(results: pd.DataFrame, task: str, metric: str, conditions: list[str]) -> tuple[np.ndarray, list[str], list[int]]:
    """Scores as an array ``[seed, language, condition]`` for one task and metric.

    Keeps only languages scored under every condition and seeds present for all
    of them, since a seed is one training run whose scores on all languages are
    correlated and the bootstrap must resample whole runs. Raises if no complete
    seed remains.
    """
    cell = results[(results["task"] == task) & (results["metric"] == metric)
                   & results["condition"].isin(conditions)]
    wide = cell.pivot_table(index="seed", columns=["language", "condition"], values="value", aggfunc="first")
    # Languages missing a condition altogether are left out rather than emptying the matrix.
    n_cond = cell.groupby("language")["condition"].nunique()
    languages = sorted(n_cond[n_cond == len(conditions)].index)
    full_cols = pd.MultiIndex.from_product([languages, conditions], names=["language", "condition"])
    wide = wide.reindex(columns=full_cols).dropna(axis=0, how="any")
    if wide.empty:
        raise XstiltsError(f"results table: task {task!r}, metric {metric!r}: no seed has scores for every "
                           f"language under conditions {', '.join(conditions)}")
    arr = wide.to_numpy(dtype=float).reshape(len(wide), len(languages), len(conditions))
    return arr, languages, [int(s) for s in wide.index]


def group_gain_ci(results: pd.DataFrame, task: str, metric: str, languages: list[str], *,
                  treatment: str, control: str, confidence: float = 0.95,
                  n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> dict[str, float]:
    """Gain of ``treatment`` over ``control`` in the mean score over ``languages``, with a CI.

    The gain is mean over languages of (mean over seeds of treatment - of control).
    The CI is a percentile bootstrap over seeds: seed ids are resampled and the
    same ids are used for every language and both conditions, because one seed
    is one trained model (scores across languages are correlated) and seeds are
    paired across conditions by the grid.
    """
    arr, langs, seeds = seed_matrix(results, task, metric, [treatment, control])
    pick = [langs.index(lang) for lang in languages if lang in langs]
    if not pick:
        raise XstiltsError(f"group_gain_ci: none of {languages} has scores for task {task!r}")
    diff = arr[:, pick, 0] - arr[:, pick, 1]  # [seed, language]
    gain = float(diff.mean())
    if len(seeds) == 1:
        low = high = gain
    else:
        gen = np.random.default_rng(seed)
        idx = gen.integers(0, len(seeds), size=(n_resamples, len(seeds)))
        boot = diff[idx].mean(axis=(1, 2))
        tail = (1 - confidence) / 2
        low, high = (float(x) for x in np.quantile(boot, [tail, 1 - tail]))
    return {"gain": gain, "ci_low": low, "ci_high": high, "n_seeds": len(seeds), "n_languages": len(pick)}
