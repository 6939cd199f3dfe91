"""Does an intermediate-training condition change the spread of scores across seeds?

Brown-Forsythe test (Levene's test with median centring; Brown & Forsythe 1974,
JASA 69:364-367) per language and pooled per resource group, and confidence
intervals of the seed-std ratio between two conditions. :func:`variance_comparison`
(the report's table) uses F intervals (:mod:`xstilts.analysis.small_sample`),
which hold at 3-5 seeds; the percentile-bootstrap versions
(:func:`std_ratio_ci`, :func:`pooled_std_ratio_ci`) are kept for large samples
only: over 3 seeds they see 10 distinct resamples, 1 in 9 of them with zero spread.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from scipy import stats

from xstilts.analysis.resource_groups import HIGH, LOW
from xstilts.analysis.seeds import DEFAULT_RESAMPLES, seed_matrix
from xstilts.analysis.small_sample import f_std_ratio_ci, pooled_f_std_ratio_ci
from xstilts.errors import XstiltsError


@dataclass(frozen=True)
class BrownForsytheResult:
    """W statistic, its p-value under F(df_between, df_within), and the degrees of freedom."""

    statistic: float
    pvalue: float
    df_between: int
    df_within: int


def _anova_on_deviations(deviations: list[np.ndarray]) -> BrownForsytheResult:
    """One-way ANOVA F test on absolute deviations (the second stage of Levene/B-F)."""
    k = len(deviations)
    n_total = sum(z.size for z in deviations)
    if k < 2 or any(z.size < 2 for z in deviations):
        raise XstiltsError("Brown-Forsythe test: need at least two groups with two or more values each, "
                           f"got group sizes {[z.size for z in deviations]}")
    grand = np.concatenate(deviations).mean()
    between = sum(z.size * (z.mean() - grand) ** 2 for z in deviations)
    within = sum(((z - z.mean()) ** 2).sum() for z in deviations)
    df_b, df_w = k - 1, n_total - k
    if within == 0:
        # Every group's deviations are constant: the F ratio is undefined (0/0) or
        # infinite; scipy.stats.levene returns the same nan/inf in these cases.
        stat = float("nan") if between == 0 else float("inf")
        p = float("nan") if between == 0 else 0.0
        return BrownForsytheResult(stat, p, df_b, df_w)
    stat = (df_w / df_b) * between / within
    return BrownForsytheResult(float(stat), float(stats.f.sf(stat, df_b, df_w)), df_b, df_w)


def brown_forsythe(*groups: ArrayLike) -> BrownForsytheResult:
    """Brown-Forsythe test of equal variances across ``groups``.

    Z_ij = |Y_ij - median_i|; W = (N-k)/(k-1) * sum_i n_i (Zbar_i - Zbar)^2 /
    sum_ij (Z_ij - Zbar_i)^2, compared with F(k-1, N-k). Matches
    ``scipy.stats.levene(*groups, center="median")``.
    """
    arrays = [np.asarray(g, dtype=float).ravel() for g in groups]
    return _anova_on_deviations([np.abs(a - np.median(a)) for a in arrays])


def pooled_brown_forsythe(per_language: list[tuple[ArrayLike, ...]]) -> BrownForsytheResult:
    """Brown-Forsythe test pooled over languages.

    ``per_language`` holds, for each language, one array of seed scores per
    condition. Each language x condition is centred on its own median before
    pooling, so differences in level between languages (and between conditions)
    do not count as spread; only within-language seed spread is compared. The
    pooled absolute deviations of each condition then enter one ANOVA.
    Caveat: with an odd number of seeds every cell contributes one structural
    zero deviation, which makes the test conservative at 3 seeds.
    """
    if not per_language:
        raise XstiltsError("pooled Brown-Forsythe test: no languages given")
    n_cond = len(per_language[0])
    pooled: list[list[np.ndarray]] = [[] for _ in range(n_cond)]
    for cells in per_language:
        if len(cells) != n_cond:
            raise XstiltsError("pooled Brown-Forsythe test: every language needs the same number of conditions")
        for j, cell in enumerate(cells):
            arr = np.asarray(cell, dtype=float).ravel()
            pooled[j].append(np.abs(arr - np.median(arr)))
    return _anova_on_deviations([np.concatenate(parts) for parts in pooled])


def _ratio_quantiles(num: np.ndarray, den: np.ndarray, confidence: float) -> tuple[float, float, float]:
    """Percentile CI of num/den over resamples; 0/0 resamples are dropped and counted."""
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = num / den
    finite_or_inf = ~np.isnan(ratios)
    degenerate = float(1 - finite_or_inf.mean() + np.isinf(ratios).mean())
    kept = ratios[finite_or_inf]
    if kept.size == 0:
        return float("nan"), float("nan"), degenerate
    tail = (1 - confidence) / 2
    # inverted_cdf picks observed resample values, so an infinite ratio (zero
    # control spread in a resample) never meets arithmetic interpolation.
    low, high = np.quantile(kept, [tail, 1 - tail], method="inverted_cdf")
    return float(low), float(high), degenerate


def std_ratio_ci(a: ArrayLike, b: ArrayLike, *, paired: bool = False, confidence: float = 0.95,
                 n_resamples: int = DEFAULT_RESAMPLES,
                 rng: np.random.Generator | int | None = 0) -> dict[str, float]:
    """std(a)/std(b) (ddof=1) with a percentile bootstrap CI.

    ``paired=True`` resamples the same positions in ``a`` and ``b`` (seed i of
    one condition goes with seed i of the other); otherwise each is resampled on
    its own. ``degenerate`` is the share of resamples with a zero std in the
    denominator (ratio infinite or 0/0); with 3 seeds it is about 1/9 per
    condition, and it is why tiny-sample ratio CIs are wide or unbounded.
    """
    x = np.asarray(a, dtype=float).ravel()
    y = np.asarray(b, dtype=float).ravel()
    if x.size < 2 or y.size < 2:
        raise XstiltsError(f"std_ratio_ci: need at least two values per condition, got {x.size} and {y.size}")
    if paired and x.size != y.size:
        raise XstiltsError(f"std_ratio_ci: paired resampling needs equal sizes, got {x.size} and {y.size}")
    gen = np.random.default_rng(rng)
    ix = gen.integers(0, x.size, size=(n_resamples, x.size))
    iy = ix if paired else gen.integers(0, y.size, size=(n_resamples, y.size))
    low, high, degenerate = _ratio_quantiles(x[ix].std(axis=1, ddof=1), y[iy].std(axis=1, ddof=1), confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = float(x.std(ddof=1) / y.std(ddof=1))
    return {"ratio": ratio, "ci_low": low, "ci_high": high, "degenerate": degenerate}


def pooled_std_ratio_ci(scores: np.ndarray, *, confidence: float = 0.95, n_resamples: int = DEFAULT_RESAMPLES,
                        rng: np.random.Generator | int | None = 0) -> dict[str, float]:
    """Ratio of pooled within-language seed stds, ``scores[seed, language, 0 vs 1]``.

    Pooled std = sqrt(mean over languages of the within-language variance), the
    usual pooled estimate with equal seed counts. The bootstrap resamples seed
    ids jointly for all languages and both conditions (one seed = one run).
    """
    arr = np.asarray(scores, dtype=float)
    if arr.ndim != 3 or arr.shape[2] != 2 or arr.shape[0] < 2:
        raise XstiltsError(f"pooled_std_ratio_ci: expected scores[seed>=2, language, 2], got shape {arr.shape}")

    def pooled_sd(x: np.ndarray) -> np.ndarray:  # x[..., seed, language]
        return np.sqrt(x.var(axis=-2, ddof=1).mean(axis=-1))

    gen = np.random.default_rng(rng)
    idx = gen.integers(0, arr.shape[0], size=(n_resamples, arr.shape[0]))
    boot = arr[idx]  # [resample, seed, language, cond]
    low, high, degenerate = _ratio_quantiles(pooled_sd(boot[..., 0]), pooled_sd(boot[..., 1]), confidence)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = float(pooled_sd(arr[..., 0]) / pooled_sd(arr[..., 1]))
    return {"ratio": ratio, "ci_low": low, "ci_high": high, "degenerate": degenerate}


LANGUAGE_RATIO_METHOD = "F(n-1, n-1); seeds paired, so conservative"
POOLED_RATIO_METHOD = "F(n-1, n-1) on pooled variances; conservative"


def variance_comparison(results: pd.DataFrame, *, treatment: str, control: str, confidence: float = 0.95,
                        n_resamples: int = DEFAULT_RESAMPLES, seed: int = 0) -> pd.DataFrame:
    """Seed-spread comparison ``treatment`` vs ``control`` for every task x metric.

    One row per language (``scope="language"``) and one per resource group plus
    ``all`` (``scope="pooled"``), with std of each condition, the std ratio
    treatment/control with its CI, the method of that CI (``ratio_ci_method``),
    and the Brown-Forsythe W and p. Per language the CI is the F interval
    (:func:`~xstilts.analysis.small_sample.f_std_ratio_ci`): exact for
    independent seeds, conservative for the grid's paired seeds. Pooled rows use
    :func:`~xstilts.analysis.small_sample.pooled_f_std_ratio_ci` (n-1 df per
    condition, since a seed's languages share one model). Pooled rows leave out
    English, the source language. Only seeds complete for every language and
    both conditions are used (see :func:`seed_matrix`). ``n_resamples`` and
    ``seed`` are no longer used and are kept for callers.
    """
    rows = []
    conds = [treatment, control]
    pairs = results.loc[results["condition"].isin(conds), ["task", "metric"]].drop_duplicates()
    for task, metric in sorted(map(tuple, pairs.to_numpy())):
        sub = results[(results["task"] == task) & (results["metric"] == metric)]
        if not set(conds) <= set(sub["condition"]):
            continue
        arr, languages, seeds = seed_matrix(results, task, metric, conds)
        if len(seeds) < 2:
            continue
        group_of = sub.drop_duplicates("language").set_index("language")["resource_group"]
        for j, lang in enumerate(languages):
            ratio = f_std_ratio_ci(arr[:, j, 0], arr[:, j, 1], confidence=confidence)
            bf = brown_forsythe(arr[:, j, 0], arr[:, j, 1])
            rows.append({"task": task, "metric": metric, "scope": "language", "language": lang,
                         "resource_group": group_of[lang], "n_languages": 1, "n_seeds": len(seeds),
                         f"std_{treatment}": float(arr[:, j, 0].std(ddof=1)),
                         f"std_{control}": float(arr[:, j, 1].std(ddof=1)),
                         "std_ratio": ratio["ratio"], "ratio_ci_low": ratio["ci_low"],
                         "ratio_ci_high": ratio["ci_high"], "ratio_ci_method": LANGUAGE_RATIO_METHOD,
                         "bf_statistic": bf.statistic, "bf_pvalue": bf.pvalue})
        targets = [j for j, lang in enumerate(languages) if lang != "en"]
        groups = [("all", targets)] + [
            (g, [j for j in targets if group_of[languages[j]] == g])
            for g in sorted({group_of[languages[j]] for j in targets}, key=lambda g: (g != LOW, g != HIGH, g))]
        for group, members in groups:
            if not members:
                continue
            part = arr[:, members, :]
            ratio = pooled_f_std_ratio_ci(part, confidence=confidence)
            bf = pooled_brown_forsythe([(part[:, j, 0], part[:, j, 1]) for j in range(len(members))])
            rows.append({"task": task, "metric": metric, "scope": "pooled", "language": "",
                         "resource_group": group, "n_languages": len(members), "n_seeds": len(seeds),
                         f"std_{treatment}": float(np.sqrt(part[..., 0].var(axis=0, ddof=1).mean())),
                         f"std_{control}": float(np.sqrt(part[..., 1].var(axis=0, ddof=1).mean())),
                         "std_ratio": ratio["ratio"], "ratio_ci_low": ratio["ci_low"],
                         "ratio_ci_high": ratio["ci_high"], "ratio_ci_method": POOLED_RATIO_METHOD,
                         "bf_statistic": bf.statistic, "bf_pvalue": bf.pvalue})
    columns = ["task", "metric", "scope", "language", "resource_group", "n_languages", "n_seeds",
               f"std_{treatment}", f"std_{control}", "std_ratio", "ratio_ci_low", "ratio_ci_high", "ratio_ci_method",
               "bf_statistic", "bf_pvalue"]
    return pd.DataFrame(rows, columns=columns)  # no task with two seeds: an empty table with its columns
