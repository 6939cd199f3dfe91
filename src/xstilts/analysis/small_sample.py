"""Intervals and tests that hold at the grid's 3-5 seeds.

A percentile bootstrap over n seeds can only recombine those n values (3 seeds
give 10 distinct resamples) and never reaches beyond their range, so at 3-5
seeds its 95 % intervals cover far less than 95 %. The functions here use the
exact small-sample distributions for normal seed scores instead:

* mean: Student t with n-1 df (:func:`t_mean_ci`); a paired mean difference is
  the t interval of the per-seed differences;
* one standard deviation: chi-square with n-1 df (:func:`chi2_std_ci`);
* ratio of two standard deviations: F(df_a, df_b) (:func:`f_std_ratio_ci`),
  exact for independent samples; for paired seeds (seed i of both conditions)
  the two variances are positively dependent whatever the sign of the
  correlation, which makes the F interval conservative (its coverage >= 95 %;
  98-99 % at correlation 0.8, see the tests);
* paired seed differences: the exact sign-flip test (:func:`sign_flip_pvalue`),
  all 2^n sign patterns for n <= :data:`MAX_EXACT_SEEDS`, which assumes only
  that a difference is as likely to be +d as -d under "no effect"; above that,
  random sign flips (resampling is fine once n is large).

Every function takes values along the last axis, so a simulation can pass
``[draw, seed]`` arrays and get one interval per draw; 1-D input gives floats.
"""
from __future__ import annotations

import itertools

import numpy as np
from numpy.typing import ArrayLike
from scipy import stats

from xstilts.errors import XstiltsError

MAX_EXACT_SEEDS = 12
"""Up to this many paired seeds the sign-flip test enumerates all 2^n patterns (4,096)."""


def _values(values: ArrayLike, name: str, minimum: int = 2) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim == 0 or arr.shape[-1] < minimum:
        raise XstiltsError(f"{name}: need at least {minimum} values along the last axis, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise XstiltsError(f"{name}: values must be finite")
    return arr


def _check_confidence(confidence: float, name: str) -> float:
    if not 0 < confidence < 1:
        raise XstiltsError(f"{name}: confidence must be in (0, 1), got {confidence}")
    return (1 - confidence) / 2


def _out(x: np.ndarray) -> float | np.ndarray:
    return float(x) if np.ndim(x) == 0 else x


def t_mean_ci(values: ArrayLike, *, confidence: float = 0.95) -> tuple[float | np.ndarray, float | np.ndarray]:
    """Student t interval of the mean: mean -/+ t_{n-1, 1-a/2} s / sqrt(n).

    Exact for normal values at any n >= 2 (also the paired-difference interval
    when ``values`` are per-seed differences). Example: [1, 2, 3] -> mean 2,
    s = 1, t_{2, 0.975} = 4.303, so 2 -/+ 2.484.
    """
    arr = _values(values, "t_mean_ci")
    tail = _check_confidence(confidence, "t_mean_ci")
    n = arr.shape[-1]
    half = stats.t.ppf(1 - tail, n - 1) * arr.std(axis=-1, ddof=1) / np.sqrt(n)
    mean = arr.mean(axis=-1)
    return _out(mean - half), _out(mean + half)


def chi2_std_ci(values: ArrayLike, *, confidence: float = 0.95) -> tuple[float | np.ndarray, float | np.ndarray]:
    """Chi-square interval of sigma: s * sqrt((n-1) / chi2_{n-1, 1-a/2}) to s * sqrt((n-1) / chi2_{n-1, a/2}).

    Exact for normal values. At n = 5 it is s * 0.60 to s * 2.87.
    """
    arr = _values(values, "chi2_std_ci")
    tail = _check_confidence(confidence, "chi2_std_ci")
    df = arr.shape[-1] - 1
    s = arr.std(axis=-1, ddof=1)
    return (_out(s * np.sqrt(df / stats.chi2.ppf(1 - tail, df))),
            _out(s * np.sqrt(df / stats.chi2.ppf(tail, df))))


def f_ratio_interval(var_a: ArrayLike, var_b: ArrayLike, df_a: float, df_b: float, *,
                     confidence: float = 0.95) -> tuple[float | np.ndarray, float | np.ndarray, float | np.ndarray]:
    """sigma_a / sigma_b from two variance estimates with ``df_a`` and ``df_b`` degrees of freedom.

    (s_a^2 / sigma_a^2) / (s_b^2 / sigma_b^2) ~ F(df_a, df_b) for independent
    normal samples, so the interval for sigma_a / sigma_b is
    (s_a/s_b) / sqrt(F_{1-a/2}) to (s_a/s_b) / sqrt(F_{a/2}). Returns
    ``(ratio, low, high)``; a zero ``var_b`` gives an infinite ratio and bounds.
    """
    tail = _check_confidence(confidence, "f_ratio_interval")
    if df_a <= 0 or df_b <= 0:
        raise XstiltsError(f"f_ratio_interval: degrees of freedom must be positive, got {df_a} and {df_b}")
    va, vb = np.asarray(var_a, dtype=float), np.asarray(var_b, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.sqrt(va / vb)
    low = ratio / np.sqrt(stats.f.ppf(1 - tail, df_a, df_b))
    high = ratio / np.sqrt(stats.f.ppf(tail, df_a, df_b))
    return _out(ratio), _out(low), _out(high)


def f_std_ratio_ci(a: ArrayLike, b: ArrayLike, *, confidence: float = 0.95) -> dict[str, float | np.ndarray]:
    """std(a) / std(b) (ddof=1) with its F interval (see :func:`f_ratio_interval`).

    Exact when ``a`` and ``b`` are independent normal samples; conservative for
    paired seeds (see the module docstring). Example: s_a = 2, s_b = 1 at 3 seeds
    each: F_{0.975}(2, 2) = 39.0, so 2 / 6.245 = 0.320 to 2 * 6.245 = 12.49.
    """
    x, y = _values(a, "f_std_ratio_ci"), _values(b, "f_std_ratio_ci")
    ratio, low, high = f_ratio_interval(x.var(axis=-1, ddof=1), y.var(axis=-1, ddof=1),
                                        x.shape[-1] - 1, y.shape[-1] - 1, confidence=confidence)
    return {"ratio": ratio, "ci_low": low, "ci_high": high}


def pooled_f_std_ratio_ci(scores: ArrayLike, *, confidence: float = 0.95) -> dict[str, float | np.ndarray]:
    """Ratio of pooled within-language seed stds, ``scores[..., seed, language, 2]``, with an F interval.

    Pooled std = sqrt(mean over languages of the within-language variance), as
    :func:`xstilts.analysis.variance_tests.pooled_std_ratio_ci`. The languages of
    one seed are scored by one trained model, so their deviations are correlated
    and the pooled variance carries between n-1 (languages move together) and
    L(n-1) (independent languages) degrees of freedom. The interval uses n-1 for
    each condition: exact when the seed effect is shared by all languages,
    conservative otherwise (wider than needed, never too narrow); with
    independent languages and many seeds it is needlessly wide, which the
    per-language rows and the Brown-Forsythe test complement.
    """
    arr = np.asarray(scores, dtype=float)
    if arr.ndim < 3 or arr.shape[-1] != 2 or arr.shape[-3] < 2:
        raise XstiltsError(f"pooled_f_std_ratio_ci: expected scores[seed>=2, language, 2], got shape {arr.shape}")
    var = arr.var(axis=-3, ddof=1).mean(axis=-2)  # [..., cond]
    df = arr.shape[-3] - 1
    ratio, low, high = f_ratio_interval(var[..., 0], var[..., 1], df, df, confidence=confidence)
    return {"ratio": ratio, "ci_low": low, "ci_high": high, "df": float(df)}


def sign_flip_pvalue(differences: ArrayLike, *, n_resamples: int = 10_000,
                     rng: np.random.Generator | int | None = 0) -> float:
    """Two-sided sign-flip (paired permutation) p-value for mean(differences) = 0.

    p = share of sign patterns whose |mean| is at least the observed |mean|,
    over all 2^n patterns when n <= :data:`MAX_EXACT_SEEDS` (exact; the
    identity pattern counts, so p >= 2 / 2^n: 0.25 at 3 seeds, 0.0625 at 5),
    else over ``n_resamples`` random patterns plus the observed one.
    Example: [1, 2, 3] -> 2/8 = 0.25; [1, -2, 3, 4] -> 6/16 = 0.375.
    """
    d = np.asarray(differences, dtype=float).ravel()
    if d.size == 0 or not np.all(np.isfinite(d)):
        raise XstiltsError("sign_flip_pvalue: need at least one finite difference")
    observed = abs(d.sum())
    tol = 1e-9 * max(1.0, float(np.abs(d).sum()))  # ties up to rounding count as at least as extreme
    if d.size <= MAX_EXACT_SEEDS:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=d.size)))
        return float(np.mean(np.abs(signs @ d) >= observed - tol))
    gen = np.random.default_rng(rng)
    signs = gen.choice((1.0, -1.0), size=(n_resamples, d.size))
    return float((1 + np.sum(np.abs(signs @ d) >= observed - tol)) / (n_resamples + 1))
