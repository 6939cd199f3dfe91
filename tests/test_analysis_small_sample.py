"""Small-sample intervals and tests: known values, and coverage simulated at 3 and 5 seeds.

Each simulation draws 2,000 samples from a known normal with a fixed RNG seed
and counts how often the nominal 95 % interval covers the truth; the binomial
sd of that share is 0.5 %, so 93-97 % is about +-4 sd.
"""
from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from xstilts.analysis.seeds import paired_gain_ci
from xstilts.analysis.small_sample import (chi2_std_ci, f_std_ratio_ci, pooled_f_std_ratio_ci, sign_flip_pvalue,
                                           t_mean_ci)
from xstilts.errors import XstiltsError

DRAWS = 2000


def _covers(low, high, truth) -> float:
    return float(np.mean((low <= truth) & (truth <= high)))


# ----------------------------------------------------------------------------- known values

def test_t_mean_ci_by_hand_and_against_scipy() -> None:
    low, high = t_mean_ci([1.0, 2.0, 3.0])
    half = stats.t.ppf(0.975, 2) * 1.0 / np.sqrt(3)  # 4.3027 / 1.7321 = 2.4841
    assert (low, high) == pytest.approx((2 - half, 2 + half)) and half == pytest.approx(2.4841, abs=1e-4)
    x = np.array([61.2, 63.0, 59.8, 62.4, 60.1])
    ref = stats.t.interval(0.95, 4, loc=x.mean(), scale=stats.sem(x))
    assert t_mean_ci(x) == pytest.approx(ref)


def test_chi2_std_ci_factors() -> None:
    # the chi-square factors quoted in docs/results.md for 5 seeds: 0.60 to 2.87
    low, high = chi2_std_ci([0.0, 1.0, 2.0, 3.0, 4.0])
    s = np.std([0, 1, 2, 3, 4], ddof=1)
    assert low / s == pytest.approx(0.599, abs=1e-3) and high / s == pytest.approx(2.874, abs=1e-3)


def test_f_std_ratio_ci_by_hand() -> None:
    # s_a = 2, s_b = 1 with 3 values each; F_0.975(2, 2) = 39
    out = f_std_ratio_ci([0.0, 2.0, 4.0], [0.0, 1.0, 2.0])
    assert stats.f.ppf(0.975, 2, 2) == pytest.approx(39.0)
    assert out["ratio"] == pytest.approx(2.0)
    assert out["ci_low"] == pytest.approx(2 / np.sqrt(39)) and out["ci_high"] == pytest.approx(2 * np.sqrt(39))


def test_pooled_f_std_ratio_ci_value() -> None:
    rng = np.random.default_rng(2)
    scores = rng.normal(0, 1, (5, 6, 2)) * np.array([2.0, 1.0])
    out = pooled_f_std_ratio_ci(scores)
    ratio = np.sqrt(scores[..., 0].var(axis=0, ddof=1).mean() / scores[..., 1].var(axis=0, ddof=1).mean())
    assert out["ratio"] == pytest.approx(ratio) and out["df"] == 4.0
    assert out["ci_low"] == pytest.approx(ratio / np.sqrt(stats.f.ppf(0.975, 4, 4)))
    with pytest.raises(XstiltsError, match="seed>=2"):
        pooled_f_std_ratio_ci(scores[:1])


def test_sign_flip_by_hand_and_against_scipy() -> None:
    assert sign_flip_pvalue([1.0, 2.0, 3.0]) == pytest.approx(2 / 8)
    # +-1 +-2 +-3 +-4 = 10 - 2k (k = sum of flipped values); |.| >= 6 for k <= 2 or k >= 8: 6 of 16
    assert sign_flip_pvalue([1.0, -2.0, 3.0, 4.0]) == pytest.approx(6 / 16)
    assert sign_flip_pvalue([0.0, 0.0, 0.0]) == 1.0
    rng = np.random.default_rng(0)
    for n in (3, 5, 8):
        d = rng.normal(0.5, 1, n)
        ref = stats.permutation_test((d,), np.mean, permutation_type="samples", n_resamples=np.inf,
                                     alternative="two-sided").pvalue
        assert sign_flip_pvalue(d) == pytest.approx(ref)
    # above 12 seeds: random flips, still close to the exact value
    d = rng.normal(0.3, 1, 14)
    exact = np.mean(np.abs(np.array(np.meshgrid(*[[1, -1]] * 14)).reshape(14, -1).T @ d) >= abs(d.sum()) - 1e-9)
    assert sign_flip_pvalue(d, n_resamples=20_000) == pytest.approx(exact, abs=0.01)


def test_sign_flip_size_at_five_seeds() -> None:
    # Under "no effect" P(p <= 0.0625) is exactly 2/32 at 5 seeds.
    rng = np.random.default_rng(3)
    p = np.array([sign_flip_pvalue(d) for d in rng.normal(0, 1, (DRAWS, 5))])
    assert np.mean(p <= 0.0625) == pytest.approx(2 / 32, abs=0.015)


def test_bad_input() -> None:
    with pytest.raises(XstiltsError, match="at least 2"):
        t_mean_ci([1.0])
    with pytest.raises(XstiltsError, match="confidence"):
        chi2_std_ci([1.0, 2.0], confidence=1.0)
    with pytest.raises(XstiltsError, match="finite"):
        f_std_ratio_ci([1.0, np.nan], [1.0, 2.0])


# ----------------------------------------------------------------------------- coverage simulations

@pytest.mark.parametrize("n", [3, 5])
def test_t_mean_ci_coverage(n: int) -> None:
    x = np.random.default_rng(n).normal(60.0, 2.0, (DRAWS, n))
    assert 0.93 <= _covers(*t_mean_ci(x), 60.0) <= 0.97


@pytest.mark.parametrize("n", [3, 5])
def test_chi2_std_ci_coverage(n: int) -> None:
    x = np.random.default_rng(10 + n).normal(60.0, 2.0, (DRAWS, n))
    assert 0.93 <= _covers(*chi2_std_ci(x), 2.0) <= 0.97


@pytest.mark.parametrize("n", [3, 5])
def test_f_std_ratio_ci_coverage_independent(n: int) -> None:
    rng = np.random.default_rng(20 + n)
    out = f_std_ratio_ci(rng.normal(60, 3.0, (DRAWS, n)), rng.normal(55, 1.5, (DRAWS, n)))
    assert 0.93 <= _covers(out["ci_low"], out["ci_high"], 2.0) <= 0.97


@pytest.mark.parametrize("n", [3, 5])
def test_f_std_ratio_ci_is_conservative_for_paired_seeds(n: int) -> None:
    # Seed i of both conditions correlated 0.8 (a shared seed effect): coverage >= nominal.
    rng = np.random.default_rng(30 + n)
    z = rng.normal(0, 1, (DRAWS, n, 2))
    a = 3.0 * z[..., 0]
    b = 1.5 * (0.8 * z[..., 0] + 0.6 * z[..., 1])
    out = f_std_ratio_ci(a, b)
    assert _covers(out["ci_low"], out["ci_high"], 2.0) >= 0.95


@pytest.mark.parametrize("n", [3, 5])
def test_paired_gain_ci_coverage(n: int) -> None:
    # 6 languages with their own levels, a seed effect shared by languages and both
    # conditions, language noise, and a true gain of 2 in the mean over languages.
    rng = np.random.default_rng(40 + n)
    levels = rng.uniform(40, 70, 6)
    seed_effect = rng.normal(0, 3, (DRAWS, n, 1))
    control = levels + seed_effect + rng.normal(0, 1, (DRAWS, n, 6))
    gains = np.array([1.0, 3.0, 2.0, 0.5, 3.5, 2.0])
    treatment = levels + gains + seed_effect + rng.normal(0, 1.5, (DRAWS, n, 6))
    gain, low, high = paired_gain_ci(treatment, control)
    assert 0.93 <= _covers(low, high, 2.0) <= 0.97


@pytest.mark.parametrize("n", [3, 5])
def test_pooled_f_std_ratio_ci_coverage(n: int) -> None:
    # Exact case: the seed effect is shared by all 6 languages (one model per seed).
    rng = np.random.default_rng(50 + n)
    levels = rng.uniform(40, 70, (1, 1, 6, 1))
    shared = rng.normal(0, 1, (DRAWS, n, 1, 2)) * np.array([3.0, 1.5])
    out = pooled_f_std_ratio_ci(levels + shared)
    assert 0.93 <= _covers(out["ci_low"], out["ci_high"], 2.0) <= 0.97
    # Independent languages: more information than n-1 df, so the interval over-covers.
    indep = levels + rng.normal(0, 1, (DRAWS, n, 6, 2)) * np.array([3.0, 1.5])
    out = pooled_f_std_ratio_ci(indep)
    assert _covers(out["ci_low"], out["ci_high"], 2.0) >= 0.95


def test_percentile_bootstrap_undercovers_at_three_seeds() -> None:
    # Why the report no longer uses it: at n = 3 the percentile interval stays inside
    # the observed range and covers the mean far less often than 95 %.
    rng = np.random.default_rng(60)
    x = rng.normal(60.0, 2.0, (500, 3))
    idx = rng.integers(0, 3, (500, 1000, 3))
    means = np.take_along_axis(x[:, None, :], idx, axis=2).mean(axis=2)
    low, high = np.quantile(means, [0.025, 0.975], axis=1)
    assert _covers(low, high, 60.0) < 0.80
