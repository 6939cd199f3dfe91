"""Seed-level summaries: mean, std and their CIs per language x condition, and paired gains.

The intervals are the small-sample ones of :mod:`xstilts.analysis.small_sample`
(t for means and paired differences, chi-square for stds): the grid runs 3-5
seeds, where a percentile bootstrap is far too narrow. :func:`bootstrap_mean_ci`
stays for large samples.
"""
from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from xstilts.analysis.small_sample import chi2_std_ci, sign_flip_pvalue, t_mean_ci
from xstilts.errors import XstiltsError

MEAN_CI_METHOD = "t, n-1 df"
GAIN_CI_METHOD = "t over per-seed gains (paired seeds), n-1 df"

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
    """Per task x metric x language x condition: seeds, mean, std (ddof=1) and their CIs.

    ``ci_low``/``ci_high`` is the t interval of the mean and
    ``std_ci_low``/``std_ci_high`` the chi-square interval of the std, both exact
    for normal seed scores at any seed count >= 2 (NaN with one seed);
    ``ci_method`` names the method. ``n_resamples`` and ``seed`` are no longer
    used (no resampling) and are kept for callers.
    """
    rows = []
    keys = ["task", "metric", "language", "resource_group", "condition"]
    nan = float("nan")
    for key, cell in results.groupby(keys, sort=True):
        vals = cell["value"].to_numpy(dtype=float)
        if vals.size > 1:
            low, high = t_mean_ci(vals, confidence=confidence)
            s_low, s_high = chi2_std_ci(vals, confidence=confidence)
        else:
            low = high = s_low = s_high = nan
        rows.append({**dict(zip(keys, key)), "n_seeds": int(vals.size), "mean": float(vals.mean()),
                     "std": float(vals.std(ddof=1)) if vals.size > 1 else nan,
                     "ci_low": low, "ci_high": high, "std_ci_low": s_low, "std_ci_high": s_high,
                     "ci_method": MEAN_CI_METHOD})
    return pd.DataFrame(rows, columns=[*keys, "n_seeds", "mean", "std", "ci_low", "ci_high",
                                       "std_ci_low", "std_ci_high", "ci_method"])


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


def paired_gain_ci(treatment: ArrayLike, control: ArrayLike, *,
                   confidence: float = 0.95) -> tuple[float | np.ndarray, float | np.ndarray, float | np.ndarray]:
    """Gain in the mean over languages, ``scores[..., seed, language]`` per condition, with a t CI.

    Seed s gives one gain g_s = mean over languages of (treatment - control);
    seeds are independent runs and the grid pairs them across conditions, so the
    g_s are i.i.d. whatever the correlation between languages and conditions
    within a seed, and the t interval of their mean (n-1 df) is exact for
    normal scores. Returns ``(gain, low, high)``.
    """
    t, c = np.asarray(treatment, dtype=float), np.asarray(control, dtype=float)
    if t.shape != c.shape or t.ndim < 2:
        raise XstiltsError(f"paired_gain_ci: expected two equal [seed, language] arrays, got {t.shape}, {c.shape}")
    per_seed = (t - c).mean(axis=-1)
    low, high = t_mean_ci(per_seed, confidence=confidence)
    gain = per_seed.mean(axis=-1)
    return (float(gain) if np.ndim(gain) == 0 else gain), low, high


def group_gain_ci(results: pd.DataFrame, task: str, metric: str, languages: list[str], *,
                  treatment: str, control: str, confidence: float = 0.95,
                  n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> dict[str, float | str]:
    """Gain of ``treatment`` over ``control`` in the mean score over ``languages``, with a CI and a test.

    The gain is mean over languages of (mean over seeds of treatment - of control).
    The CI is the t interval of the per-seed gains (:func:`paired_gain_ci`): one
    seed is one trained model (scores across languages are correlated) and seeds
    are paired across conditions by the grid, so the seed is the unit. ``p_sign_flip``
    is the exact sign-flip test of the per-seed gains (random flips, with
    ``n_resamples`` and ``seed``, above 12 seeds). One seed gives NaN bounds and p.
    """
    arr, langs, seeds = seed_matrix(results, task, metric, [treatment, control])
    pick = [langs.index(lang) for lang in languages if lang in langs]
    if not pick:
        raise XstiltsError(f"group_gain_ci: none of {languages} has scores for task {task!r}")
    diff = arr[:, pick, 0] - arr[:, pick, 1]  # [seed, language]
    gain = float(diff.mean())
    if len(seeds) == 1:
        low = high = p = float("nan")
    else:
        _, low, high = paired_gain_ci(arr[:, pick, 0], arr[:, pick, 1], confidence=confidence)
        p = sign_flip_pvalue(diff.mean(axis=1), n_resamples=n_resamples, rng=seed)
    return {"gain": gain, "ci_low": float(low), "ci_high": float(high), "p_sign_flip": p,
            "n_seeds": len(seeds), "n_languages": len(pick), "ci_method": GAIN_CI_METHOD}
